// Inbound benchmark: 200 sandbox sessions, an AI stub that answers at once, steady message rates in steps.
// Measures what the service adds: engine event → AI request, and AI answer → engine send. `npm run bench inbound`
// (uses PostgreSQL when TEST_DATABASE_URL is set, PGlite otherwise).
import { mkdtemp, rm } from 'node:fs/promises';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { replyWith, startAiServer } from '../test/helpers/ai-server.js';
import { createTestDatabase } from '../test/helpers/database.js';
import { privateText } from '../test/helpers/inbound-message.js';
import { fromBuild } from './build.js';
import { percentile, writeSection } from './report.js';

const { buildApp } = await fromBuild<typeof import('../src/app.js')>('app.js');
const { loadConfig } = await fromBuild<typeof import('../src/config.js')>('config.js');
const { createContainer } = await fromBuild<typeof import('../src/container.js')>('container.js');
const { createLogger } = await fromBuild<typeof import('../src/observability/logger.js')>('observability/logger.js');

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 200);
const STEP_SECONDS = Number(process.env.BENCH_STEP_SECONDS ?? 8);
/** A first step, not reported, so that the measured ones run on optimized code (JIT) and warm connections. */
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 4);
const WARMUP_RATE = 100;
const RATES = (process.env.BENCH_RATES ?? '50,100,200,400,800').split(',').map(Number);
/** A rate counts as sustained when every message is answered and the p99 the service adds stays under this. */
const SUSTAINED_P99_MS = Number(process.env.BENCH_P99_MS ?? 10);
const CHATS_PER_AGENT = 20;

interface Trace {
  deliveredAt: number;
  aiArrivedAt?: number;
  aiAnsweredAt?: number;
  sentAt?: number;
}

const pct = (values: number[], p: number) =>
  percentile(
    [...values].sort((a, b) => a - b),
    p,
  );
const ms = (v: number) => (Number.isNaN(v) ? '-' : v.toFixed(1));

async function main() {
  const db = await createTestDatabase();
  const traces = new Map<string, Trace>();
  const ai = await startAiServer((request) => {
    const id = (request.body as { metadata: { message_id: string } }).metadata.message_id;
    const trace = traces.get(id);
    if (trace) {
      trace.aiArrivedAt = request.at;
      trace.aiAnsweredAt = performance.now();
    }
    return replyWith(`r:${id}`);
  });
  const dataDir = await mkdtemp(path.join(tmpdir(), 'wamt-bench-inbound-'));
  const adminHeaders = { authorization: 'Bearer bench-admin-key-0123456789' };
  const config = loadConfig({
    DATA_DIR: dataDir,
    WA_ENGINE: 'sandbox',
    ADMIN_API_KEY: 'bench-admin-key-0123456789',
    AI_BACKEND_URL: ai.url,
    LOG_LEVEL: 'silent',
    // The bench measures the pipeline, not the per-agent send budget.
    RATE_LIMIT_PER_MINUTE: '100000',
    RATE_LIMIT_BURST: '100000',
  });
  const container = await createContainer(config, {
    database: db.database,
    logger: createLogger({ level: 'silent' }),
    collectProcessMetrics: false,
  });
  const app = await buildApp(container);
  await container.start();
  const sandbox = container.sandbox;
  if (!sandbox) throw new Error('the sandbox engine is not enabled');

  // Timestamps the moment the engine is asked to send, which is where the service's work ends.
  const record = sandbox.record.bind(sandbox);
  sandbox.record = (agentId, entry) => {
    if (entry.kind === 'text' && entry.text?.startsWith('r:')) {
      const trace = traces.get(entry.text.slice(2));
      if (trace) trace.sentAt = performance.now();
    }
    record(agentId, entry);
  };

  const agents = Array.from({ length: SESSIONS }, (_, i) => `bench-${i}`);
  for (const [i, agentId] of agents.entries()) {
    await app.inject({
      method: 'POST',
      url: '/sessions',
      headers: adminHeaders,
      payload: { userId: `bench-user-${i}`, agentId, agentName: agentId, apikey: `bench-key-${i}` },
    });
    await app.inject({
      method: 'POST',
      url: `/sandbox/agents/${agentId}/scan`,
      headers: adminHeaders,
      payload: { phone: `62811${String(i).padStart(8, '0')}` },
    });
  }
  const rows = [
    '| rate (msg/s) | messages | answered | event → AI request p50 / p99 (ms) | AI answer → engine send p50 / p99 (ms) | sustained |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  const load = os.loadavg()[0]?.toFixed(1);

  let seq = 0;
  let best = 0;
  const steps = [
    { rate: WARMUP_RATE, seconds: WARMUP_SECONDS, report: false },
    ...RATES.map((rate) => ({ rate, seconds: STEP_SECONDS, report: true })),
  ];
  for (const { rate, seconds, report } of steps) {
    traces.clear();
    const total = rate * seconds;
    const tickMs = 10;
    const perTick = rate / (1000 / tickMs);
    let due = 0;
    let delivered = 0;
    const started = performance.now();
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        // Catch up on what the clock says is due, so a slow tick does not lower the rate.
        due = Math.min(total, ((performance.now() - started) / tickMs) * perTick);
        while (delivered < due) {
          const n = seq++;
          const agentId = agents[n % SESSIONS] ?? 'bench-0';
          const chat = `62812${String(((n / SESSIONS) % CHATS_PER_AGENT) | 0).padStart(8, '0')}@c.us`;
          const id = `BENCH${n}`;
          traces.set(id, { deliveredAt: performance.now() });
          sandbox.deliver(agentId, privateText(id, chat, 'hello'));
          delivered += 1;
        }
        if (delivered >= total) {
          clearInterval(timer);
          resolve();
        }
      }, tickMs);
    });
    // Let the tail drain, bounded so an overloaded step still ends.
    const deadline = performance.now() + 15_000;
    while (performance.now() < deadline && [...traces.values()].some((tr) => tr.sentAt === undefined)) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const done = [...traces.values()].filter((tr) => tr.sentAt !== undefined && tr.aiArrivedAt !== undefined);
    const ingress = done.map((tr) => (tr.aiArrivedAt ?? 0) - tr.deliveredAt);
    const egress = done.map((tr) => (tr.sentAt ?? 0) - (tr.aiAnsweredAt ?? 0));
    const p99 = Math.max(pct(ingress, 99), pct(egress, 99));
    if (!report) continue;
    const sustained = done.length === total && p99 < SUSTAINED_P99_MS;
    if (sustained) best = rate;
    rows.push(
      `| ${rate} | ${total} | ${done.length} | ${ms(pct(ingress, 50))} / ${ms(pct(ingress, 99))} | ` +
        `${ms(pct(egress, 50))} / ${ms(pct(egress, 99))} | ${sustained ? 'yes' : 'no'} |`,
    );
  }
  const body = `${SESSIONS} connected sandbox sessions; database: ${db.url ? 'PostgreSQL' : 'PGlite'}; load average
${load} when the run started. Messages go to the sessions round-robin, ${CHATS_PER_AGENT} private chats per agent, at a
steady rate for ${STEP_SECONDS} s per step (after ${WARMUP_SECONDS} s of warm-up at ${WARMUP_RATE} msg/s, not reported),
straight into the engine's \`message\` event. The AI stub (same process,
127.0.0.1) answers at once. "event → AI request" is filter, dedup claim (the agent lookup runs alongside), typing on and the HTTP call up to
the stub reading the body; "AI answer → engine send" is the answer read and parsed, typing off, the outbox and its
dispatcher up to the engine's \`sendText\` (a reply goes to its agent's queue at once, while its row is
written). Per-agent rate limits are raised so the pipeline, not the send budget, is measured. The dedup mark is
committed without waiting for the disk flush (see README); the outbox's rows are committed durably.

${rows.join('\n')}

Highest sustained rate: **${best} msg/s** (every message answered and both p99s under ${SUSTAINED_P99_MS} ms).`;
  console.log(body);
  if (!process.env.BENCH_NO_WRITE) writeSection('inbound', 'Inbound', body);
  await app.close();
  await rm(dataDir, { recursive: true, force: true });
  await ai.close();
  await db.drop();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
