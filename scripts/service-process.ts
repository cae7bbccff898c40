// What the scripts that run the built service as users run it share (scripts/smoke.ts, scripts/crash.ts): the frame
// of a run (one line per step, a backstop over the whole run, cleanup on success, failure or Ctrl-C), a scratch
// database on a PostgreSQL server, booting `node dist/main.js` on the sandbox engine on a free port of 127.0.0.1,
// waiting for /health/ready and for a session, calling the API, and stopping the service.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { EMBEDDED_API_KEYS_SQL } from '../src/db/migrations/index.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const MAIN = path.join(ROOT, 'dist', 'main.js');
export const HOST = '127.0.0.1';

/** The first boot on PGlite runs initdb in WebAssembly: several seconds on a loaded 2-core machine. */
const READY_TIMEOUT_MS = 60_000;
const READY_POLL_MS = 250;
const SESSION_POLL_MS = 100;
const REQUEST_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;
/** Attempts at booting, each on a newly picked port, when another process took the port between pick and listen. */
const BOOT_ATTEMPTS = 3;
const LOG_TAIL_LINES = 80;
/** The service's output is kept up to this size (its end): enough for the tail shown on failure. */
const MAX_OUTPUT_CHARS = 1_000_000;

/** A failure the script describes itself; `showServiceLog` false when the service's output would not help. */
export class ScriptError extends Error {
  constructor(
    message: string,
    readonly showServiceLog = true,
  ) {
    super(message);
  }
}

export function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new ScriptError(message);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

export function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}

/** A port that was free on 127.0.0.1 a moment ago (the service may still lose it to another process: see boot). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port from the OS'));
      });
    });
  });
}

// --------------------------------------------------------------------------------------------------------------- run

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Service {
  child: ChildProcess;
  port: number;
  base: string;
  output: () => string;
  /** Set once the process has exited. */
  exit: () => Exit | null;
  exited: Promise<Exit>;
}

/**
 * One run of a script: `name: message (time since the previous line)` per step, and on the way out, whatever
 * happens (success, failure, the backstop, SIGINT/SIGTERM), the service killed if it still runs and every cleanup
 * run, newest first. Ends the process: exit 0 after "name: ok", 1 after "name: FAILED: …".
 */
export class ScriptRun {
  /** The service running now: killed on the way out if it still runs. */
  service: Service | undefined;
  private readonly startedAt = Date.now();
  private stepStartedAt = this.startedAt;
  private readonly cleanups: Array<{ what: string; run: () => Promise<void> }> = [];
  private finishing = false;

  constructor(readonly name: string) {}

  step(message: string): void {
    const now = Date.now();
    console.log(`${this.name}: ${message} (${seconds(now - this.stepStartedAt)})`);
    this.stepStartedAt = now;
  }

  elapsed(): number {
    return Date.now() - this.startedAt;
  }

  onCleanup(what: string, run: () => Promise<void>): void {
    this.cleanups.push({ what, run });
  }

  /** Runs `main`, giving up after `overallTimeoutMs` whatever happens, then cleans up and exits. */
  start(main: () => Promise<void>, overallTimeoutMs: number): void {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => void this.finish(new ScriptError(`interrupted by ${signal}`)));
    }
    setTimeout(
      () => void this.finish(new ScriptError(`gave up after ${seconds(overallTimeoutMs)}`)),
      overallTimeoutMs,
    ).unref();
    main().then(
      () => this.finish(undefined),
      (err: unknown) => this.finish(err),
    );
  }

  private async finish(failure: unknown): Promise<void> {
    // The first outcome wins: an interrupt or the backstop while a step still runs ends the run there.
    if (this.finishing) return;
    this.finishing = true;
    if (failure !== undefined && !(failure instanceof ScriptError && !failure.showServiceLog)) {
      const tail = this.serviceLogTail();
      if (tail) console.error(tail);
    }
    const problems = await this.cleanUp();
    for (const problem of problems) console.error(`${this.name}: cleanup failed: ${problem}`);
    if (failure !== undefined) {
      console.error(`${this.name}: FAILED: ${errorText(failure)}`);
      process.exit(1);
    }
    if (problems.length > 0) {
      console.error(`${this.name}: FAILED: cleanup`);
      process.exit(1);
    }
    console.log(`${this.name}: ok (${seconds(this.elapsed())})`);
    process.exit(0);
  }

  /** Kills the service if it still runs and removes what the run created. Returns what failed. */
  private async cleanUp(): Promise<string[]> {
    const problems: string[] = [];
    const service = this.service;
    if (service && service.exit() === null) {
      service.child.kill('SIGKILL');
      await Promise.race([service.exited, sleep(5_000)]);
      if (service.exit() === null) problems.push(`the service (pid ${service.child.pid}) did not die on SIGKILL`);
    }
    for (const { what, run } of this.cleanups.reverse()) {
      try {
        await run();
      } catch (err) {
        problems.push(`${what}: ${errorText(err)}`);
      }
    }
    return problems;
  }

  private serviceLogTail(): string {
    const lines = (this.service?.output() ?? '').trimEnd().split('\n');
    if (lines.length === 1 && lines[0] === '') return '';
    const tail = lines.slice(-LOG_TAIL_LINES);
    const skipped = lines.length - tail.length;
    return `--- the service's output${skipped > 0 ? ` (last ${tail.length} lines)` : ''} ---\n${tail.join('\n')}\n---`;
  }
}

// ---------------------------------------------------------------------------------------------------------- database

export interface ScratchDatabase {
  /** The database's URL: DB_URL for the service. */
  url: string;
  name: string;
  /** host:port/name, for the log. */
  label: string;
}

/**
 * Creates a database `<prefix>_<random>` on the server at `adminUrl`, with the shared api_keys table production has
 * (another service creates it there), and has the run drop it on the way out.
 */
export async function createScratchDatabase(
  run: ScriptRun,
  adminUrl: string,
  prefix: string,
): Promise<ScratchDatabase> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  const server = new URL(adminUrl);
  const label = `${server.hostname}:${server.port || '5432'}/${name}`;
  await withClient(adminUrl, (client) => client.query(`CREATE DATABASE ${name}`));
  run.onCleanup(`drop database ${name}`, async () => {
    await withClient(adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  });
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  await withClient(url.toString(), (client) => client.query(EMBEDDED_API_KEYS_SQL));
  return { url: url.toString(), name, label };
}

export function pgClient(url: string): pg.Client {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000, query_timeout: 30_000 });
  // A connection dropped under the client (DROP DATABASE … WITH (FORCE) on the way out) is not a crash of the script.
  client.on('error', () => {});
  return client;
}

export async function withClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = pgClient(url);
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

// ----------------------------------------------------------------------------------------------------------- service

export interface ServiceConfig {
  dataDir: string;
  /** The working directory: a temp dir, so that no stray .env of the checkout is read. */
  cwd: string;
  adminKey: string;
  /** DB_URL: empty selects the embedded PGlite in DATA_DIR. */
  dbUrl: string;
  /** What the log line says about the database. */
  databaseLabel: string;
  logLevel?: string;
  /** More environment for the service (limits, timeouts). */
  env?: Record<string, string>;
  /** Ports not to boot on (those of earlier processes of the run, so that a late request cannot reach a new one). */
  avoidPorts?: ReadonlySet<number>;
}

function spawnService(port: number, config: ServiceConfig): Service {
  // Only what the service needs: nothing from the caller's environment (a DB_URL, a .env) leaks into the run.
  const child = spawn(process.execPath, [MAIN], {
    cwd: config.cwd,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      NODE_ENV: 'production',
      HOST,
      PORT: String(port),
      DATA_DIR: config.dataDir,
      DB_URL: config.dbUrl,
      WA_ENGINE: 'sandbox',
      ADMIN_API_KEY: config.adminKey,
      LOG_LEVEL: config.logLevel ?? 'info',
      ...config.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { child, port, base: `http://${HOST}:${port}`, ...watchProcess(child, { maxChars: MAX_OUTPUT_CHARS }) };
}

/**
 * Keeps the end of a child's stdout and stderr (about `maxChars`, also copied to `copy` when given) and its exit.
 * `exit()` is null while it runs; `exited` resolves when it ends (or could not be spawned).
 */
export function watchProcess(
  child: ChildProcess,
  { maxChars, copy }: { maxChars: number; copy?: (chunk: string) => void },
): { output: () => string; exit: () => Exit | null; exited: Promise<Exit> } {
  let output = '';
  let exit: Exit | null = null;
  const append = (chunk: string) => {
    copy?.(chunk);
    output += chunk;
    if (output.length > 2 * maxChars) output = output.slice(-maxChars);
  };
  child.stdout?.setEncoding('utf8').on('data', append);
  child.stderr?.setEncoding('utf8').on('data', append);
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
    child.once('error', (err) => {
      output += `\nspawn failed: ${err.message}\n`;
      exit = { code: null, signal: null };
      resolve(exit);
    });
  });
  return { output: () => output, exit: () => exit, exited };
}

export function describeExit(exit: Exit): string {
  return exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
}

/** Waits for /health/ready to answer 200 with the database ok: bounded in time and in attempts. */
async function waitReady(candidate: Service): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  const maxAttempts = Math.ceil(READY_TIMEOUT_MS / READY_POLL_MS);
  let last = 'no answer yet';
  for (let attempt = 1; attempt <= maxAttempts && Date.now() < deadline; attempt++) {
    const exit = candidate.exit();
    if (exit) throw new ScriptError(`the service exited (${describeExit(exit)}) before /health/ready answered 200`);
    try {
      const res = await fetch(`${candidate.base}/health/ready`, { signal: AbortSignal.timeout(5_000) });
      const text = await res.text();
      if (res.status === 200) {
        const body = JSON.parse(text) as { checks?: { database?: string } };
        check(body.checks?.database === 'ok', `/health/ready answered 200 without database "ok": ${text}`);
        return;
      }
      last = `${res.status} ${text.slice(0, 200)}`;
    } catch (err) {
      if (err instanceof ScriptError) throw err;
      last = errorText(err);
    }
    await sleep(READY_POLL_MS);
  }
  throw new ScriptError(`/health/ready did not answer 200 within ${seconds(READY_TIMEOUT_MS)} (last: ${last})`);
}

/**
 * Boots `node dist/main.js` on the sandbox engine and waits for /health/ready; on a new port when the one picked was
 * taken meanwhile (EADDRINUSE). The run kills it on the way out if it still runs then.
 */
export async function bootService(run: ScriptRun, config: ServiceConfig): Promise<Service> {
  for (let attempt = 1; ; attempt++) {
    let port = await freePort();
    for (let pick = 0; pick < 20 && config.avoidPorts?.has(port); pick++) port = await freePort();
    const service = spawnService(port, config);
    run.service = service;
    run.step(
      `started node dist/main.js (pid ${service.child.pid}) on ${HOST}:${port}, sandbox engine, ${config.databaseLabel}`,
    );
    try {
      await waitReady(service);
      return service;
    } catch (err) {
      const portTaken = service.exit() !== null && service.output().includes('EADDRINUSE');
      if (!portTaken || attempt >= BOOT_ATTEMPTS) throw err;
      run.step(`port ${port} was taken meanwhile (EADDRINUSE): booting again on another one`);
    }
  }
}

/** SIGTERM, and exit code 0 within STOP_TIMEOUT_MS (else SIGKILL, and a failure). */
export async function stopService(service: Service): Promise<void> {
  service.child.kill('SIGTERM');
  const exit = await Promise.race([service.exited, sleep(STOP_TIMEOUT_MS).then(() => null)]);
  if (exit === null) {
    service.child.kill('SIGKILL');
    throw new ScriptError(
      `the service did not exit within ${seconds(STOP_TIMEOUT_MS)} of SIGTERM: killed with SIGKILL`,
    );
  }
  check(exit.code === 0, `the service exited with ${describeExit(exit)} after SIGTERM, expected code 0`);
}

// --------------------------------------------------------------------------------------------------------------- API

interface Envelope<T> {
  data: T;
}

export interface Answer {
  status: number;
  text: string;
}

/** One call to the service's API with a Bearer token (a JSON body when given): its status and text, whatever they are. */
export async function request(
  base: string,
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  pathname: string,
  token: string,
  body?: unknown,
  timeoutMs = REQUEST_TIMEOUT_MS,
): Promise<Answer> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  try {
    const res = await fetch(`${base}${pathname}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    return { status: res.status, text: await res.text() };
  } catch (err) {
    throw new ScriptError(`${method} ${base}${pathname}: ${errorText(err)}`);
  }
}

/** One call to the service's API with a Bearer token; the `data` of its answer, which must have `expectStatus`. */
export async function api<T>(
  base: string,
  method: 'GET' | 'POST',
  pathname: string,
  token: string,
  body?: unknown,
  expectStatus = 200,
): Promise<T> {
  const { status, text } = await request(base, method, pathname, token, body);
  check(status === expectStatus, `${method} ${pathname}: expected ${expectStatus}, got ${status}: ${text}`);
  try {
    return (JSON.parse(text) as Envelope<T>).data;
  } catch {
    throw new ScriptError(`${method} ${pathname}: the answer is not JSON: ${text.slice(0, 500)}`);
  }
}

export interface SessionStatus {
  status: string;
  engine: string;
  liveState: { isReady: boolean; sessionState: string; me: string | null; lastError: string | null };
}

/** Polls GET /sessions/{agentId} until its liveState is ready; bounded in time and in polls. */
export async function waitSessionReady(
  base: string,
  adminKey: string,
  agentId: string,
  timeoutMs: number,
): Promise<{ session: SessionStatus; polls: number }> {
  const deadline = Date.now() + timeoutMs;
  const maxPolls = Math.ceil(timeoutMs / SESSION_POLL_MS);
  let session: SessionStatus | undefined;
  let polls = 0;
  while (polls < maxPolls && Date.now() < deadline) {
    polls++;
    session = await api<SessionStatus>(base, 'GET', `/sessions/${agentId}`, adminKey);
    if (session.liveState.isReady) return { session, polls };
    await sleep(SESSION_POLL_MS);
  }
  throw new ScriptError(
    `GET /sessions/${agentId}: not ready after ${polls} polls (${seconds(timeoutMs)} at most): ` +
      JSON.stringify(session?.liveState),
  );
}
