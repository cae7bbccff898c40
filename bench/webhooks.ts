// Webhooks benchmark (issue 16): events delivered to a local receiver by the service as `npm start` runs it.
// `node dist/main.js` (the tsc build) in a process of its own on 127.0.0.1, sandbox engine, on a scratch PostgreSQL
// database `wamt_bench_<random>` (created, then dropped on the way out); one receiver HTTP server in this process
// (127.0.0.1), answering 204 at once and verifying the Standard Webhooks signature of a sample; an AI stub in this
// process answering every inbound message at once (its reply is sent, so it is a message.sent event too).
// Events come through the real paths: POST /agents/{agentId}/messages (message.sent once the engine took the text)
// and POST /sandbox/agents/{agentId}/inbound (message.received when the message is stored, then the AI's reply).
//   1. the send path (sent/s, autocannon) with no endpoint, alternating with one endpoint that does not take
//      message.sent (the triggers then look, and insert nothing);
//   2. 50 admin-level endpoints taking message.sent and message.received: paced phases (p50/p99/max of event →
//      delivery), a burst (sustained deliveries/s while a backlog lasts), then a check that every expected delivery
//      arrived exactly once, signed, in order per endpoint and chat;
//   3. the send path again with the 50 endpoints taking message.sent.
// "event → delivery": the envelope's `timestamp` (the database's now() in the transaction that wrote the event, to the
// millisecond, truncated) to the moment the receiver has read the whole request (same host, same clock).
// `npm run bench webhooks`. Needs PostgreSQL: BENCH_DATABASE_URL or TEST_DATABASE_URL (a server URL); without one
// the bench says so and is skipped.
//
// Knobs (env): BENCH_WEBHOOK_ENDPOINTS (50), BENCH_WEBHOOK_AGENTS (8), BENCH_WEBHOOK_CONNECTIONS (64, the send path),
// BENCH_WEBHOOK_SEND_SECONDS (4 per round), BENCH_WEBHOOK_SEND_ROUNDS (3; 0 skips the send path),
// BENCH_WEBHOOK_PACED_SECONDS (8), BENCH_WEBHOOK_RATES ("4,20,200": paced event rates, each fanned out to every
// endpoint), BENCH_WEBHOOK_PACED_MAX_EVENTS (600 per paced phase), BENCH_WEBHOOK_BURST (300 sends),
// BENCH_WEBHOOK_SAMPLE (20: one delivery in this many has its signature verified), BENCH_NO_WRITE (print the section,
// leave BENCHMARKS.md as it is), BENCH_WEBHOOK_LOG_LEVEL (the service's LOG_LEVEL, warn), BENCH_WEBHOOK_NODE_OPTIONS
// (the service's NODE_OPTIONS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
//
// Self-checks (the run fails otherwise): every HTTP call answered as expected, nothing left unsent or pending, every
// expected delivery (each sent outbox row and stored inbound message × each endpoint) arrived exactly once, nothing
// else arrived, every sampled signature verified, no delivery of one agent's chat overtook an earlier one at an
// endpoint. Every wait is bounded; the service is killed, the servers closed and the database dropped on the way out.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import autocannon from 'autocannon';
import type pg from 'pg';
import { Webhook } from 'standardwebhooks';
import {
  type Answer,
  api,
  bootService,
  check,
  createScratchDatabase,
  errorText,
  HOST,
  pgClient,
  request,
  ScriptError,
  ScriptRun,
  type Service,
  seconds,
  sleep,
  stopService,
} from '../scripts/service-process.js';
import { percentile, writeSection } from './report.js';

function envNumber(name: string, fallback: number, min = 1): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be an integer ≥ ${min}`);
  return value;
}

const ENDPOINTS = envNumber('BENCH_WEBHOOK_ENDPOINTS', 50);
const AGENTS = envNumber('BENCH_WEBHOOK_AGENTS', 8);
const CONNECTIONS = envNumber('BENCH_WEBHOOK_CONNECTIONS', 64);
const SEND_SECONDS = envNumber('BENCH_WEBHOOK_SEND_SECONDS', 4);
const SEND_ROUNDS = envNumber('BENCH_WEBHOOK_SEND_ROUNDS', 3, 0);
const PACED_SECONDS = envNumber('BENCH_WEBHOOK_PACED_SECONDS', 8);
const RATES = (process.env.BENCH_WEBHOOK_RATES ?? '4,20,200').split(',').map((r) => Number(r.trim()));
if (RATES.some((r) => !Number.isInteger(r) || r < 2)) throw new Error('BENCH_WEBHOOK_RATES: integers ≥ 2');
const BURST = envNumber('BENCH_WEBHOOK_BURST', 300);
/** A paced phase stops after this many events (fewer seconds at the higher rates), to bound the run's time. */
const PACED_MAX_EVENTS = envNumber('BENCH_WEBHOOK_PACED_MAX_EVENTS', 600);
const SAMPLE = envNumber('BENCH_WEBHOOK_SAMPLE', 20);
const LOG_LEVEL = process.env.BENCH_WEBHOOK_LOG_LEVEL || 'warn';
/** The issue's target: p99 event → delivery under this at 200 events/s. */
const TARGET_P99_MS = 100;
const TARGET_RATE = 200;
const CHATS_PER_AGENT = 20;
const WARMUP_SECONDS = 2;
/** Sends in flight at once during the burst. */
const BURST_CONCURRENCY = 32;
/** How long a phase's deliveries may take to drain after its last event, at most. */
const DRAIN_TIMEOUT_MS = 90_000;
const DRAIN_POLL_MS = 100;
const OVERALL_TIMEOUT_MS = 8 * 60_000;

const run = new ScriptRun('webhooks');
const ADMIN = randomBytes(24).toString('hex');
const TAG = randomBytes(3).toString('hex');
const WEBHOOK_EVENTS = ['message.sent', 'message.received'];

// ---------------------------------------------------------------------------------------------------------- receiver

interface Arrival {
  /** Index of the endpoint (its path /hook/<index>). */
  endpoint: number;
  /** Position in the order of arrival, over all endpoints. */
  order: number;
  eventId: string;
  type: string;
  agentId: string;
  messageId: string;
  chatId: string;
  /** The envelope's timestamp, ms since the epoch. */
  eventAt: number;
  /** When the whole request was read, ms since the epoch (sub-millisecond). */
  at: number;
}

interface Receiver {
  url: string;
  arrivals: Arrival[];
  secrets: string[];
  verified: number;
  badSignatures: string[];
  malformed: number;
  close(): Promise<void>;
}

const wallNow = () => performance.timeOrigin + performance.now();

async function startReceiver(): Promise<Receiver> {
  const receiver: Receiver = {
    url: '',
    arrivals: [],
    secrets: [],
    verified: 0,
    badSignatures: [],
    malformed: 0,
    close: async () => {},
  };
  let count = 0;
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const at = wallNow();
      const body = Buffer.concat(chunks).toString('utf8');
      const match = /^\/hook\/(\d+)$/.exec(req.url ?? '');
      const endpoint = match ? Number(match[1]) : -1;
      try {
        const event = JSON.parse(body) as {
          id: string;
          type: string;
          agentId: string;
          timestamp: string;
          data: { messageId: string; chatId: string };
        };
        const order = count++;
        receiver.arrivals.push({
          endpoint,
          order,
          eventId: event.id,
          type: event.type,
          agentId: event.agentId,
          messageId: event.data.messageId,
          chatId: event.data.chatId,
          eventAt: Date.parse(event.timestamp),
          at,
        });
        if (order % SAMPLE === 0) {
          const secret = receiver.secrets[endpoint];
          try {
            if (secret === undefined) throw new Error('no such endpoint');
            new Webhook(secret).verify(body, {
              'webhook-id': String(req.headers['webhook-id']),
              'webhook-timestamp': String(req.headers['webhook-timestamp']),
              'webhook-signature': String(req.headers['webhook-signature']),
            });
            receiver.verified += 1;
          } catch (err) {
            receiver.badSignatures.push(`${req.url} ${event.id}: ${errorText(err)}`);
          }
        }
      } catch {
        receiver.malformed += 1;
      }
      res.statusCode = 204;
      res.end();
    });
  };
  const server: Server = createServer({ keepAliveTimeout: 60_000 }, handle);
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  receiver.url = `http://${HOST}:${(server.address() as AddressInfo).port}`;
  receiver.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return receiver;
}

/** The AI backend: answers every request at once with a reply. */
async function startAi(): Promise<{ url: string; requests: () => number; close(): Promise<void> }> {
  let requests = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      requests += 1;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ reply: 'Terima kasih' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  return {
    url: `http://${HOST}:${(server.address() as AddressInfo).port}`,
    requests: () => requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// --------------------------------------------------------------------------------------------------------------- API

interface Agent {
  agentId: string;
  key: string;
}

async function createAgent(service: Service, index: number): Promise<Agent> {
  const agent = { agentId: `wh-${TAG}-${index}`, key: `wh-key-${randomBytes(16).toString('hex')}` };
  const created = await request(service.base, 'POST', '/sessions?waitForQr=true', ADMIN, {
    userId: `wh-user-${index}`,
    agentId: agent.agentId,
    agentName: `Webhooks ${index}`,
    apikey: agent.key,
    engine: 'sandbox',
  });
  check(created.status === 200, `POST /sessions ${agent.agentId}: ${created.status} ${created.text}`);
  const scan = await request(service.base, 'POST', `/sandbox/agents/${agent.agentId}/scan`, ADMIN, {
    phone: `62811${String(index).padStart(8, '0')}`,
  });
  check(scan.status === 200, `scan ${agent.agentId}: ${scan.status} ${scan.text}`);
  return agent;
}

const chatOf = (n: number) => `62812${String(n % CHATS_PER_AGENT).padStart(8, '0')}`;

/** Events generated, with what the HTTP answers said. */
class Generator {
  sends = 0;
  inbound = 0;
  failures: string[] = [];
  private seq = 0;
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly service: Service,
    private readonly agents: Agent[],
  ) {}

  /** One send (message.sent); `wait`: the promise of its answer. */
  send(): Promise<void> {
    const n = this.seq++;
    const agent = this.agents[n % this.agents.length] as Agent;
    this.sends += 1;
    return this.track(
      request(this.service.base, 'POST', `/agents/${agent.agentId}/messages`, agent.key, {
        to: chatOf(Math.floor(n / this.agents.length)),
        message: `Halo ${n}`,
      }),
      (a) => a.status === 200 || a.status === 202,
      'send',
    );
  }

  /** One inbound message (message.received, then the AI's reply: message.sent). */
  receive(): Promise<void> {
    const n = this.seq++;
    const agent = this.agents[n % this.agents.length] as Agent;
    this.inbound += 1;
    return this.track(
      request(this.service.base, 'POST', `/sandbox/agents/${agent.agentId}/inbound`, ADMIN, {
        from: chatOf(Math.floor(n / this.agents.length)),
        text: `Pesan ${n}`,
        id: `WHB${TAG}${n}`,
      }),
      (a) => a.status === 200,
      'inbound',
    );
  }

  /** `rate` events/s for `secondsLong` s: a send, an inbound message (two events), a send, and so on in turn. */
  async paced(rate: number, secondsLong: number): Promise<void> {
    // 4 events per round of three requests: send, inbound (received + reply), send.
    const requests = Math.round((rate * secondsLong * 3) / 4);
    const tickMs = 5;
    const started = performance.now();
    let made = 0;
    while (made < requests) {
      const due = Math.min(requests, Math.floor(((performance.now() - started) / 1000) * ((rate * 3) / 4)) + 1);
      while (made < due) {
        if (made % 3 === 1) void this.receive();
        else void this.send();
        made += 1;
      }
      await sleep(tickMs);
    }
    await this.settled();
  }

  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  private track(answer: Promise<Answer>, ok: (a: Answer) => boolean, what: string): Promise<void> {
    const p: Promise<void> = answer
      .then(
        (a) => {
          if (!ok(a)) this.failures.push(`${what}: ${a.status} ${a.text.slice(0, 200)}`);
        },
        (err: unknown) => {
          this.failures.push(`${what}: ${errorText(err)}`);
        },
      )
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
    return p;
  }
}

// ---------------------------------------------------------------------------------------------------------- database

/** Waits until nothing is queued or sending, no delivery pending, and every inbound message answered, for 3 polls. */
async function drain(db: pg.Client, ai: { requests: () => number }, inbound: number): Promise<number> {
  const began = Date.now();
  let quiet = 0;
  let last = '';
  for (let poll = 0; poll < DRAIN_TIMEOUT_MS / DRAIN_POLL_MS && Date.now() - began < DRAIN_TIMEOUT_MS; poll++) {
    const { rows } = await db.query(
      `SELECT (SELECT count(*)::int FROM outbox_messages WHERE status IN ('queued', 'sending')) AS outbox,
              (SELECT count(*)::int FROM webhook_deliveries WHERE status = 'pending') AS pending,
              (SELECT count(*)::int FROM inbound_messages) AS stored`,
    );
    const row = rows[0] as { outbox: number; pending: number; stored: number };
    last = JSON.stringify({ ...row, aiRequests: ai.requests(), inbound });
    const idle = row.outbox === 0 && row.pending === 0 && row.stored >= inbound && ai.requests() >= inbound;
    quiet = idle ? quiet + 1 : 0;
    if (quiet >= 3) return Date.now() - began;
    await sleep(DRAIN_POLL_MS);
  }
  throw new ScriptError(`not drained within ${seconds(DRAIN_TIMEOUT_MS)}: ${last}`);
}

/** The server processes of the scratch database's connections (the service's pools and this process's client). */
async function backendPids(db: pg.Client): Promise<number[]> {
  const { rows } = await db.query('SELECT pid FROM pg_stat_activity WHERE datname = current_database()');
  return rows.map((row: { pid: number }) => row.pid);
}

/**
 * CPU ms of the database's backends since `before` (pid → CPU ms then): those still there by their difference, those
 * that connected meanwhile in full (the CPU of one that went away meanwhile is lost).
 */
async function postgresCpuSince(db: pg.Client, before: ReadonlyMap<number, number>): Promise<number> {
  let total = 0;
  for (const pid of await backendPids(db)) total += Math.max(0, processCpuMs(pid) - (before.get(pid) ?? 0));
  return total;
}

async function deliveriesCount(db: pg.Client): Promise<number> {
  const { rows } = await db.query('SELECT count(*)::int AS n FROM webhook_deliveries');
  return (rows[0] as { n: number }).n;
}

// ------------------------------------------------------------------------------------------------------------ stats

function processCpuMs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return 0;
  }
}

const sorted = (values: number[]) => [...values].sort((a, b) => a - b);
const f1 = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : '-');
const f0 = (v: number) => (Number.isFinite(v) ? v.toFixed(0) : '-');
const median = (values: number[]) => percentile(sorted(values), 50);

interface Latency {
  deliveries: number;
  events: number;
  p50: number;
  p99: number;
  max: number;
  /** Per event, until its last endpoint had it. */
  allP50: number;
  allP99: number;
  /** Deliveries per second between the first and the last arrival. */
  rate: number;
}

function latency(arrivals: Arrival[]): Latency {
  const values = sorted(arrivals.map((a) => a.at - a.eventAt));
  const perEvent = new Map<string, number>();
  for (const a of arrivals) perEvent.set(a.eventId, Math.max(perEvent.get(a.eventId) ?? 0, a.at - a.eventAt));
  const all = sorted([...perEvent.values()]);
  const first = Math.min(...arrivals.map((a) => a.at));
  const last = Math.max(...arrivals.map((a) => a.at));
  return {
    deliveries: arrivals.length,
    events: perEvent.size,
    p50: percentile(values, 50),
    p99: percentile(values, 99),
    max: values.at(-1) ?? Number.NaN,
    allP50: percentile(all, 50),
    allP99: percentile(all, 99),
    rate: last > first ? (arrivals.length - 1) / ((last - first) / 1000) : Number.NaN,
  };
}

interface SendRound {
  scenario: string;
  sentPerS: number;
  p50: number;
  p99: number;
  other: number;
  errors: number;
  serviceCpu: number;
}

// -------------------------------------------------------------------------------------------------------------- main

async function main(): Promise<void> {
  const adminUrl = process.env.BENCH_DATABASE_URL || process.env.TEST_DATABASE_URL;
  if (!adminUrl) {
    console.log('webhooks: skipped: set BENCH_DATABASE_URL or TEST_DATABASE_URL to a PostgreSQL server URL');
    return;
  }
  const loadAtStart = os.loadavg()[0] ?? 0;
  const database = await createScratchDatabase(run, adminUrl, 'wamt_bench');
  run.step(`scratch database ${database.label}`);
  const receiver = await startReceiver();
  run.onCleanup('receiver', () => receiver.close());
  const ai = await startAi();
  run.onCleanup('AI stub', () => ai.close());
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wamt-bench-webhooks-'));
  run.onCleanup('directory', () => rm(dir, { recursive: true, force: true }));
  const service = await bootService(run, {
    dataDir: path.join(dir, 'data'),
    cwd: dir,
    adminKey: ADMIN,
    dbUrl: database.url,
    databaseLabel: `PostgreSQL ${database.label}`,
    logLevel: LOG_LEVEL,
    env: {
      AI_BACKEND_URL: ai.url,
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
      RATE_LIMIT_PER_MINUTE: '100000000',
      RATE_LIMIT_BURST: '100000000',
      QUEUE_MAX_PER_AGENT: '100000',
      ...(process.env.BENCH_WEBHOOK_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_WEBHOOK_NODE_OPTIONS } : {}),
    },
  });
  const db = pgClient(database.url);
  await db.connect();
  run.onCleanup('database client', () => db.end());

  const agents: Agent[] = [];
  for (let i = 0; i < AGENTS; i++) agents.push(await createAgent(service, i));
  run.step(`${AGENTS} sandbox agents connected`);

  // -------------------------------------------------------------------------------------- 1. the send path, 0 vs 1
  const body = JSON.stringify({ to: '6281234567890', message: 'Halo dari webhooks' });
  const requests: autocannon.Request[] = agents.map((agent) => ({
    method: 'POST',
    path: `/agents/${agent.agentId}/messages`,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${agent.key}` },
    body,
  }));
  const sendRound = async (scenario: string, secondsLong: number): Promise<SendRound> => {
    const cpuBefore = processCpuMs(service.child.pid);
    let client = 0;
    const result = await autocannon({
      url: service.base,
      connections: CONNECTIONS,
      duration: secondsLong,
      requests,
      setupClient: (c) => {
        const offset = client++ % requests.length;
        c.setRequests([...requests.slice(offset), ...requests.slice(0, offset)]);
      },
      timeout: 30,
    });
    const serviceCpu = (processCpuMs(service.child.pid) - cpuBefore) / 1000 / result.duration;
    const stats = (result as autocannon.Result & { statusCodeStats?: Record<string, { count: number }> })
      .statusCodeStats;
    const ok = stats?.['200']?.count ?? 0;
    const round: SendRound = {
      scenario,
      sentPerS: ok / result.duration,
      p50: result.latency.p50,
      p99: result.latency.p99,
      other: result.non2xx + result['2xx'] - ok,
      errors: result.errors + result.timeouts,
      serviceCpu,
    };
    run.step(`send path, ${scenario}: ${f0(round.sentPerS)} sent/s`);
    return round;
  };
  const createEndpoint = async (index: number, events: string[]): Promise<string> => {
    const created = await api<{ id: string; secret: string }>(
      service.base,
      'POST',
      '/webhooks',
      ADMIN,
      { url: `${receiver.url}/hook/${index}`, events, description: `bench ${index}` },
      201,
    );
    receiver.secrets[index] = created.secret;
    return created.id;
  };
  const setEnabled = async (id: string, enabled: boolean) => {
    const answer = await request(service.base, 'PATCH', `/webhooks/${id}`, ADMIN, { enabled });
    check(answer.status === 200, `PATCH /webhooks/${id}: ${answer.status} ${answer.text}`);
  };

  if (SEND_ROUNDS > 0) await sendRound('warm-up', WARMUP_SECONDS);
  // The lone endpoint takes message.received only: every send's statements run the triggers' look and emit nothing.
  const lone = await createEndpoint(ENDPOINTS, ['message.received']);
  await setEnabled(lone, false);
  const noneRounds: SendRound[] = [];
  const loneRounds: SendRound[] = [];
  for (let r = 0; r < SEND_ROUNDS; r++) {
    noneRounds.push(await sendRound('no endpoint enabled', SEND_SECONDS));
    await setEnabled(lone, true);
    loneRounds.push(await sendRound('1 endpoint, not taking message.sent', SEND_SECONDS));
    await setEnabled(lone, false);
  }
  await drain(db, ai, 0);
  check((await deliveriesCount(db)) === 0, 'deliveries were written while no endpoint took message.sent');

  // ------------------------------------------------------------------------------------------ 2. 50 endpoints
  const endpointIds: string[] = [];
  for (let i = 0; i < ENDPOINTS; i++) endpointIds.push(await createEndpoint(i, WEBHOOK_EVENTS));
  const { rows: marks } = await db.query(`SELECT coalesce(max(seq), 0)::float8 AS seq FROM outbox_messages`);
  const outboxMark = (marks[0] as { seq: number }).seq;
  run.step(`${ENDPOINTS} admin-level endpoints created (${WEBHOOK_EVENTS.join(', ')})`);
  const generator = new Generator(service, agents);

  interface Phase {
    name: string;
    rate: number | null;
    from: number;
    to: number;
    drainMs: number;
    /** CPU ms over the phase: the service's process, the scratch database's backends, this process. */
    cpu: { service: number; postgres: number; bench: number };
    load: number;
  }
  const phases: Phase[] = [];
  const phase = async (name: string, rate: number | null, work: () => Promise<void>) => {
    const load = os.loadavg()[0] ?? 0;
    const from = Date.now();
    const backendsBefore = new Map((await backendPids(db)).map((pid) => [pid, processCpuMs(pid)]));
    const serviceBefore = processCpuMs(service.child.pid);
    const benchBefore = process.cpuUsage();
    await work();
    const drainMs = await drain(db, ai, generator.inbound);
    const to = Date.now();
    const bench = process.cpuUsage(benchBefore);
    phases.push({
      name,
      rate,
      from,
      to,
      drainMs,
      load,
      cpu: {
        service: processCpuMs(service.child.pid) - serviceBefore,
        postgres: await postgresCpuSince(db, backendsBefore),
        bench: (bench.user + bench.system) / 1000,
      },
    });
    const last = phases.at(-1);
    run.step(
      `${name}: done, drained ${seconds(drainMs)} after the last event; CPU s service ${f1((last?.cpu.service ?? 0) / 1000)}, ` +
        `PostgreSQL ${f1((last?.cpu.postgres ?? 0) / 1000)}, bench ${f1((last?.cpu.bench ?? 0) / 1000)}`,
    );
  };
  // A short warm-up of the delivery path (JIT, connections), not reported.
  await phase('warm-up', null, () => generator.paced(8, 2));
  const pacedSeconds = (rate: number) => Math.min(PACED_SECONDS, PACED_MAX_EVENTS / rate);
  for (const rate of RATES) await phase(`${rate} events/s`, rate, () => generator.paced(rate, pacedSeconds(rate)));
  await phase(`burst of ${BURST} sends`, null, async () => {
    let next = 0;
    const worker = async () => {
      while (next < BURST) {
        next += 1;
        await generator.send();
      }
    };
    await Promise.all(Array.from({ length: BURST_CONCURRENCY }, worker));
  });
  check(generator.failures.length === 0, `requests failed: ${generator.failures.slice(0, 5).join('; ')}`);

  // ---------------------------------------------------------------------------------------------------- the check
  const { rows: expectedSent } = await db.query(`SELECT id FROM outbox_messages WHERE status = 'sent' AND seq > $1`, [
    outboxMark,
  ]);
  const { rows: expectedReceived } = await db.query('SELECT wa_message_id AS id FROM inbound_messages');
  const { rows: notSent } = await db.query(`SELECT count(*)::int AS n FROM outbox_messages WHERE status <> 'sent'`);
  check((notSent[0] as { n: number }).n === 0, 'some outbox rows were not sent');
  const expected = new Set<string>();
  for (const row of expectedSent as Array<{ id: string }>) expected.add(`message.sent ${row.id}`);
  for (const row of expectedReceived as Array<{ id: string }>) expected.add(`message.received ${row.id}`);
  const seen = new Map<string, number>();
  let unexpected = 0;
  for (const a of receiver.arrivals) {
    const key = `${a.endpoint} ${a.type} ${a.messageId}`;
    if (!expected.has(`${a.type} ${a.messageId}`) || a.endpoint < 0 || a.endpoint >= ENDPOINTS) unexpected += 1;
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  let missing = 0;
  let duplicates = 0;
  for (let e = 0; e < ENDPOINTS; e++) {
    for (const key of expected) {
      const n = seen.get(`${e} ${key}`) ?? 0;
      if (n === 0) missing += 1;
      if (n > 1) duplicates += n - 1;
    }
  }
  // Order: per endpoint and chat, the arrivals follow the deliveries' seq (the order the events were written in).
  const { rows: deliveryRows } = await db.query(
    `SELECT d.event_id, d.seq::float8 AS seq, d.attempts, d.status, e.url
     FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id`,
  );
  const seqOf = new Map<string, number>();
  let retried = 0;
  let notDelivered = 0;
  for (const row of deliveryRows as Array<{
    event_id: string;
    seq: number;
    attempts: number;
    status: string;
    url: string;
  }>) {
    const endpoint = Number(/\/hook\/(\d+)$/.exec(row.url)?.[1] ?? -1);
    seqOf.set(`${endpoint} ${row.event_id}`, row.seq);
    if (row.attempts > 1) retried += 1;
    if (row.status !== 'delivered') notDelivered += 1;
  }
  // Per endpoint, agent and chat (the order a receiver can rely on), and per endpoint and chat across agents (the
  // deliveries' order_key is the chat alone: two agents talking to one number share it).
  const inversions = (keyOf: (a: Arrival) => string) => {
    let count = 0;
    const examples: string[] = [];
    const last = new Map<string, Arrival>();
    for (const a of [...receiver.arrivals].sort((x, y) => x.order - y.order)) {
      const key = keyOf(a);
      const before = last.get(key);
      const seq = seqOf.get(`${a.endpoint} ${a.eventId}`) ?? Number.NaN;
      const beforeSeq = before ? (seqOf.get(`${before.endpoint} ${before.eventId}`) ?? Number.NaN) : -1;
      if (before && seq < beforeSeq) {
        count += 1;
        if (examples.length < 3) {
          examples.push(
            `${before.type} ${before.agentId} seq ${beforeSeq} (event at ${new Date(before.eventAt).toISOString()}) ` +
              `before ${a.type} ${a.agentId} seq ${seq} (event at ${new Date(a.eventAt).toISOString()})`,
          );
        }
      } else last.set(key, a);
    }
    return { count, examples };
  };
  const agentOrder = inversions((a) => `${a.endpoint} ${a.agentId} ${a.chatId}`);
  const chatOrder = inversions((a) => `${a.endpoint} ${a.chatId}`);
  const outOfOrder = agentOrder.count;
  for (const example of [...agentOrder.examples, ...chatOrder.examples]) run.step(`out of order: ${example}`);
  const expectedDeliveries = expected.size * ENDPOINTS;
  const checkLine =
    `${receiver.arrivals.length} deliveries arrived for ${expected.size} events × ${ENDPOINTS} endpoints = ` +
    `${expectedDeliveries} expected: ${missing} missing, ${duplicates} duplicates, ${unexpected} unexpected, ` +
    `${outOfOrder} out of order per endpoint, agent and chat (${chatOrder.count} per endpoint and chat across agents); ${receiver.verified} signatures verified (1 in ${SAMPLE}), ` +
    `${receiver.badSignatures.length} bad; ${retried} deliveries took more than one attempt, ${notDelivered} not delivered`;
  run.step(checkLine);
  check(
    missing === 0 &&
      duplicates === 0 &&
      unexpected === 0 &&
      outOfOrder === 0 &&
      receiver.badSignatures.length === 0 &&
      receiver.malformed === 0 &&
      notDelivered === 0 &&
      receiver.arrivals.length === expectedDeliveries,
    `the check failed: ${checkLine}${receiver.badSignatures.length > 0 ? `; ${receiver.badSignatures[0]}` : ''}`,
  );

  // ----------------------------------------------------------------------------- 3. the send path, 50 endpoints
  // Last: the deliveries it queues are not waited for (the service is stopped, the database dropped).
  const fullRounds: SendRound[] = [];
  const deliveriesBefore = await deliveriesCount(db);
  const arrivalsBefore = receiver.arrivals.length;
  for (let r = 0; r < Math.min(2, SEND_ROUNDS); r++) {
    fullRounds.push(await sendRound(`${ENDPOINTS} endpoints taking message.sent`, SEND_SECONDS));
  }
  const queuedDuring = (await deliveriesCount(db)) - deliveriesBefore;
  const deliveredDuring = receiver.arrivals.length - arrivalsBefore;
  for (const id of endpointIds) await setEnabled(id, false);
  await stopService(service);
  run.step('service stopped');

  // --------------------------------------------------------------------------------------------------- report
  const arrivalsIn = (p: Phase) => receiver.arrivals.filter((a) => a.eventAt >= p.from - 1 && a.eventAt <= p.to);
  const measured = phases.filter((p) => p.name !== 'warm-up');
  const results = measured.map((p) => ({ p, l: latency(arrivalsIn(p)) }));
  const paced = results.filter((r) => r.p.rate !== null);
  const burst = results.find((r) => r.p.rate === null);
  check(burst, 'no burst phase');
  const at200 = paced.find((r) => r.p.rate === TARGET_RATE);
  const small = paced.find((r) => r.p.rate !== null && r.p.rate * ENDPOINTS <= TARGET_RATE);
  const median0 = median(noneRounds.map((r) => r.sentPerS));
  const median1 = median(loneRounds.map((r) => r.sentPerS));
  const median50 = median(fullRounds.map((r) => r.sentPerS));
  const verdict = (l: Latency | undefined) =>
    l === undefined ? 'not measured' : l.p99 < TARGET_P99_MS ? '**met**' : '**missed**';

  const cpuPer = (p: Phase, l: Latency) =>
    [p.cpu.service, p.cpu.postgres, p.cpu.bench].map((ms) => (ms / Math.max(1, l.deliveries)).toFixed(3)).join(' / ');
  const pacedRows = paced
    .map(
      ({ p, l }) =>
        `| ${p.rate} events/s × ${ENDPOINTS} = ${(p.rate ?? 0) * ENDPOINTS} deliveries/s | ${l.events} | ` +
        `${l.deliveries} | ${f1(l.p50)} / ${f1(l.p99)} / ${f1(l.max)} | ${f1(l.allP50)} / ${f1(l.allP99)} | ` +
        `${f0(l.rate)} | ${seconds(p.drainMs)} | ${cpuPer(p, l)} | ${p.load.toFixed(1)} |`,
    )
    .join('\n');
  const sendRow = (rounds: SendRound[], what: string) => {
    const mid = rounds.find((r) => r.sentPerS === median(rounds.map((x) => x.sentPerS))) ?? rounds[0];
    return `| ${what} | **${f0(median(rounds.map((r) => r.sentPerS)))}** | ${rounds.map((r) => f0(r.sentPerS)).join(', ')} | ${mid ? `${mid.p50} / ${mid.p99}` : '-'} | ${rounds.reduce((n, r) => n + r.other, 0)} | ${rounds.reduce((n, r) => n + r.errors, 0)} | ${f1(mid?.serviceCpu ?? Number.NaN)} |`;
  };

  const text = `\`node dist/main.js\` (the tsc build) in a process of its own on 127.0.0.1, sandbox engine, \`LOG_LEVEL=${LOG_LEVEL}\`,
on a scratch PostgreSQL database on the same machine; ${AGENTS} connected agents; per-agent rate limits raised out of the
way. One receiver HTTP server in the bench's process (127.0.0.1) answers 204 at once and verifies the Standard
Webhooks signature of one delivery in ${SAMPLE} (\`standardwebhooks\`); an AI stub there answers every inbound message at
once. ${ENDPOINTS} admin-level endpoints (every agent's events), each with its own path and secret, take
\`message.sent\` and \`message.received\`. Dispatcher settings at their defaults: \`WEBHOOK_CONCURRENCY_PER_ENDPOINT\`=4,
\`WEBHOOK_CONCURRENCY_MAX\`=64. Load average ${loadAtStart.toFixed(1)} when the run started (other work was running on the
machine: the figures are noisy).

Events come through the real paths, in turn: a send (\`POST /agents/{agentId}/messages\` → \`message.sent\` once the
engine took it), an inbound message (\`POST /sandbox/agents/{agentId}/inbound\` → \`message.received\` when it is
stored, then the AI's reply → \`message.sent\`), a send; ${CHATS_PER_AGENT} chats per agent. **event → delivery** runs from the
envelope's \`timestamp\` (the database's \`now()\` in the transaction that wrote the event, truncated to the
millisecond) to the moment the receiver had read the whole request; "all ${ENDPOINTS}" is, per event, until its last
endpoint had it.

### Event → delivery, paced

Each rate is events per second, **each fanned out to all ${ENDPOINTS} endpoints** (so 4 events/s is ${4 * ENDPOINTS} deliveries/s);
${PACED_SECONDS} s each (at most ${PACED_MAX_EVENTS} events: ${RATES.map((r) => `${f1(pacedSeconds(r))} s at ${r}`).join(', ')}), then the deliveries drain (the
time after the last event until none was pending).

| offered | events | deliveries | event → delivery p50 / p99 / max (ms) | event → all ${ENDPOINTS} p50 / p99 (ms) | deliveries/s | drained after | CPU ms per delivery: service / PostgreSQL / bench | load |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
${pacedRows}

By type (p50 / p99 ms of event → delivery): ${paced
    .map(({ p }) => {
      const of = (type: string) => latency(arrivalsIn(p).filter((a) => a.type === type));
      const [received, sent] = [of('message.received'), of('message.sent')];
      return `${p.rate} events/s: \`message.received\` ${f1(received.p50)} / ${f1(received.p99)}, \`message.sent\` ${f1(sent.p50)} / ${f1(sent.p99)}`;
    })
    .join('; ')}. A \`message.sent\` event's transaction is the outbox's write of the send's outcome, which is
written behind the send (it shares statements with the next batches' rows) and committed durably; a
\`message.received\` event's is the inbound message's insert (a relaxed commit).

Target: p99 event → delivery under ${TARGET_P99_MS} ms at ${TARGET_RATE} events/s: ${verdict(at200?.l)}${at200 ? ` (${f1(at200.l.p99)} ms)` : ''}${
    at200 && at200.l.rate < 0.9 * TARGET_RATE * ENDPOINTS
      ? `: ${TARGET_RATE} events/s × ${ENDPOINTS} endpoints is ${TARGET_RATE * ENDPOINTS} deliveries/s, more than the ${f0(at200.l.rate)}/s delivered here, so the deliveries queue up and the p99 is the wait at the end of that queue`
      : ''
  }.
At ${TARGET_RATE} deliveries/s (${small?.p.rate ?? '-'} events/s × ${ENDPOINTS}): ${verdict(small?.l)}${small ? ` (p99 ${f1(small.l.p99)} ms)` : ''}.

### Sustained deliveries

${BURST} sends, ${BURST_CONCURRENCY} at once through the API (${burst.l.events} events, ${burst.l.deliveries} deliveries): the
dispatcher works through the backlog at **${f0(burst.l.rate)} deliveries/s** (${f0(burst.l.rate / ENDPOINTS)} events/s × ${ENDPOINTS}
endpoints), from the first arrival to the last; event → delivery p50 / p99 / max ${f1(burst.l.p50)} / ${f1(burst.l.p99)} / ${f1(burst.l.max)} ms
(the wait in the backlog). CPU per delivery (service / PostgreSQL backends / bench: receiver, API calls): ${cpuPer(burst.p, burst.l)} ms.

**Check**: ${checkLine}.

### The send path and the triggers

\`POST /agents/{agentId}/messages\` through autocannon (in the bench's process), ${CONNECTIONS} connections over the agents in turn,
${SEND_SECONDS} s rounds after a ${WARMUP_SECONDS} s warm-up; a 200 is a text sent within \`SEND_WAIT_MS\`; the figure is 200s per second.
"No endpoint enabled" and "1 endpoint not taking \`message.sent\`" alternate (the endpoint enabled and disabled
between rounds); with an endpoint enabled, each statement that marks outbox rows sent runs \`wamt_webhook_emit\`,
which finds no endpoint for the type and inserts nothing (with none enabled, the trigger returns after one
\`EXISTS\`). The ${ENDPOINTS}-endpoint rounds run last: each text sent then writes one event row in the same statement, and the
dispatcher expands each into ${ENDPOINTS} deliveries and works on them meanwhile, on the same two cores (${queuedDuring} deliveries written, ${deliveredDuring} delivered during those rounds:
the rounds' texts all go to one chat, whose events reach each endpoint one at a time, in order).

| endpoints | sent/s (median) | every round | p50 / p99 ms (median round) | other answers | errors | service CPU s/s |
| --- | --- | --- | --- | --- | --- | --- |
${sendRow(noneRounds, 'none enabled')}
${sendRow(loneRounds, '1, not taking `message.sent`')}
${sendRow(fullRounds, `${ENDPOINTS} taking \`message.sent\``)}

1 endpoint not subscribed: **${f0((median1 / median0) * 100)} %** of the sends per second with none; ${ENDPOINTS} subscribed:
**${f0((median50 / median0) * 100)} %**. "CPU s/s" is CPU seconds per second of the service's process (/proc/<pid>/stat) and of the
bench's (receiver, AI stub, load); PostgreSQL and other work on the machine take the rest.`;
  console.log(text);
  if (!process.env.BENCH_NO_WRITE) writeSection('webhooks', 'Webhooks', text);
}

run.start(main, OVERALL_TIMEOUT_MS);
