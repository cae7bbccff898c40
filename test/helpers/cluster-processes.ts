// Several `node dist/main.js` processes on one scratch PostgreSQL database, as members of one cluster (sandbox engine,
// 127.0.0.1, a free port, a DATA_DIR and a working directory of their own each), and what the cluster tests do with
// them: create and scan agents, send load through a "load balancer" that picks a member per request, read the lease
// and live-state tables, read one member's own memory (its sandbox sent log, its view of the sessions) and its log
// events. Every wait is bounded in count and in time; close() kills every process it started and drops the database.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Agent, request as send } from 'undici';
import { describeExit, errorText, HOST, MAIN, sleep, withClient } from '../../scripts/service-process.js';
import { EMBEDDED_API_KEYS_SQL } from '../../src/db/migrations/index.js';

export const ADMIN_KEY = 'cluster-processes-admin-key-0123456789';
export const CLUSTER_SECRET = 'cluster-processes-secret-0123456789';
/** The peer headers of a forwarded request: the member answers from its own memory instead of forwarding. */
export const PEER_HEADERS = { 'x-wamt-forwarded-by': 'cluster-test', 'x-wamt-cluster-secret': CLUSTER_SECRET };

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;
const REQUEST_TIMEOUT_MS = 15_000;
const LOG_TAIL_LINES = 60;
const BOOT_ATTEMPTS = 3;
/** Ends a member whose test process died without cleaning up (see the file). */
const WATCHDOG = new URL('./parent-watchdog.mjs', import.meta.url).href;
const REQUEST_LINE = /"msg":"(incoming request|request completed)"/;

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One line of a member's JSON log that names an event. */
export interface LogEvent {
  time: number;
  event: string;
  agentId?: string;
  epoch?: number;
  cause?: string;
  reason?: string;
  /** Which start of the member wrote it (0 for the first). */
  incarnation: number;
  [key: string]: unknown;
}

export interface HttpAnswer {
  status: number;
  body: unknown;
  text: string;
}

/** The request never got an answer: refused, reset, or timed out. */
export class ConnectionError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port from the OS'));
      });
    });
  });
}

/** Every child of every cluster of this worker: killed when the worker exits, whatever happened. */
const everyChild = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of everyChild) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

export class MemberProcess {
  child: ChildProcess | undefined;
  /** Log events of every start of this member, in order. */
  readonly events: LogEvent[] = [];
  paused = false;
  /** /health/ready answered 200 since its last start: a load balancer sends it requests. */
  ready = false;
  private incarnation = -1;
  private lastExit: Exit | null = null;
  private exitedPromise: Promise<Exit> = Promise.resolve({ code: null, signal: null });
  private tail: string[] = [];

  constructor(
    readonly id: string,
    public port: number,
    readonly dataDir: string,
    readonly cwd: string,
    readonly env: Record<string, string>,
  ) {}

  get base(): string {
    return `http://${HOST}:${this.port}`;
  }

  /** Started, not exited (it may be paused). */
  get running(): boolean {
    return this.child !== undefined && this.lastExit === null;
  }

  get exited(): Promise<Exit> {
    return this.exitedPromise;
  }

  exit(): Exit | null {
    return this.lastExit;
  }

  /** The events of the current start only. */
  currentEvents(): LogEvent[] {
    return this.events.filter((e) => e.incarnation === this.incarnation);
  }

  logTail(): string {
    return this.tail.join('\n');
  }

  spawn(): void {
    this.incarnation += 1;
    const incarnation = this.incarnation;
    this.lastExit = null;
    this.paused = false;
    this.ready = false;
    this.tail = [];
    const child = spawn(process.execPath, ['--import', WATCHDOG, MAIN], {
      cwd: this.cwd,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...this.env, PORT: String(this.port) },
      // stdin: a pipe the watchdog reads, whose end closes when this process is gone.
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child = child;
    everyChild.add(child);
    let partial = '';
    const onData = (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) this.onLine(line, incarnation);
    };
    child.stdout?.setEncoding('utf8').on('data', onData);
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) if (line) this.keep(`[stderr] ${line}`);
    });
    this.exitedPromise = new Promise<Exit>((resolve) => {
      child.once('exit', (code, signal) => {
        everyChild.delete(child);
        if (partial) this.onLine(partial, incarnation);
        this.lastExit = { code, signal };
        this.paused = false;
        this.ready = false;
        resolve(this.lastExit);
      });
      child.once('error', (err) => {
        everyChild.delete(child);
        this.keep(`spawn failed: ${err.message}`);
        this.lastExit = { code: null, signal: null };
        resolve(this.lastExit);
      });
    });
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.running) throw new Error(`${this.id} is not running (${signal})`);
    this.child?.kill(signal);
    if (signal === 'SIGSTOP') this.paused = true;
    if (signal === 'SIGCONT') this.paused = false;
  }

  private onLine(line: string, incarnation: number): void {
    if (!line) return;
    // The tail is for a failure's message: the two lines of every request would crowd out the rest.
    if (!REQUEST_LINE.test(line)) this.keep(line);
    if (!line.startsWith('{')) return;
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    // Times are ISO strings with milliseconds (the service's logger).
    const time = typeof parsed.time === 'string' ? Date.parse(parsed.time) : Number.NaN;
    if (typeof parsed.event !== 'string' || Number.isNaN(time)) return;
    this.events.push({ ...parsed, time, event: parsed.event, incarnation });
  }

  private keep(line: string): void {
    this.tail.push(line);
    if (this.tail.length > 2 * LOG_TAIL_LINES) this.tail = this.tail.slice(-LOG_TAIL_LINES);
  }
}

export interface ClusterOptions {
  /** Environment of every member (beside the cluster's own variables). */
  env?: Record<string, string>;
  ttlMs: number;
}

export interface TestAgent {
  agentId: string;
  key: string;
  phone: string;
}

export interface LeaseRow {
  agentId: string;
  owner: string | null;
  epoch: number;
  live: boolean;
}

/** Who holds each agent's live lease, and who publishes it as running, connected or not. */
export interface Placement {
  agentId: string;
  /** The lease's owner when the lease is live, else null. */
  leaseOwner: string | null;
  epoch: number;
  /** The member that last published the session as running it (session_live). */
  liveOwner: string | null;
  ready: boolean;
}

export class ProcessCluster {
  readonly members = new Map<string, MemberProcess>();
  readonly agents: TestAgent[] = [];
  readonly db: pg.Pool;
  private readonly http = new Agent({ connections: 64, keepAliveTimeout: 4_000, connect: { timeout: 2_000 } });
  private closed = false;

  private constructor(
    readonly name: string,
    readonly url: string,
    private readonly adminUrl: string,
    readonly root: string,
    readonly options: ClusterOptions,
  ) {
    this.db = new pg.Pool({ connectionString: url, max: 4, application_name: 'cluster-test' });
    this.db.on('error', () => {});
  }

  /** A scratch database on TEST_DATABASE_URL's server, with the api_keys table production has, and a temp root. */
  static async create(options: ClusterOptions): Promise<ProcessCluster> {
    const adminUrl = process.env.TEST_DATABASE_URL;
    if (!adminUrl) throw new Error('TEST_DATABASE_URL is not set');
    const name = `wamt_cluster_${randomBytes(5).toString('hex')}`;
    await withClient(adminUrl, (client) => client.query(`CREATE DATABASE ${name}`));
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    await withClient(url.toString(), (client) => client.query(EMBEDDED_API_KEYS_SQL));
    const root = await mkdtemp(path.join(os.tmpdir(), 'wamt-cluster-'));
    return new ProcessCluster(name, url.toString(), adminUrl, root, options);
  }

  member(id: string): MemberProcess {
    const member = this.members.get(id);
    if (!member) throw new Error(`no member ${id}`);
    return member;
  }

  /** Members a load balancer sends requests to: ready since their start, running, not paused. */
  up(): MemberProcess[] {
    return [...this.members.values()].filter((m) => m.running && m.ready && !m.paused);
  }

  /** Boots a new member (or starts a stopped one again, on its port and DATA_DIR) and waits for /health/ready. */
  async start(id: string, env: Record<string, string> = {}): Promise<MemberProcess> {
    let member = this.members.get(id);
    if (member?.running) throw new Error(`${id} runs already`);
    for (let attempt = 1; ; attempt++) {
      if (!member || attempt > 1) {
        const port = await freePort();
        if (member) member.port = port;
        else {
          const dir = path.join(this.root, id);
          await mkdir(path.join(dir, 'data'), { recursive: true });
          await mkdir(path.join(dir, 'cwd'), { recursive: true });
          member = new MemberProcess(id, port, path.join(dir, 'data'), path.join(dir, 'cwd'), {});
          this.members.set(id, member);
        }
      }
      Object.assign(member.env, this.environment(member, env));
      member.spawn();
      try {
        await this.waitReady(member);
        member.ready = true;
        return member;
      } catch (err) {
        const taken = member.exit() !== null && member.logTail().includes('EADDRINUSE');
        if (!taken || attempt >= BOOT_ATTEMPTS) throw err;
      }
    }
  }

  /** SIGTERM, then the exit (bounded); SIGKILL and a failure when it takes longer. */
  async stop(id: string): Promise<{ exit: Exit; ms: number }> {
    const member = this.member(id);
    const startedAt = Date.now();
    member.signal('SIGTERM');
    const exit = await Promise.race([member.exited, sleep(STOP_TIMEOUT_MS).then(() => null)]);
    if (exit === null) {
      member.child?.kill('SIGKILL');
      throw new Error(`${id} did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM\n${member.logTail()}`);
    }
    return { exit, ms: Date.now() - startedAt };
  }

  /** SIGKILL, and waits for the exit. */
  async kill(id: string): Promise<void> {
    const member = this.member(id);
    member.signal('SIGKILL');
    await Promise.race([member.exited, sleep(5_000)]);
    if (member.running) throw new Error(`${id} did not die on SIGKILL`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const problems: string[] = [];
    for (const member of this.members.values()) {
      if (!member.running) continue;
      member.child?.kill('SIGKILL'); // a stopped (SIGSTOP) process dies on SIGKILL too
      await Promise.race([member.exited, sleep(5_000)]);
      if (member.running) problems.push(`${member.id} (pid ${member.child?.pid}) did not die on SIGKILL`);
    }
    await this.http.close().catch(() => {});
    await this.db.end().catch(() => {});
    await withClient(this.adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${this.name} WITH (FORCE)`));
    await rm(this.root, { recursive: true, force: true });
    if (problems.length > 0) throw new Error(problems.join('; '));
  }

  /** The last lines of every member's output, for a failure's message. */
  diagnostics(): string {
    return [...this.members.values()]
      .map((m) => `--- ${m.id} (${m.exit() ? describeExit(m.exit() as Exit) : 'running'}) ---\n${m.logTail()}`)
      .join('\n');
  }

  // ------------------------------------------------------------------------------------------------------------ HTTP

  /** One request to one member; throws ConnectionError when no answer came. */
  async call(
    member: MemberProcess,
    method: 'GET' | 'POST' | 'DELETE',
    pathname: string,
    options: { token?: string; body?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {},
  ): Promise<HttpAnswer> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS;
    let answer: Awaited<ReturnType<typeof send>>;
    try {
      answer = await send(`${member.base}${pathname}`, {
        method,
        headers,
        body: options.body === undefined ? null : JSON.stringify(options.body),
        dispatcher: this.http,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      throw new ConnectionError(`${method} ${member.id}${pathname}: ${errorText(err)}`, String(code ?? 'unknown'));
    }
    let text: string;
    try {
      text = await answer.body.text();
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      throw new ConnectionError(`${method} ${member.id}${pathname}: body: ${errorText(err)}`, String(code ?? 'body'));
    }
    let body: unknown = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    return { status: answer.statusCode, body, text };
  }

  /** The `data` of an admin request that must answer 200. */
  async admin<T>(member: MemberProcess, method: 'GET' | 'POST', pathname: string, body?: unknown): Promise<T> {
    const answer = await this.call(member, method, pathname, {
      token: ADMIN_KEY,
      ...(body === undefined ? {} : { body }),
    });
    if (answer.status !== 200) {
      throw new Error(`${method} ${member.id}${pathname}: expected 200, got ${answer.status}: ${answer.text}`);
    }
    return (answer.body as { data: T }).data;
  }

  /** What this member's own sandbox sent for the agent (never forwarded): its memory, kept after the session moved. */
  async sentBy(member: MemberProcess, agentId: string): Promise<SentEntry[]> {
    const answer = await this.call(member, 'GET', `/sandbox/agents/${agentId}/sent`, {
      token: ADMIN_KEY,
      headers: PEER_HEADERS,
    });
    if (answer.status !== 200)
      throw new Error(`sent log of ${agentId} on ${member.id}: ${answer.status} ${answer.text}`);
    return (answer.body as { data: SentEntry[] }).data.filter((entry) => entry.kind === 'text');
  }

  /** The agents whose session this member runs now, as it says itself (the `owner` of GET /sessions). */
  async runningOn(member: MemberProcess): Promise<Set<string>> {
    const running = new Set<string>();
    for (let offset = 0; offset < 10_000; offset += 200) {
      const page = await this.admin<{ items: Array<{ agentId: string; owner: string | null }>; total: number }>(
        member,
        'GET',
        `/sessions?limit=200&offset=${offset}`,
      );
      for (const item of page.items) if (item.owner === member.id) running.add(item.agentId);
      if (offset + 200 >= page.total) break;
    }
    return running;
  }

  /** A gauge or counter of the member's /metrics (without labels). */
  async metric(member: MemberProcess, name: string): Promise<number> {
    const answer = await this.call(member, 'GET', '/metrics', { timeoutMs: 5_000 });
    const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(answer.text);
    if (!match?.[1]) throw new Error(`${name} not in the metrics of ${member.id}`);
    return Number(match[1]);
  }

  // ---------------------------------------------------------------------------------------------------------- agents

  /**
   * Creates `count` sandbox agents, each through the member `createVia(i)` picks, and scans each through the member
   * `scanVia(i)` picks (forwarded to its owner when that is another one); a few at a time.
   */
  async createAgents(
    count: number,
    createVia: (index: number) => MemberProcess,
    scanVia: (index: number) => MemberProcess,
    concurrency = 4,
  ): Promise<TestAgent[]> {
    const first = this.agents.length;
    const created: TestAgent[] = Array.from({ length: count }, (_, i) => {
      const n = first + i;
      return {
        agentId: `agent-${String(n).padStart(3, '0')}`,
        key: `agent-key-${n}-${randomBytes(8).toString('hex')}`,
        phone: `6281200${String(n).padStart(5, '0')}`,
      };
    });
    let next = 0;
    const worker = async () => {
      while (next < created.length) {
        const index = next++;
        const agent = created[index] as TestAgent;
        await this.admin(createVia(index), 'POST', '/sessions', {
          userId: `user-${agent.agentId}`,
          agentId: agent.agentId,
          agentName: agent.agentId,
          apikey: agent.key,
          engine: 'sandbox',
        });
        await this.admin(scanVia(index), 'POST', `/sandbox/agents/${agent.agentId}/scan`, { phone: agent.phone });
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    this.agents.push(...created);
    return created;
  }

  agent(agentId: string): TestAgent {
    const agent = this.agents.find((a) => a.agentId === agentId);
    if (!agent) throw new Error(`no agent ${agentId}`);
    return agent;
  }

  // -------------------------------------------------------------------------------------------------------- database

  async leases(): Promise<LeaseRow[]> {
    const { rows } = await this.db.query<{ agent_id: string; owner: string | null; epoch: string; live: boolean }>(
      'SELECT agent_id, owner, epoch, expires_at > now() AS live FROM session_leases ORDER BY agent_id',
    );
    return rows.map((r) => ({ agentId: r.agent_id, owner: r.owner, epoch: Number(r.epoch), live: r.live }));
  }

  /** Live leases per owner. */
  async leaseCounts(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (const lease of await this.leases()) {
      if (lease.live && lease.owner) counts.set(lease.owner, (counts.get(lease.owner) ?? 0) + 1);
    }
    return counts;
  }

  /** Every agent's lease and published live state, read in one statement. */
  async placements(): Promise<Map<string, Placement>> {
    const { rows } = await this.db.query<{
      agent_id: string;
      lease_owner: string | null;
      epoch: string | null;
      live_owner: string | null;
      ready: boolean | null;
    }>(
      `SELECT u.agent_id,
              CASE WHEN l.expires_at > now() THEN l.owner END AS lease_owner,
              l.epoch, s.owner AS live_owner, (s.state->>'isReady')::boolean AS ready
       FROM whatsapp_user u
       LEFT JOIN session_leases l ON l.agent_id = u.agent_id
       LEFT JOIN session_live s ON s.agent_id = u.agent_id
       ORDER BY u.agent_id`,
    );
    return new Map(
      rows.map((r) => [
        r.agent_id,
        {
          agentId: r.agent_id,
          leaseOwner: r.lease_owner,
          epoch: Number(r.epoch ?? 0),
          liveOwner: r.live_owner,
          ready: r.ready === true,
        },
      ]),
    );
  }

  /** Connections a member holds on the database (its pools and listener name themselves after it). */
  async connectionsOf(id: string): Promise<number> {
    const { rows } = await this.db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1',
      [id],
    );
    return rows[0]?.n ?? 0;
  }

  async outbox(ids?: readonly string[]): Promise<OutboxRow[]> {
    const { rows } = await this.db.query<{
      id: string;
      agent_id: string;
      status: string;
      wa_message_id: string | null;
      text: string | null;
      idempotency_key: string | null;
    }>(
      `SELECT id, agent_id, status, wa_message_id, payload->>'text' AS text, idempotency_key FROM outbox_messages
       ${ids ? 'WHERE id = ANY($1)' : ''}`,
      ids ? [ids] : [],
    );
    return rows.map((r) => ({
      id: r.id,
      agentId: r.agent_id,
      status: r.status,
      waMessageId: r.wa_message_id,
      text: r.text,
      key: r.idempotency_key,
    }));
  }

  private environment(member: MemberProcess, extra: Record<string, string>): Record<string, string> {
    const dbUrl = new URL(this.url);
    // Its connections carry its name, so the test can tell when a killed member's last statement is over.
    dbUrl.searchParams.set('application_name', member.id);
    return {
      NODE_ENV: 'production',
      HOST,
      DATA_DIR: member.dataDir,
      DB_URL: dbUrl.toString(),
      WA_ENGINE: 'sandbox',
      ADMIN_API_KEY: ADMIN_KEY,
      LOG_LEVEL: 'info',
      INSTANCE_ID: member.id,
      INSTANCE_URL: `http://${HOST}:${member.port}`,
      LEASE_TTL_MS: String(this.options.ttlMs),
      CLUSTER_SECRET,
      // Agents created on one member are known to the others within this.
      KEY_SYNC_INTERVAL_MS: '500',
      ...this.options.env,
      ...extra,
    };
  }

  private async waitReady(member: MemberProcess): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let last = 'no answer yet';
    for (let attempt = 0; attempt < READY_TIMEOUT_MS / 100 && Date.now() < deadline; attempt++) {
      const exit = member.exit();
      if (exit) throw new Error(`${member.id} exited (${describeExit(exit)}) before it was ready\n${member.logTail()}`);
      try {
        const answer = await this.call(member, 'GET', '/health/ready', { timeoutMs: 2_000 });
        if (answer.status === 200) return;
        last = `${answer.status} ${answer.text.slice(0, 200)}`;
      } catch (err) {
        last = errorText(err);
      }
      await sleep(100);
    }
    throw new Error(`${member.id} was not ready within ${READY_TIMEOUT_MS} ms (last: ${last})\n${member.logTail()}`);
  }
}

export interface SentEntry {
  messageId: string;
  to: string;
  kind: string;
  text?: string;
  at: string;
}

export interface OutboxRow {
  id: string;
  agentId: string;
  status: string;
  waMessageId: string | null;
  text: string | null;
  key: string | null;
}

/**
 * Polls `probe` every `pollMs` until it returns a value (not undefined); bounded in time and in polls. The error
 * names what was awaited and the last state `describe` gives.
 */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
  { pollMs = 100, describe }: { pollMs?: number; describe?: () => string } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  const maxPolls = Math.ceil(timeoutMs / pollMs) + 1;
  for (let poll = 0; poll < maxPolls; poll++) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) break;
    await sleep(pollMs);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms${describe ? ` (${describe()})` : ''}`);
}

export { sleep };

// ------------------------------------------------------------------------------------------------------------- load

export interface Attempt {
  member: string;
  startedAt: number;
  endedAt: number;
  /** null: no answer (connection refused or reset, timeout). */
  status: number | null;
  /** The error code of the answer, or of the connection error. */
  code?: string;
  text?: string;
}

export interface LoadMessage {
  seq: number;
  agentId: string;
  to: string;
  text: string;
  /** Idempotency-Key: every attempt of one message carries it, so a retry can never make a second message. */
  key: string;
  startedAt: number;
  attempts: Attempt[];
  /** The 200/202 answer, if one came. */
  ack?: { messageId: string; status: string; waMessageId: string | null; member: string; at: number };
  /** Answered 200/202, answered something that is no reason to retry, or out of attempts. */
  outcome?: 'acked' | 'refused' | 'gave_up';
}

export interface LoadOptions {
  /** The agents to send to, read at every message. */
  agents: () => readonly TestAgent[];
  /** The members a load balancer would send to now, read at every attempt. */
  targets: () => MemberProcess[];
  concurrency: number;
  /** Pause of each sender between two messages. */
  thinkMs?: number;
  /** Attempts per message, across members. */
  attempts?: number;
  maxMessages?: number;
  /** Per request. */
  timeoutMs?: number;
}

/** What a retry after an answer is for: the session moving, or a member that is going away. */
const RETRIED_CODES = new Set(['SESSION_NOT_READY', 'RATE_LIMITED', 'SERVICE_UNAVAILABLE']);

/**
 * Senders that each send one text after another, to a random agent through a random member of `targets()`, with an
 * Idempotency-Key; a request that got no answer (the member stopped listening or died) is retried at once on another
 * member, as a load balancer would; 409 SESSION_NOT_READY, 429 and 503 are retried after a moment, as a client would.
 */
export class SendLoad {
  readonly messages: LoadMessage[] = [];
  private running = false;
  private workers: Promise<void>[] = [];
  private seq = 0;
  private readonly tag = randomBytes(3).toString('hex');

  constructor(
    private readonly cluster: ProcessCluster,
    private readonly options: LoadOptions,
  ) {}

  start(): void {
    this.running = true;
    this.workers = Array.from({ length: this.options.concurrency }, () => this.worker());
  }

  /** Stops the senders and waits for the messages under way (each bounded by its attempts and their timeouts). */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.workers);
  }

  acked(): LoadMessage[] {
    return this.messages.filter((m) => m.outcome === 'acked');
  }

  /** Every attempt's outcome, counted: "200", "409 SESSION_NOT_READY", "no answer ECONNREFUSED", … */
  tally(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const message of this.messages) {
      for (const attempt of message.attempts) {
        const label =
          attempt.status === null
            ? `no answer ${attempt.code}`
            : `${attempt.status}${attempt.code ? ` ${attempt.code}` : ''}`;
        counts[label] = (counts[label] ?? 0) + 1;
      }
    }
    return counts;
  }

  attempts(): Attempt[] {
    return this.messages.flatMap((m) => m.attempts);
  }

  private async worker(): Promise<void> {
    const max = this.options.maxMessages ?? 20_000;
    while (this.running && this.seq < max) {
      const agents = this.options.agents();
      const agent = agents[Math.floor(Math.random() * agents.length)];
      if (!agent) return;
      await this.sendOne(agent);
      if (this.options.thinkMs) await sleep(this.options.thinkMs);
    }
  }

  private async sendOne(agent: TestAgent): Promise<void> {
    const seq = ++this.seq;
    const message: LoadMessage = {
      seq,
      agentId: agent.agentId,
      to: `62813${String(seq % 100_000).padStart(5, '0')}`,
      text: `load ${this.tag} #${seq} for ${agent.agentId}`,
      key: `load-${this.tag}-${seq}`,
      startedAt: Date.now(),
      attempts: [],
    };
    this.messages.push(message);
    let avoid: string | undefined;
    for (let attempt = 0; attempt < (this.options.attempts ?? 12); attempt++) {
      const targets = this.options.targets();
      const choices = targets.filter((m) => m.id !== avoid);
      const pool = choices.length > 0 ? choices : targets;
      const member = pool[Math.floor(Math.random() * pool.length)];
      if (!member) {
        await sleep(100);
        continue;
      }
      const record: Attempt = { member: member.id, startedAt: Date.now(), endedAt: 0, status: null };
      message.attempts.push(record);
      try {
        const answer = await this.cluster.call(member, 'POST', `/agents/${agent.agentId}/messages`, {
          token: agent.key,
          headers: { 'idempotency-key': message.key },
          body: { to: message.to, message: message.text },
          timeoutMs: this.options.timeoutMs ?? 10_000,
        });
        record.endedAt = Date.now();
        record.status = answer.status;
        if (answer.status === 200 || answer.status === 202) {
          const data = (answer.body as { data: { messageId: string; status: string; waMessageId: string | null } })
            .data;
          message.ack = { ...data, member: member.id, at: record.endedAt };
          message.outcome = 'acked';
          return;
        }
        const code = (answer.body as { error?: { code?: string } } | null)?.error?.code;
        if (code) record.code = code;
        record.text = answer.text.slice(0, 300);
        if (!code || !RETRIED_CODES.has(code)) {
          message.outcome = 'refused';
          return;
        }
        await sleep(200);
      } catch (err) {
        if (!(err instanceof ConnectionError)) throw err;
        record.endedAt = Date.now();
        record.code = err.code;
        record.text = err.message;
        avoid = member.id;
      }
    }
    message.outcome = 'gave_up';
  }
}

/**
 * Waits until every row of the outbox is settled (sent or failed), bounded; returns the rows by message id. Rows
 * that stay queued are left for the caller's assertions.
 */
export async function settleOutbox(cluster: ProcessCluster, timeoutMs: number): Promise<Map<string, OutboxRow>> {
  let rows: OutboxRow[] = [];
  try {
    await waitFor(
      'every message settled',
      timeoutMs,
      async () => {
        rows = await cluster.outbox();
        return rows.every((r) => r.status === 'sent' || r.status === 'failed') ? true : undefined;
      },
      { pollMs: 250 },
    );
  } catch {
    // The caller's assertions say which rows are unsettled.
  }
  return new Map(rows.map((r) => [r.id, r]));
}

/**
 * What the outbox says of the load: acknowledged messages whose row is missing, not `sent`, or not theirs (another
 * text, agent or key); rows not `sent`; keys with more than one row; 200 answers whose waMessageId is not the row's.
 */
export function outboxProblems(
  load: SendLoad,
  rows: Map<string, OutboxRow>,
): {
  lost: string[];
  unsent: string[];
  keyTwice: string[];
  answeredOtherId: LoadMessage[];
} {
  const lost: string[] = [];
  const answeredOtherId: LoadMessage[] = [];
  for (const message of load.acked()) {
    const ack = message.ack;
    const row = ack ? rows.get(ack.messageId) : undefined;
    if (!ack || !row || row.status !== 'sent' || !row.waMessageId) {
      lost.push(`#${message.seq} ${ack?.messageId}: ${row ? `${row.status}` : 'no row'}`);
    } else if (row.text !== message.text || row.agentId !== message.agentId || row.key !== message.key) {
      lost.push(`#${message.seq} ${ack.messageId}: the row is another message's (${row.text})`);
    } else if (ack.status === 'sent' && ack.waMessageId !== row.waMessageId) {
      answeredOtherId.push(message);
    }
  }
  const unsent = [...rows.values()].filter((r) => r.status !== 'sent').map((r) => `${r.id} ${r.status}`);
  const byKey = new Map<string, number>();
  for (const row of rows.values()) if (row.key) byKey.set(row.key, (byKey.get(row.key) ?? 0) + 1);
  const keyTwice = [...byKey].filter(([, n]) => n > 1).map(([key]) => key);
  return { lost, unsent, keyTwice, answeredOtherId };
}

/** The texts that more than one sent-log entry holds, across these members' logs: text → "member:messageId". */
export function sentTwice(logs: Map<string, Map<string, SentEntry[]>>): Map<string, string[]> {
  const all = new Map<string, string[]>();
  for (const [member, byText] of logs) {
    for (const [text, entries] of byText) {
      all.set(text, [...(all.get(text) ?? []), ...entries.map((e) => `${member}:${e.messageId}`)]);
    }
  }
  return new Map([...all].filter(([, where]) => where.length > 1));
}

/** Each member's own sent log (texts), for these agents: member → text → entries. */
export async function sentLogs(
  cluster: ProcessCluster,
  members: readonly MemberProcess[],
  agentIds: readonly string[],
): Promise<Map<string, Map<string, AgentSentEntry[]>>> {
  const logs = new Map<string, Map<string, AgentSentEntry[]>>();
  for (const member of members) {
    const byText = new Map<string, AgentSentEntry[]>();
    for (const agentId of agentIds) {
      for (const entry of await cluster.sentBy(member, agentId)) {
        const text = entry.text ?? '';
        byText.set(text, [...(byText.get(text) ?? []), { ...entry, agentId }]);
      }
    }
    logs.set(member.id, byText);
  }
  return logs;
}

export type AgentSentEntry = SentEntry & { agentId: string };
