// Memory per session: the service's own overhead with 1,000 connected sandbox sessions.
// Run with `npm run bench memory` (needs --expose-gc, which bench/run.ts passes). Uses PostgreSQL when
// TEST_DATABASE_URL is set, else PGlite in memory (whose own memory then counts in the process figures).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createTestDatabase } from '../test/helpers/database.js';
import { fromBuild } from './build.js';
import { kib, mib, pssBytes, writeSection } from './report.js';

const { buildApp } = await fromBuild<typeof import('../src/app.js')>('app.js');
const { loadConfig } = await fromBuild<typeof import('../src/config.js')>('config.js');
const { createContainer } = await fromBuild<typeof import('../src/container.js')>('container.js');
const { createLogger } = await fromBuild<typeof import('../src/observability/logger.js')>('observability/logger.js');

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 1_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc (npm run bench does)');

async function settle(): Promise<{ heap: number; rss: number; pss: number }> {
  for (let i = 0; i < 4; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 50));
  }
  const usage = process.memoryUsage();
  return { heap: usage.heapUsed, rss: usage.rss, pss: pssBytes() };
}

const db = await createTestDatabase();
const dataDir = await mkdtemp(path.join(tmpdir(), 'wamt-bench-memory-'));
const config = loadConfig({
  DATA_DIR: dataDir,
  WA_ENGINE: 'sandbox',
  ADMIN_API_KEY: 'bench-admin-key-0123456789',
  LOG_LEVEL: 'silent',
});
const container = await createContainer(config, {
  database: db.database,
  logger: createLogger({ level: 'silent' }),
  collectProcessMetrics: false,
});
const app = await buildApp(container);
const sandbox = container.sandbox;
if (!sandbox) throw new Error('sandbox engine missing');
const headers = { authorization: 'Bearer bench-admin-key-0123456789' };

let phones = 0;
async function connect(agentId: string): Promise<void> {
  const res = await app.inject({
    method: 'POST',
    url: '/sessions',
    headers,
    payload: { userId: 'bench', agentId, agentName: agentId, apikey: `key-${agentId}` },
  });
  if (res.statusCode !== 200) throw new Error(`create ${agentId}: ${res.statusCode} ${res.body}`);
  await container.sessions.waitForQr(agentId);
  phones += 1;
  await sandbox?.scan(agentId, `6281${String(phones).padStart(9, '0')}`);
}

// Warm-up: JIT, pools and caches reach their steady size before the baseline is taken.
for (let i = 0; i < 50; i++) await connect(`w-${i}`);
const before = await settle();
const started = Date.now();
for (let i = 0; i < SESSIONS; i++) await connect(`s-${i}`);
const elapsedMs = Date.now() - started;
for (let i = 0; i < SESSIONS; i++) await container.supervisor.settled(`s-${i}`);
const after = await settle();
const connected = [...Array(SESSIONS).keys()].filter((i) => container.supervisor.readySession(`s-${i}`)).length;

const per = (key: 'heap' | 'rss' | 'pss') => (after[key] - before[key]) / SESSIONS;
const rows = [
  ['JS heap used', mib(before.heap), mib(after.heap), kib(per('heap'))],
  ['RSS', mib(before.rss), mib(after.rss), kib(per('rss'))],
  ['PSS', mib(before.pss), mib(after.pss), kib(per('pss'))],
];
const body = `${SESSIONS} sandbox sessions created through \`POST /sessions\`, QR shown and scanned, all connected
(${connected}/${SESSIONS}); database: ${db.url ? 'PostgreSQL' : 'PGlite in this process'}. Figures after a forced GC,
against a baseline taken after 50 warm-up sessions. Creating and connecting took ${(elapsedMs / SESSIONS).toFixed(2)} ms per
session.

| measure | before | after | per session |
| --- | --- | --- | --- |
${rows.map((r) => `| ${r.join(' | ')} |`).join('\n')}

Goal: service overhead under 1 MB per session. What a session holds in the service: its live state, the last QR code
PNG while one shows (dropped once connected), listeners on its engine session, and its key hash in the auth index.
The engine's own memory (a browser for whatsapp-web, a socket for Baileys) comes on top; see "Engine memory".`;

writeSection('memory-service', 'Memory: service overhead per session', body);
process.stdout.write(`${body}\n`);
await app.close();
await db.drop();
await rm(dataDir, { recursive: true, force: true });
