// Outbound throughput: POST /agents/{agentId}/messages on the sandbox engine (rate limit raised) against a bare
// Fastify route answering the same JSON, in the same run; plus the outbox's database statements per message.
// Run with `npm run bench messages`. Uses PostgreSQL when TEST_DATABASE_URL is set, else PGlite in this process.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import Fastify from 'fastify';
import type { Database } from '../src/db/client.js';
import { createTestDatabase } from '../test/helpers/database.js';
import { until } from '../test/helpers/messaging.js';
import { fromBuild } from './build.js';
import { writeSection } from './report.js';

const { buildApp } = await fromBuild<typeof import('../src/app.js')>('app.js');
const { loadConfig } = await fromBuild<typeof import('../src/config.js')>('config.js');
const { createContainer } = await fromBuild<typeof import('../src/container.js')>('container.js');
const { openDatabase } = await fromBuild<typeof import('../src/db/client.js')>('db/client.js');
const { createLogger } = await fromBuild<typeof import('../src/observability/logger.js')>('observability/logger.js');

const DURATION_S = Number(process.env.BENCH_DURATION ?? 8);
/** Rounds of (bare, service), alternated so that a slow spell of the machine weighs on both; medians reported. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const AGENTS = Number(process.env.BENCH_AGENTS ?? 8);
const ADMIN = 'bench-admin-key-0123456789';

const test = await createTestDatabase();
// The test helper's pool holds 5 connections; the service's default is 10, which is what this measures.
const database = test.url ? await openDatabase({ url: test.url, poolSize: 10 }) : test.database;
/** Counts the raw SQL statements, which is how the outbox talks to the database, by prepared statement name. */
let statements = 0;
const byName = new Map<string, number>();
const counted: Database = {
  ...database,
  query: (sql, params, name) => {
    statements += 1;
    byName.set(name ?? 'unnamed', (byName.get(name ?? 'unnamed') ?? 0) + 1);
    return database.query(sql, params, name);
  },
};
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
  database: counted,
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
const serviceUrl = await app.listen({ host: '127.0.0.1', port: 0 });

// The same response shape, with no auth, validation, database or engine behind it.
const bare = Fastify({ logger: false });
bare.post('/bare', async (request) => ({
  data: { delivered: true, messageId: randomUUID(), status: 'sent', waMessageId: `true_${randomUUID()}` },
  traceId: request.id,
}));
const bareUrl = await bare.listen({ host: '127.0.0.1', port: 0 });

const body = JSON.stringify({ to: '6281234567890', message: 'Halo dari API' });

// Built once, so the load generator (same process) spends as little per request on either target: the service's
// requests take turns among the agents, each with its own key.
const bareRequests: autocannon.Request[] = [
  { method: 'POST', path: '/bare', headers: { 'content-type': 'application/json' }, body },
];
const serviceRequests: autocannon.Request[] = agents.map((agentId) => ({
  method: 'POST',
  path: `/agents/${agentId}/messages`,
  headers: { 'content-type': 'application/json', authorization: `Bearer key-${agentId}-0123456789` },
  body,
}));

async function run(url: string, service: boolean, duration = DURATION_S) {
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    duration,
    requests: service ? serviceRequests : bareRequests,
  });
  return result;
}

// Warm-up, not reported: JIT for autocannon, Fastify and the service's code alike.
await run(bareUrl, false, 3);
await run(serviceUrl, true, 3);
// Rows after this seq are the measured rounds' messages.
const seqBefore = Number(
  (await test.database.query('SELECT coalesce(max(seq), 0)::int AS n FROM outbox_messages'))[0]?.n,
);
statements = 0;
byName.clear();
const bareRuns: autocannon.Result[] = [];
const serviceRuns: autocannon.Result[] = [];
for (let round = 0; round < ROUNDS; round++) {
  bareRuns.push(await run(bareUrl, false));
  serviceRuns.push(await run(serviceUrl, true));
}
// Each round's ratio compares two runs a few seconds apart; the median round is the one reported.
const ratios = bareRuns.map((bare, i) => (serviceRuns[i]?.requests.average ?? 0) / bare.requests.average);
const medianRound = ratios.map((ratio, round) => ({ ratio, round })).sort((a, b) => a.ratio - b.ratio)[
  Math.floor(ratios.length / 2)
]?.round;
const bareResult = bareRuns[medianRound ?? 0] as autocannon.Result;
const serviceResult = serviceRuns[medianRound ?? 0] as autocannon.Result;
// Let the last sends and their outcomes land before counting: nothing left queued, and no row added for 100 ms (the
// rows of answered requests wait up to 10 ms for their statement).
let rowsSeen = -1;
let changedAt = 0;
await until(async () => {
  const [row] = await test.database.query(
    `SELECT count(*)::int AS n, count(*) FILTER (WHERE status = 'queued')::int AS queued FROM outbox_messages`,
  );
  if (Number(row?.n) !== rowsSeen) {
    rowsSeen = Number(row?.n);
    changedAt = performance.now();
  }
  return Number(row?.queued) === 0 && performance.now() - changedAt >= 100;
}, 10_000);
const count = async (where: string) =>
  Number(
    (
      await test.database.query(`SELECT count(*)::int AS n FROM outbox_messages WHERE seq > $1 ${where}`, [seqBefore])
    )[0]?.n,
  );
const messages = await count('');
const sent = await count(`AND status = 'sent'`);
const perMessage = statements / Math.max(1, messages);
const names = [...byName.entries()].map(([name, n]) => `${n} × \`${name}\``).join(', ');

// What one commit costs on this machine's database, for scale.
const commitStarted = performance.now();
await database.withConnection(async (query) => {
  await query('CREATE TEMP TABLE IF NOT EXISTS bench_commit (n int)');
  for (let i = 0; i < 50; i++) await query('INSERT INTO bench_commit VALUES ($1)', [i]);
});
const commitMs = (performance.now() - commitStarted) / 50;

const row = (name: string, r: autocannon.Result) =>
  `| ${name} | ${r.requests.average.toFixed(0)} | ${r.latency.p50} | ${r.latency.p99} | ${r.non2xx} | ${r.errors + r.timeouts} |`;
const ratio = serviceResult.requests.average / bareResult.requests.average;
const rounds = bareRuns
  .map(
    (b, i) =>
      `${b.requests.average.toFixed(0)} / ${serviceRuns[i]?.requests.average.toFixed(0) ?? '-'} (${((ratios[i] ?? 0) * 100).toFixed(0)} %)`,
  )
  .join(', ');
// Not in @types/autocannon, but autocannon 9 reports it: answers by HTTP status.
const byStatus = (serviceResult as autocannon.Result & { statusCodeStats?: Record<string, { count: number }> })
  .statusCodeStats;
const answered = Object.entries(byStatus ?? {})
  .map(([code, { count }]) => `${count} × ${code}`)
  .join(', ');
const report = `\`POST /agents/{agentId}/messages\` on the sandbox engine (the tsc build that \`npm start\` runs), ${AGENTS} connected agents taking turns,
rate limit raised out of the way, against a bare Fastify route answering the same JSON; ${CONNECTIONS} connections,
autocannon in the same process; database: ${test.url ? 'PostgreSQL' : 'PGlite in this process'}. After a warm-up of
each, ${ROUNDS} rounds of ${DURATION_S} s alternate between the two; the table shows the round with the median ratio.
Every round, bare / service req/s (ratio): ${rounds}.

| target | req/s | p50 ms | p99 ms | non-2xx | errors |
| --- | --- | --- | --- | --- | --- |
${row('bare Fastify route', bareResult)}
${row('POST /agents/{agentId}/messages', serviceResult)}

The service answers **${(ratio * 100).toFixed(1)} %** of the bare route's throughput. Its answers in that round:
${answered || 'n/a'} (200 means the send completed within \`SEND_WAIT_MS\`); ${sent} of the ${messages} messages accepted over the
rounds were sent. Database cost: ${perMessage.toFixed(3)} SQL statements per message (${names}), counted at
the raw-SQL entry point the outbox uses. A text goes to its agent's queue at once while its row waits for the next
statement; its 200 does not wait for the row. Each statement inserts the rows of up to 10 ms (group commit), most of
them already \`sent\` (one write per message); \`outbox_write\` also updates rows whose outcome came after their
insert. A lone commit takes ${commitMs.toFixed(2)} ms on this database.`;

process.stdout.write(`${report}\n`);
writeSection('messages', 'Outbound messages', report);

await app.close();
await bare.close();
if (database !== test.database) await database.close();
await test.drop();
await rm(dataDir, { recursive: true, force: true });
