// Outbound throughput with every message committed before it is sent: POST /agents/{agentId}/messages on the sandbox
// engine (rate limit raised) against a bare Fastify route answering the same JSON, in alternating rounds of one run,
// at each connection count; the database statements per message; then the same service on a database made slower per
// statement (client-side added latency), to show that its commits stay grouped instead of one per request.
// Run with `npm run bench messages`. Uses PostgreSQL when TEST_DATABASE_URL is set, else PGlite in this process.
//
// Knobs (env): BENCH_CONNECTIONS ("32,256"), BENCH_ROUNDS (5), BENCH_DURATION (8 s per run), BENCH_WARMUP (3 s),
// BENCH_AGENTS (8), BENCH_SLOW_MS (2; 0 skips the slow-database scenario), BENCH_SLOW_ROUNDS (3).
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import type { FastifyInstance } from 'fastify';
import Fastify from 'fastify';
import type { Database, QueryFn } from '../src/db/client.js';
import { createTestDatabase, type TestDatabase } from '../test/helpers/database.js';
import { until } from '../test/helpers/messaging.js';
import { fromBuild } from './build.js';
import { writeSection } from './report.js';

const { buildApp } = await fromBuild<typeof import('../src/app.js')>('app.js');
const { loadConfig } = await fromBuild<typeof import('../src/config.js')>('config.js');
const { createContainer } = await fromBuild<typeof import('../src/container.js')>('container.js');
const { openDatabase } = await fromBuild<typeof import('../src/db/client.js')>('db/client.js');
const { createLogger } = await fromBuild<typeof import('../src/observability/logger.js')>('observability/logger.js');

function envNumber(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number ≥ 0`);
  return value;
}

const DURATION_S = envNumber('BENCH_DURATION', 8);
/** Rounds of (bare, service), alternated so that a slow spell of the machine weighs on both; the median reported. */
const ROUNDS = Math.max(1, envNumber('BENCH_ROUNDS', 5));
const CONNECTIONS = (process.env.BENCH_CONNECTIONS ?? '32,256').split(',').map((c) => Number(c.trim()));
if (CONNECTIONS.length === 0 || CONNECTIONS.some((c) => !Number.isInteger(c) || c <= 0)) {
  throw new Error('BENCH_CONNECTIONS must be a comma-separated list of positive integers');
}
const WARMUP_S = envNumber('BENCH_WARMUP', 3);
const AGENTS = Math.max(1, envNumber('BENCH_AGENTS', 8));
/** Added to every statement in the second scenario; 0 skips it. */
const SLOW_MS = envNumber('BENCH_SLOW_MS', 2);
const SLOW_ROUNDS = Math.max(1, envNumber('BENCH_SLOW_ROUNDS', 3));
/** The issue's target: the service at this share of the bare route's throughput, at every connection count. */
const TARGET = 0.4;
/** The service's default pool size, which is what this measures (the test helper's pool holds 5). */
const POOL_SIZE = 10;
const ADMIN = 'bench-admin-key-0123456789';
const startedAt = performance.now();
const loadAtStart = os.loadavg()[0] ?? 0;

const log = (line: string) =>
  process.stderr.write(`[messages ${((performance.now() - startedAt) / 1000).toFixed(0)} s] ${line}\n`);

/** The statements the service sends, counted at its raw-SQL entry points, by prepared statement name. */
class Statements {
  total = 0;
  /** Summed time from call to result (or error), waits for a connection and added latency included. */
  totalMs = 0;
  readonly byName = new Map<string, number>();

  add(name: string): void {
    this.total += 1;
    this.byName.set(name, (this.byName.get(name) ?? 0) + 1);
  }

  reset(): void {
    this.total = 0;
    this.totalMs = 0;
    this.byName.clear();
  }

  describe(): string {
    return [...this.byName.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([name, n]) => `${n} × \`${name}\``)
      .join(', ');
  }
}

/** Counts every statement: `query`, `queryRelaxed` (named with " (relaxed)") and the queries of `withConnection`. */
function counting(database: Database, statements: Statements): Database {
  const count =
    (query: QueryFn, suffix = ''): QueryFn =>
    (sql, params, name) => {
      statements.add(`${name ?? 'unnamed'}${suffix}`);
      const started = performance.now();
      const result = query(sql, params, name);
      const done = () => {
        statements.totalMs += performance.now() - started;
      };
      result.then(done, done);
      return result;
    };
  return {
    ...database,
    query: count((sql, params, name) => database.query(sql, params, name)),
    queryRelaxed: count((sql, params, name) => database.queryRelaxed(sql, params, name), ' (relaxed)'),
    withConnection: (fn) => database.withConnection((query) => fn(count(query))),
  };
}

/** The waits actually taken by `slowed` (a timer fires at the earliest after its delay). */
class AddedDelay {
  totalMs = 0;
  count = 0;

  get meanMs(): number {
    return this.totalMs / Math.max(1, this.count);
  }
}

/**
 * Every statement waits `ms` (a timer) before it goes to the driver: a client-side added latency standing in for a
 * slower or remote server. The wait comes before the pool hands out a connection, except in `withConnection`.
 */
function slowed(database: Database, ms: number, delay: AddedDelay): Database {
  const slow =
    (query: QueryFn): QueryFn =>
    async (sql, params, name) => {
      const waitStarted = performance.now();
      await sleep(ms);
      delay.totalMs += performance.now() - waitStarted;
      delay.count += 1;
      return query(sql, params, name);
    };
  return {
    ...database,
    query: slow((sql, params, name) => database.query(sql, params, name)),
    queryRelaxed: slow((sql, params, name) => database.queryRelaxed(sql, params, name)),
    withConnection: (fn) => database.withConnection((query) => fn(slow(query))),
  };
}

interface Service {
  url: string;
  app: FastifyInstance;
  test: TestDatabase;
  /** The database the service was given: counted, and slowed in the second scenario. */
  database: Database;
  statements: Statements;
  requests: autocannon.Request[];
  close(): Promise<void>;
}

/** A container and app on a fresh database of their own, with AGENTS connected sandbox agents, listening. */
async function startService(slowMs: number, delay: AddedDelay): Promise<Service> {
  const test = await createTestDatabase();
  const pool = test.url ? await openDatabase({ url: test.url, poolSize: POOL_SIZE }) : test.database;
  const statements = new Statements();
  // Counted at the entry, so the count sees each statement once, whatever waits behind it.
  const database = counting(slowMs > 0 ? slowed(pool, slowMs, delay) : pool, statements);
  const dataDir = await mkdtemp(path.join(tmpdir(), 'wamt-bench-messages-'));
  const config = loadConfig({
    DATA_DIR: dataDir,
    WA_ENGINE: 'sandbox',
    ADMIN_API_KEY: ADMIN,
    LOG_LEVEL: 'silent',
    RATE_LIMIT_PER_MINUTE: '100000000',
    RATE_LIMIT_BURST: '100000000',
    QUEUE_MAX_PER_AGENT: '100000',
  });
  const container = await createContainer(config, {
    database,
    logger: createLogger({ level: 'silent' }),
    collectProcessMetrics: false,
  });
  const app = await buildApp(container);
  await container.start();
  const agents: string[] = [];
  for (let i = 0; i < AGENTS; i++) {
    const agentId = `bench-${i}`;
    const res = await app.inject({
      method: 'POST',
      url: '/sessions',
      headers: { authorization: `Bearer ${ADMIN}` },
      payload: { userId: 'bench', agentId, agentName: agentId, apikey: `key-${agentId}-0123456789` },
    });
    if (res.statusCode !== 200) throw new Error(`create ${agentId}: ${res.body}`);
    await container.sessions.waitForQr(agentId);
    await container.sandbox?.scan(agentId, `6281${String(i).padStart(9, '0')}`);
    await container.supervisor.settled(agentId);
    agents.push(agentId);
  }
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  // Built once, so the load generator (same process) spends as little per request on either target: the requests
  // take turns among the agents, each with its own key.
  const requests: autocannon.Request[] = agents.map((agentId) => ({
    method: 'POST',
    path: `/agents/${agentId}/messages`,
    headers: { 'content-type': 'application/json', authorization: `Bearer key-${agentId}-0123456789` },
    body,
  }));
  return {
    url,
    app,
    test,
    database,
    statements,
    requests,
    async close() {
      await app.close();
      if (pool !== test.database) await pool.close();
      await test.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

const body = JSON.stringify({ to: '6281234567890', message: 'Halo dari API' });

// The same response shape, with no auth, validation, database or engine behind it.
const bare = Fastify({ logger: false });
bare.post('/bare', async (request) => ({
  data: { delivered: true, messageId: randomUUID(), status: 'sent', waMessageId: `true_${randomUUID()}` },
  traceId: request.id,
}));
const bareUrl = await bare.listen({ host: '127.0.0.1', port: 0 });
const bareRequests: autocannon.Request[] = [
  { method: 'POST', path: '/bare', headers: { 'content-type': 'application/json' }, body },
];

function load(url: string, requests: autocannon.Request[], connections: number, duration: number) {
  return autocannon({ url, connections, duration, requests });
}

/**
 * Waits until every accepted message has its outcome written (no row short of sent or failed) and no row has
 * changed for 200 ms: outcomes are written behind the sends. False when that did not happen within 60 s.
 */
async function settle(test: TestDatabase): Promise<boolean> {
  let seen = '';
  let changedAt = performance.now();
  try {
    await until(async () => {
      const [row] = await test.database.query(
        `SELECT count(*)::int AS n, count(*) FILTER (WHERE status NOT IN ('sent', 'failed'))::int AS pending,
           coalesce(max(updated_at), now())::text AS latest
         FROM outbox_messages`,
      );
      const state = `${row?.n}/${row?.pending}/${row?.latest}`;
      if (state !== seen) {
        seen = state;
        changedAt = performance.now();
      }
      return Number(row?.pending) === 0 && performance.now() - changedAt >= 200;
    }, 60_000);
    return true;
  } catch {
    return false;
  }
}

const maxSeq = async (test: TestDatabase) =>
  Number((await test.database.query('SELECT coalesce(max(seq), 0)::int AS n FROM outbox_messages'))[0]?.n);

interface Round {
  bare: autocannon.Result | undefined;
  service: autocannon.Result;
  /** service / bare req/s, when the round ran both. */
  ratio: number | undefined;
}

interface Measurement {
  connections: number;
  rounds: Round[];
  /** The round with the median ratio (or the median service req/s, without bare runs). */
  median: Round;
  messages: number;
  sent: number;
  statements: number;
  /** Mean time from call to result of a statement, over the rounds. */
  statementMs: number;
  names: string;
  settled: boolean;
}

const reqs = (r: autocannon.Result) => r.requests.average.toFixed(0);
const pct = (ratio: number | undefined) => (ratio === undefined ? '-' : `${(ratio * 100).toFixed(0)} %`);

/** ROUNDS at one connection count; statements and rows counted from the first round to the last outcome written. */
async function measure(service: Service, connections: number, rounds: number, withBare: boolean): Promise<Measurement> {
  await settle(service.test); // what came before (warm-up, the previous connection count) is not counted
  const seqBefore = await maxSeq(service.test);
  service.statements.reset();
  const list: Round[] = [];
  for (let round = 0; round < rounds; round++) {
    const bareResult = withBare ? await load(bareUrl, bareRequests, connections, DURATION_S) : undefined;
    const serviceResult = await load(service.url, service.requests, connections, DURATION_S);
    const ratio = bareResult ? serviceResult.requests.average / bareResult.requests.average : undefined;
    list.push({ bare: bareResult, service: serviceResult, ratio });
    log(
      `${connections} connections, round ${round + 1}/${rounds}: ${bareResult ? `bare ${reqs(bareResult)} / ` : ''}service ${reqs(serviceResult)} req/s${ratio === undefined ? '' : ` (${pct(ratio)})`}`,
    );
  }
  const settled = await settle(service.test);
  const statements = service.statements.total;
  const statementMs = service.statements.totalMs / Math.max(1, statements);
  const names = service.statements.describe();
  const count = async (where: string) =>
    Number(
      (
        await service.test.database.query(`SELECT count(*)::int AS n FROM outbox_messages WHERE seq > $1 ${where}`, [
          seqBefore,
        ])
      )[0]?.n,
    );
  const key = (r: Round) => r.ratio ?? r.service.requests.average;
  // The lower middle for an even count of rounds: never the better of two.
  const median = [...list].sort((a, b) => key(a) - key(b))[Math.floor((list.length - 1) / 2)] as Round;
  return {
    connections,
    rounds: list,
    median,
    messages: await count(''),
    sent: await count(`AND status = 'sent'`),
    statements,
    statementMs,
    names,
    settled,
  };
}

/**
 * What one durable commit of a one-row insert costs through this database (with its added latency, if any), in ms:
 * an ordinary table, since a temporary one skips the write-ahead log and its flush to disk.
 */
async function loneCommitMs(database: Database): Promise<number> {
  const n = 50;
  return database.withConnection(async (query) => {
    await query('CREATE TABLE IF NOT EXISTS bench_commit (n int)');
    try {
      const started = performance.now();
      for (let i = 0; i < n; i++) await query('INSERT INTO bench_commit VALUES ($1)', [i]);
      return (performance.now() - started) / n;
    } finally {
      await query('DROP TABLE bench_commit');
    }
  });
}

const perMessage = (m: Measurement) => m.statements / Math.max(1, m.messages);
const perStatement = (m: Measurement) => m.messages / Math.max(1, m.statements);
/** Not in @types/autocannon, but autocannon 9 reports it: answers by HTTP status. */
const answers = (r: autocannon.Result) =>
  Object.entries(
    (r as autocannon.Result & { statusCodeStats?: Record<string, { count: number }> }).statusCodeStats ?? {},
  )
    .map(([code, { count }]) => `${count} × ${code}`)
    .join(', ') || 'n/a';
const unsettled = (m: Measurement) =>
  m.settled ? '' : ' (some messages still had no outcome 60 s after the last round: counts are a floor)';

// Scenario 1: the database as it is.
log(`database: ${process.env.TEST_DATABASE_URL ? 'PostgreSQL' : 'PGlite'}; connections ${CONNECTIONS.join(', ')}`);
const fast = await startService(0, new AddedDelay());
// Warm-up, not reported: JIT for autocannon, Fastify and the service's code alike.
await load(bareUrl, bareRequests, CONNECTIONS[0] as number, WARMUP_S);
await load(fast.url, fast.requests, CONNECTIONS[0] as number, WARMUP_S);
const fastRuns: Measurement[] = [];
for (const connections of CONNECTIONS) fastRuns.push(await measure(fast, connections, ROUNDS, true));
const commitMs = await loneCommitMs(fast.database);
await fast.close();
globalThis.gc?.();

// Scenario 2: the same service on a fresh database, every statement 2 ms slower, after the first one is closed.
const slowRuns: Measurement[] = [];
let slowCommitMs = Number.NaN;
/** The mean wait actually added per statement over the measured rounds. */
let slowDelayMs = Number.NaN;
if (SLOW_MS > 0) {
  const delay = new AddedDelay();
  const slow = await startService(SLOW_MS, delay);
  await load(slow.url, slow.requests, CONNECTIONS[0] as number, WARMUP_S);
  delay.totalMs = 0;
  delay.count = 0;
  for (const connections of CONNECTIONS) slowRuns.push(await measure(slow, connections, SLOW_ROUNDS, false));
  slowDelayMs = delay.meanMs; // before the lone commits, which wait with an idle event loop
  slowCommitMs = await loneCommitMs(slow.database);
  await slow.close();
}
await bare.close();

const database = process.env.TEST_DATABASE_URL ? 'PostgreSQL' : 'PGlite in this process';
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
const errors = (r: autocannon.Result) => r.errors + r.timeouts;
const latency = (r: autocannon.Result) => `${r.latency.p50} / ${r.latency.p99}`;
const ratioOf = (m: Measurement) => m.median.ratio ?? 0;
const allMet = fastRuns.every((m) => ratioOf(m) >= TARGET);

const fastTable = fastRuns
  .flatMap((m) => {
    const { bare: b, service: s } = m.median;
    return [
      b
        ? `| ${m.connections} | bare Fastify route | ${reqs(b)} | ${b.latency.p50} | ${b.latency.p99} | ${b.non2xx} | ${errors(b)} | |`
        : '',
      `| ${m.connections} | POST /agents/{agentId}/messages | ${reqs(s)} | ${s.latency.p50} | ${s.latency.p99} | ${s.non2xx} | ${errors(s)} | **${pct(m.median.ratio)}** |`,
    ].filter(Boolean);
  })
  .join('\n');
const fastDetails = fastRuns
  .map((m) => {
    const rounds = m.rounds
      .map((r) => `${r.bare ? reqs(r.bare) : '-'} / ${reqs(r.service)} (${pct(r.ratio)}; ${latency(r.service)})`)
      .join(', ');
    return `- **${m.connections} connections**: the service at **${(ratioOf(m) * 100).toFixed(1)} %** of the bare route (target ${TARGET * 100} %:
  **${ratioOf(m) >= TARGET ? 'met' : 'not met'}**). Every round, bare / service req/s (ratio; service p50 / p99 ms): ${rounds}.
  Answers in the median round: ${answers(m.median.service)}. Over the rounds, ${m.sent} of the ${m.messages} messages
  accepted were sent${unsettled(m)}; **${perMessage(m).toFixed(3)} statements per message**, ${perStatement(m).toFixed(1)} rows per
  statement (${m.names || 'none'}); a statement took ${m.statementMs.toFixed(2)} ms on average from call to result.`;
  })
  .join('\n');

let slowText = '';
if (slowRuns.length > 0) {
  // A writer that commits one message per commit, with as many commits in flight as the outbox allows (two), at the
  // lone commit's cost measured on an idle process: an upper bound for one commit per request.
  const ceiling = (2 * 1000) / slowCommitMs;
  const slowTable = slowRuns
    .map((m) => {
      const s = m.median.service;
      return `| ${m.connections} | ${reqs(s)} | ${s.latency.p50} | ${s.latency.p99} | ${s.non2xx} | ${errors(s)} | ${perMessage(m).toFixed(3)} | ${perStatement(m).toFixed(1)} | ${m.statementMs.toFixed(2)} | ${m.sent} / ${m.messages} |`;
    })
    .join('\n');
  const slowDetails = slowRuns
    .map((m) => {
      const unslowed = fastRuns.find((f) => f.connections === m.connections);
      const rounds = m.rounds.map((r) => `${reqs(r.service)} (${latency(r.service)})`).join(', ');
      const compared = unslowed
        ? ` (${perStatement(unslowed).toFixed(1)} on the database as it is, at ${reqs(unslowed.median.service)} req/s)`
        : '';
      return `- **${m.connections} connections**: every round's req/s (p50 / p99 ms): ${rounds}. Answers in the median round:
  ${answers(m.median.service)}${unsettled(m)}. ${(m.median.service.requests.average / ceiling).toFixed(1)} × the one-commit-per-message
  ceiling; ${perStatement(m).toFixed(1)} rows per statement${compared}. Statements: ${m.names || 'none'}.`;
    })
    .join('\n');
  const grouped = (m: Measurement) => perStatement(m) >= 2 && m.median.service.requests.average >= 2 * ceiling;
  const ungrouped = slowRuns.filter((m) => !grouped(m)).map((m) => m.connections);
  const verdict =
    ungrouped.length === 0
      ? `Throughput does not collapse to one commit per request: at every connection count the service answers at least
twice what one commit per message would allow, each statement carrying many rows (while a commit waits for the slower
database, the next batch gathers).`
      : `At ${ungrouped.join(' and ')} connections the service stays under twice what one commit per message would allow, or
under 2 rows per statement: this run does not show its commits grouping there.`;
  slowText = `

### Database ${SLOW_MS} ms slower per statement

The same service, built again on a fresh database of its own once the first one was closed, given a wrapper
\`Database\` whose \`query\`, \`queryRelaxed\` and \`withConnection\` queries each wait ${SLOW_MS} ms (\`setTimeout\`) before
the statement goes to the driver: a client-side added latency standing in for a slower or remote server. The waits
took ${slowDelayMs.toFixed(2)} ms on average during the rounds (a timer fires late while the event loop, shared with autocannon, is
busy); outside \`withConnection\` the wait comes before the pool hands out a connection, so it holds none. After a
warm-up (${WARMUP_S} s at ${CONNECTIONS[0]} connections), ${plural(SLOW_ROUNDS, 'round')} of ${DURATION_S} s of the service alone at each
connection count; the table shows each count's round with the median req/s; statements and rows counted as above. A
lone durable commit of a one-row insert takes ${slowCommitMs.toFixed(2)} ms through this wrapper in an idle process, so a writer
committing one message per commit, two commits in flight as the outbox allows, would top out near
**${ceiling.toFixed(0)} req/s**.

| connections | req/s | p50 ms | p99 ms | non-2xx | errors | statements per message | rows per statement | ms per statement | sent / accepted |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${slowTable}

${slowDetails}

${verdict}`;
}

const report = `\`POST /agents/{agentId}/messages\` on the sandbox engine (the tsc build that \`npm start\` runs), ${AGENTS} connected
agents taking turns, rate limit raised out of the way, against a bare Fastify route answering the same JSON (no auth,
validation, database or engine behind it); autocannon in the same process; database: ${database}, through the
service's pool of ${POOL_SIZE} connections; load average ${loadAtStart.toFixed(1)} when the run started.

Every text is committed before it is sent: its row goes into the outbox's next statement, one statement and one commit
per batch (group commit: at most two commits in flight, and while they run the next batch gathers), and only once that commit is done
does the text go to its agent's queue. The send's outcome (sent or failed) is written behind: it shares later
statements with the rows of the batches after it. A 200 means the send completed within \`SEND_WAIT_MS\`, after its
commit. Statements are counted at the service's raw-SQL entry points (\`Database.query\`, \`queryRelaxed\` and
\`withConnection\`), by prepared statement name, from the first round at a connection count until the last outcome
was written; rows per statement is the messages accepted (one outbox row each) per statement.

### Database as it is

After a warm-up (${WARMUP_S} s of each at ${CONNECTIONS[0]} connections), ${plural(ROUNDS, 'round')} of ${DURATION_S} s alternate between the bare
route and the service at each connection count; the table shows each count's round with the median ratio. Target: the
service at ${TARGET * 100} % or more of the bare route's throughput at every connection count: **${allMet ? 'met' : 'not met'}**. A lone durable commit
of a one-row insert takes ${commitMs.toFixed(2)} ms on this database.

| connections | target | req/s | p50 ms | p99 ms | non-2xx | errors | service / bare |
| --- | --- | --- | --- | --- | --- | --- | --- |
${fastTable}

${fastDetails}${slowText}`;

process.stdout.write(`${report}\n`);
writeSection('messages', 'Outbound messages', report);
log(`done in ${((performance.now() - startedAt) / 1000).toFixed(0)} s`);
