// Inbound benchmark: 200 sandbox sessions, an AI stub that answers at once, steady message rates in steps.
// Measures what the service adds: engine event → AI request, and AI answer → engine send. `npx tsx bench/inbound.ts`
// (set TEST_DATABASE_URL to run on PostgreSQL; PGlite otherwise).
import { replyWith, startAiServer } from '../test/helpers/ai-server.js';
import { createTestApp } from '../test/helpers/app.js';
import { createTestDatabase } from '../test/helpers/database.js';

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 200);
const STEP_SECONDS = Number(process.env.BENCH_STEP_SECONDS ?? 5);
const RATES = (process.env.BENCH_RATES ?? '50,100,200,400,800').split(',').map(Number);
/** A rate counts as sustained when every message is answered and the p99 the service adds stays under this. */
const SUSTAINED_P99_MS = Number(process.env.BENCH_P99_MS ?? 250);
const CHATS_PER_AGENT = 20;

interface Trace {
  deliveredAt: number;
  aiArrivedAt?: number;
  aiAnsweredAt?: number;
  sentAt?: number;
}

const percentile = (values: number[], p: number) => {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
};
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
  const t = await createTestApp({
    database: db.database,
    env: {
      AI_BACKEND_URL: ai.url,
      LOG_LEVEL: 'warn',
      // The bench measures the pipeline, not the per-agent send budget.
      RATE_LIMIT_PER_MINUTE: '100000',
      RATE_LIMIT_BURST: '100000',
    },
  });
  const sandbox = t.container.sandbox;
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
    await t.app.inject({
      method: 'POST',
      url: '/sessions',
      headers: t.admin,
      payload: { userId: `bench-user-${i}`, agentId, agentName: agentId, apikey: `bench-key-${i}` },
    });
    await t.app.inject({
      method: 'POST',
      url: `/sandbox/agents/${agentId}/scan`,
      headers: t.admin,
      payload: { phone: `62811${String(i).padStart(8, '0')}` },
    });
  }
  console.log(`# ${SESSIONS} sessions connected; database: ${db.url ? 'PostgreSQL' : 'PGlite'}`);
  console.log('| rate (msg/s) | sent | answered | event→AI p50 / p99 (ms) | AI→send p50 / p99 (ms) | sustained |');
  console.log('| --- | --- | --- | --- | --- | --- |');

  let seq = 0;
  let best = 0;
  for (const rate of RATES) {
    traces.clear();
    const total = rate * STEP_SECONDS;
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
          sandbox.deliver(agentId, {
            id,
            chatJid: chat,
            senderJid: chat,
            text: 'hello',
            type: 'text',
            isGroup: false,
            mentions: [],
            fromMe: false,
            timestamp: Date.now(),
            pushName: null,
            chatName: null,
          });
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
    const p99 = Math.max(percentile(ingress, 99), percentile(egress, 99));
    const sustained = done.length === total && p99 < SUSTAINED_P99_MS;
    if (sustained) best = rate;
    console.log(
      `| ${rate} | ${total} | ${done.length} | ${ms(percentile(ingress, 50))} / ${ms(percentile(ingress, 99))} | ` +
        `${ms(percentile(egress, 50))} / ${ms(percentile(egress, 99))} | ${sustained ? 'yes' : 'no'} |`,
    );
  }
  console.log(`\nHighest sustained rate: ${best} msg/s (all answered, p99 added < ${SUSTAINED_P99_MS} ms)`);
  await t.close();
  await ai.close();
  await db.drop();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
