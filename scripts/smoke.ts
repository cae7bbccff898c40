// Smoke test of the built service, run as users run it: `node dist/main.js` on the sandbox engine.
//
// Usage (after `npm run build`):
//
//   npm run smoke                                                              # embedded PGlite in a temp DATA_DIR
//   SMOKE_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run smoke   # a fresh database on that server
//
// It boots the service on a free port of 127.0.0.1 with a fresh temporary DATA_DIR and a generated admin key, waits
// for /health/ready, creates a sandbox agent, fetches its QR code, plays the phone scanning it, sends one text through
// the REST API and checks its state and what the sandbox received, then stops the service with SIGTERM and expects
// exit code 0. With SMOKE_DATABASE_URL (or TEST_DATABASE_URL) it creates a database `wamt_smoke_<random>` on that
// server, with the shared api_keys table production has, and drops it at the end. One line per step; "smoke: ok"
// at the end, or "smoke: FAILED: …" with the service's last log lines and a non-zero exit code. Every wait is bounded;
// the service is always killed and the temporary directory and database always removed.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { EMBEDDED_API_KEYS_SQL } from '../src/db/migrations/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = path.join(ROOT, 'dist', 'main.js');
const HOST = '127.0.0.1';
/** The first boot on PGlite runs initdb in WebAssembly: several seconds on a loaded 2-core machine. */
const READY_TIMEOUT_MS = 60_000;
const READY_POLL_MS = 250;
const SESSION_READY_TIMEOUT_MS = 15_000;
const SESSION_POLL_MS = 100;
const REQUEST_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;
/** A backstop over every step: the smoke gives up, cleans up and fails after this long whatever happens. */
const OVERALL_TIMEOUT_MS = 240_000;
/** Attempts at booting, each on a newly picked port, when another process took the port between pick and listen. */
const BOOT_ATTEMPTS = 3;
const LOG_TAIL_LINES = 80;

class SmokeError extends Error {}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface Service {
  child: ChildProcess;
  port: number;
  base: string;
  output: () => string;
  /** Set once the process has exited. */
  exit: () => Exit | null;
  exited: Promise<Exit>;
}

interface Envelope<T> {
  data: T;
}

const startedAt = Date.now();
let stepStartedAt = startedAt;
let service: Service | undefined;
const cleanups: Array<{ what: string; run: () => Promise<void> }> = [];

function step(message: string): void {
  const now = Date.now();
  console.log(`smoke: ${message} (${seconds(now - stepStartedAt)})`);
  stepStartedAt = now;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new SmokeError(message);
}

/** A port that was free on 127.0.0.1 a moment ago (the service may still lose it to another process: see boot). */
function freePort(): Promise<number> {
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

// ---------------------------------------------------------------------------------------------------------- database

interface SmokeDatabase {
  /** DB_URL for the service: empty selects the embedded PGlite in DATA_DIR. */
  url: string;
  label: string;
}

async function createDatabase(adminUrl: string | undefined): Promise<SmokeDatabase> {
  if (!adminUrl) return { url: '', label: 'embedded PGlite' };
  const name = `wamt_smoke_${randomBytes(6).toString('hex')}`;
  const server = new URL(adminUrl);
  const where = `${server.hostname}:${server.port || '5432'}`;
  await withClient(adminUrl, (client) => client.query(`CREATE DATABASE ${name}`));
  cleanups.push({
    what: `drop database ${name}`,
    run: async () => {
      await withClient(adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  });
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  // Production shares api_keys with another service, which creates it; a fresh database must have it too.
  await withClient(url.toString(), (client) => client.query(EMBEDDED_API_KEYS_SQL));
  step(`database ${name} created on ${where}, with the shared api_keys table`);
  return { url: url.toString(), label: `PostgreSQL ${where}/${name}` };
}

async function withClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000, query_timeout: 30_000 });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

// ----------------------------------------------------------------------------------------------------------- service

function spawnService(port: number, dataDir: string, cwd: string, adminKey: string, dbUrl: string): Service {
  let output = '';
  let exit: Exit | null = null;
  // Only what the service needs: nothing from the caller's environment (a DB_URL, a .env) leaks into the smoke. The
  // working directory is the temp dir, so no stray .env of the checkout is read either.
  const child = spawn(process.execPath, [MAIN], {
    cwd,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      NODE_ENV: 'production',
      HOST,
      PORT: String(port),
      DATA_DIR: dataDir,
      DB_URL: dbUrl,
      WA_ENGINE: 'sandbox',
      ADMIN_API_KEY: adminKey,
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const append = (chunk: string) => {
    output += chunk;
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
  return { child, port, base: `http://${HOST}:${port}`, output: () => output, exit: () => exit, exited };
}

function describeExit(exit: Exit): string {
  return exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
}

/** Waits for /health/ready to answer 200: bounded in time and in attempts. */
async function waitReady(candidate: Service): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  const maxAttempts = Math.ceil(READY_TIMEOUT_MS / READY_POLL_MS);
  let last = 'no answer yet';
  for (let attempt = 1; attempt <= maxAttempts && Date.now() < deadline; attempt++) {
    const exit = candidate.exit();
    if (exit) throw new SmokeError(`the service exited (${describeExit(exit)}) before /health/ready answered 200`);
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
      if (err instanceof SmokeError) throw err;
      last = describe(err);
    }
    await sleep(READY_POLL_MS);
  }
  throw new SmokeError(`/health/ready did not answer 200 within ${seconds(READY_TIMEOUT_MS)} (last: ${last})`);
}

/** Boots the service, on a new port when the one picked was taken meanwhile (EADDRINUSE). */
async function boot(dataDir: string, cwd: string, adminKey: string, database: SmokeDatabase): Promise<Service> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    service = spawnService(port, dataDir, cwd, adminKey, database.url);
    step(`started node dist/main.js (pid ${service.child.pid}) on ${HOST}:${port}, sandbox engine, ${database.label}`);
    try {
      await waitReady(service);
      return service;
    } catch (err) {
      const portTaken = service.exit() !== null && service.output().includes('EADDRINUSE');
      if (!portTaken || attempt >= BOOT_ATTEMPTS) throw err;
      step(`port ${port} was taken meanwhile (EADDRINUSE): booting again on another one`);
    }
  }
}

async function request<T>(
  method: 'GET' | 'POST',
  pathname: string,
  token: string,
  body?: unknown,
  expectStatus = 200,
): Promise<T> {
  check(service, 'no service');
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`${service.base}${pathname}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (err) {
    throw new SmokeError(`${method} ${pathname}: ${describe(err)}`);
  }
  const text = await res.text();
  check(res.status === expectStatus, `${method} ${pathname}: expected ${expectStatus}, got ${res.status}: ${text}`);
  try {
    return (JSON.parse(text) as Envelope<T>).data;
  } catch {
    throw new SmokeError(`${method} ${pathname}: the answer is not JSON: ${text.slice(0, 500)}`);
  }
}

// -------------------------------------------------------------------------------------------------------- the smoke

interface SessionStatus {
  status: string;
  engine: string;
  liveState: { isReady: boolean; sessionState: string; me: string | null; lastError: string | null };
}

interface SendResult {
  delivered: boolean;
  messageId: string;
  status: string;
  waMessageId: string | null;
}

interface MessageState {
  messageId: string;
  status: string;
  to: string;
  waMessageId: string | null;
}

interface SentEntry {
  messageId: string;
  to: string;
  kind: string;
  text?: string;
}

async function smoke(): Promise<void> {
  check(existsSync(MAIN), `${path.relative(process.cwd(), MAIN)} is missing: run \`npm run build\` first`);
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'wamt-smoke-'));
  cleanups.push({ what: `remove ${tmp}`, run: () => rm(tmp, { recursive: true, force: true, maxRetries: 3 }) });
  const dataDir = path.join(tmp, 'data');
  step(`temporary DATA_DIR ${dataDir}`);

  const database = await createDatabase(process.env.SMOKE_DATABASE_URL || process.env.TEST_DATABASE_URL);
  const adminKey = randomBytes(24).toString('hex');
  const running = await boot(dataDir, tmp, adminKey, database);
  step(`GET /health/ready: 200, database ok`);

  const agentId = `smoke-${randomBytes(4).toString('hex')}`;
  const agentKey = `smoke-key-${randomBytes(16).toString('hex')}`;
  const created = await request<SessionStatus>('POST', '/sessions', adminKey, {
    userId: randomUUID(),
    agentId,
    agentName: 'Smoke',
    apikey: agentKey,
  });
  check(created.engine === 'sandbox', `POST /sessions: engine ${created.engine}, expected sandbox`);
  step(`POST /sessions: 200, agent ${agentId} (engine ${created.engine}, status ${created.status})`);

  const qr = await request<{ qr: { contentType: string; base64: string } }>(
    'POST',
    `/sessions/${agentId}/qr`,
    adminKey,
  );
  const png = Buffer.from(qr.qr.base64, 'base64');
  check(
    qr.qr.contentType === 'image/png' && png.subarray(0, 8).equals(Buffer.from('89504e470d0a1a0a', 'hex')),
    `POST /sessions/${agentId}/qr: not a PNG QR code: ${JSON.stringify(qr).slice(0, 200)}`,
  );
  step(`POST /sessions/${agentId}/qr: 200, a ${png.length}-byte PNG`);

  const scanned = await request<{ me: string }>('POST', `/sandbox/agents/${agentId}/scan`, adminKey, {});
  step(`POST /sandbox/agents/${agentId}/scan: 200, me ${scanned.me}`);

  const deadline = Date.now() + SESSION_READY_TIMEOUT_MS;
  const maxPolls = Math.ceil(SESSION_READY_TIMEOUT_MS / SESSION_POLL_MS);
  let session: SessionStatus | undefined;
  let polls = 0;
  while (polls < maxPolls && Date.now() < deadline) {
    polls++;
    session = await request<SessionStatus>('GET', `/sessions/${agentId}`, adminKey);
    if (session.liveState.isReady) break;
    await sleep(SESSION_POLL_MS);
  }
  check(
    session?.liveState.isReady,
    `GET /sessions/${agentId}: not ready after ${polls} polls (${seconds(SESSION_READY_TIMEOUT_MS)} at most): ` +
      JSON.stringify(session?.liveState),
  );
  step(`GET /sessions/${agentId}: ready after ${polls} poll(s), status ${session.status}`);

  const text = `smoke ${randomBytes(6).toString('hex')}`;
  const to = '6281234567890';
  const sentResult = await request<SendResult>('POST', `/agents/${agentId}/messages`, agentKey, { to, message: text });
  check(
    sentResult.status === 'sent' && sentResult.delivered && sentResult.waMessageId,
    `POST /agents/${agentId}/messages: expected status "sent", got ${JSON.stringify(sentResult)}`,
  );
  step(`POST /agents/${agentId}/messages: 200, sent (messageId ${sentResult.messageId})`);

  const state = await request<MessageState>('GET', `/agents/${agentId}/messages/${sentResult.messageId}`, agentKey);
  check(
    state.status === 'sent' && state.waMessageId === sentResult.waMessageId,
    `GET /agents/${agentId}/messages/${sentResult.messageId}: expected sent, got ${JSON.stringify(state)}`,
  );
  step(`GET /agents/${agentId}/messages/${sentResult.messageId}: 200, sent to ${state.to}`);

  const delivered = await request<SentEntry[]>('GET', `/sandbox/agents/${agentId}/sent`, adminKey);
  const only = delivered[0];
  check(
    delivered.length === 1 &&
      only?.kind === 'text' &&
      only.text === text &&
      only.to.startsWith(`${to}@`) &&
      only.messageId === sentResult.waMessageId,
    `GET /sandbox/agents/${agentId}/sent: expected exactly the text "${text}" to ${to}, got ${JSON.stringify(delivered)}`,
  );
  step(`GET /sandbox/agents/${agentId}/sent: exactly "${text}" to ${only.to}`);

  running.child.kill('SIGTERM');
  const exit = await Promise.race([running.exited, sleep(STOP_TIMEOUT_MS).then(() => null)]);
  if (exit === null) {
    running.child.kill('SIGKILL');
    throw new SmokeError(`the service did not exit within ${seconds(STOP_TIMEOUT_MS)} of SIGTERM: killed with SIGKILL`);
  }
  check(exit.code === 0, `the service exited with ${describeExit(exit)} after SIGTERM, expected code 0`);
  step('SIGTERM: exited with code 0');
}

// ------------------------------------------------------------------------------------------------------ entry point

let cleaning: Promise<string[]> | undefined;

/** Kills the service if it still runs and removes what the smoke created; runs once. Returns what failed. */
function cleanUp(): Promise<string[]> {
  cleaning ??= (async () => {
    const problems: string[] = [];
    const child = service?.child;
    if (service && child && service.exit() === null) {
      child.kill('SIGKILL');
      await Promise.race([service.exited, sleep(5_000)]);
      if (service.exit() === null) problems.push(`the service (pid ${child.pid}) did not die on SIGKILL`);
    }
    for (const { what, run } of cleanups.reverse()) {
      try {
        await run();
      } catch (err) {
        problems.push(`${what}: ${describe(err)}`);
      }
    }
    return problems;
  })();
  return cleaning;
}

function serviceLogTail(): string {
  const lines = (service?.output() ?? '').trimEnd().split('\n');
  if (lines.length === 1 && lines[0] === '') return '';
  const tail = lines.slice(-LOG_TAIL_LINES);
  const skipped = lines.length - tail.length;
  return `--- the service's output${skipped > 0 ? ` (last ${tail.length} lines)` : ''} ---\n${tail.join('\n')}\n---`;
}

let finishing = false;

async function finish(failure: string | undefined): Promise<void> {
  // The first outcome wins: an interrupt or the backstop while a step still runs ends the smoke there.
  if (finishing) return;
  finishing = true;
  if (failure) {
    const tail = serviceLogTail();
    if (tail) console.error(tail);
  }
  const problems = await cleanUp();
  for (const problem of problems) console.error(`smoke: cleanup failed: ${problem}`);
  if (failure) {
    console.error(`smoke: FAILED: ${failure}`);
    process.exit(1);
  }
  if (problems.length > 0) {
    console.error('smoke: FAILED: cleanup');
    process.exit(1);
  }
  console.log(`smoke: ok (${seconds(Date.now() - startedAt)})`);
  process.exit(0);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void finish(`interrupted by ${signal}`));
}
setTimeout(() => void finish(`gave up after ${seconds(OVERALL_TIMEOUT_MS)}`), OVERALL_TIMEOUT_MS).unref();

smoke().then(
  () => finish(undefined),
  (err: unknown) => finish(describe(err)),
);
