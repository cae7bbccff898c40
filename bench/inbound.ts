// Inbound benchmark, on sandbox sessions and an AI stub in the same process:
// 1. what the service adds (engine event → AI request, AI answer → engine send), with an AI that answers at once,
//    200 agents, steady rates in steps;
// 2. keeping up with a slow AI: 200 agents × 20 chats at 200 msg/s with a 500 ms AI, and 1,000 agents with a 5 s AI.
// `npm run bench inbound` (uses PostgreSQL when TEST_DATABASE_URL is set, PGlite otherwise). AI_CONCURRENCY_PER_AGENT
// and AI_CONCURRENCY_MAX from the environment are passed on, to compare limits.
import { mkdtemp, rm } from 'node:fs/promises';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { replyWith, startAiServer } from '../test/helpers/ai-server.js';
import { createTestDatabase } from '../test/helpers/database.js';
import { privateText } from '../test/helpers/inbound-message.js';
import { percentile, writeSection } from './report.js';
import { connectBenchAgent, deliverPaced, startBenchService } from './service.js';

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 200);
const STEP_SECONDS = Number(process.env.BENCH_STEP_SECONDS ?? 8);
/** A first step, not reported, so that the measured ones run on optimized code (JIT) and warm connections. */
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 4);
const WARMUP_RATE = 100;
const RATES = (process.env.BENCH_RATES ?? '50,100,200,400,800').split(',').map(Number);
/** A rate counts as sustained when every message is answered and the p99 the service adds stays under this. */
const SUSTAINED_P99_MS = Number(process.env.BENCH_P99_MS ?? 10);
const CHATS_PER_AGENT = 20;
/** The slow-AI scenarios: how long each runs, and the p99 of event → AI request they must stay under. */
const SLOW_SECONDS = Number(process.env.BENCH_SLOW_SECONDS ?? 20);
const SLOW_P99_MS = 50;
const SLOW_SCENARIOS = [
  { agents: 200, aiDelayMs: 500, rate: 200 },
  { agents: 1_000, aiDelayMs: 5_000, rate: 100 },
  { agents: 1_000, aiDelayMs: 5_000, rate: 200 },
].filter((s) => !process.env.BENCH_SLOW_ONLY || process.env.BENCH_SLOW_ONLY.split(',').includes(String(s.agents)));

interface Trace {
  deliveredAt: number;
  aiArrivedAt?: number;
  aiAnsweredAt?: number;
  sentAt?: number;
}

interface StepResult {
  offered: number;
  answered: number;
  ingress: number[];
  egress: number[];
  /** Most AI requests open at once during the step. */
  peakAtAi: number;
}

const pct = (values: number[], p: number) =>
  percentile(
    [...values].sort((a, b) => a - b),
    p,
  );
const ms = (v: number) => (Number.isNaN(v) ? '-' : v.toFixed(1));
const sleep = (delayMs: number) => new Promise((resolve) => setTimeout(resolve, delayMs));

async function main() {
  const db = await createTestDatabase();
  const traces = new Map<string, Trace>();
  let aiDelayMs = 0;
  let atAi = 0;
  let peakAtAi = 0;
  const ai = await startAiServer(async (request) => {
    const id = (request.body as { metadata: { message_id: string } }).metadata.message_id;
    const trace = traces.get(id);
    if (trace) trace.aiArrivedAt = request.at;
    atAi += 1;
    peakAtAi = Math.max(peakAtAi, atAi);
    if (aiDelayMs > 0) await sleep(aiDelayMs);
    atAi -= 1;
    if (trace) trace.aiAnsweredAt = performance.now();
    return replyWith(`r:${id}`);
  });
  const dataDir = await mkdtemp(path.join(tmpdir(), 'wamt-bench-inbound-'));
  const limits = Object.fromEntries(
    ['AI_CONCURRENCY_PER_AGENT', 'AI_CONCURRENCY_MAX'].flatMap((name) => {
      const value = process.env[name];
      return value ? [[name, value]] : [];
    }),
  );
  const { app, container, sandbox } = await startBenchService(db.database, {
    DATA_DIR: dataDir,
    AI_BACKEND_URL: ai.url,
    // The bench measures the pipeline, not the per-agent send budget.
    RATE_LIMIT_PER_MINUTE: '100000',
    RATE_LIMIT_BURST: '100000',
    ...limits,
  });

  // Timestamps the moment the engine is asked to send, which is where the service's work ends.
  const record = sandbox.record.bind(sandbox);
  sandbox.record = (agentId, entry) => {
    if (entry.kind === 'text' && entry.text?.startsWith('r:')) {
      const trace = traces.get(entry.text.slice(2));
      if (trace) trace.sentAt = performance.now();
    }
    record(agentId, entry);
  };

  const agents: string[] = [];
  const connectAgents = async (count: number) => {
    for (let i = agents.length; i < count; i++) {
      const agentId = `bench-${i}`;
      const phone = `62811${String(i).padStart(8, '0')}`;
      await connectBenchAgent(app, { userId: `bench-user-${i}`, agentId, apikey: `bench-key-${i}`, phone });
      agents.push(agentId);
    }
  };

  let seq = 0;
  /** Delivers `rate` msg/s for `seconds` to the first `agentCount` agents round-robin, then waits for the answers. */
  const runStep = async (rate: number, seconds: number, agentCount: number): Promise<StepResult> => {
    traces.clear();
    peakAtAi = atAi;
    const total = rate * seconds;
    await deliverPaced(rate, total, () => {
      const n = seq++;
      const agentId = agents[n % agentCount] ?? 'bench-0';
      const chat = `62812${String(((n / agentCount) % CHATS_PER_AGENT) | 0).padStart(8, '0')}@c.us`;
      const id = `BENCH${n}`;
      traces.set(id, { deliveredAt: performance.now() });
      sandbox.deliver(agentId, privateText(id, chat, 'hello'));
    });
    // Let the tail drain, bounded so an overloaded step still ends.
    const deadline = performance.now() + 15_000 + 2 * aiDelayMs;
    while (performance.now() < deadline && [...traces.values()].some((tr) => tr.sentAt === undefined)) {
      await sleep(50);
    }
    const done = [...traces.values()].filter((tr) => tr.sentAt !== undefined && tr.aiArrivedAt !== undefined);
    return {
      offered: total,
      answered: done.length,
      ingress: done.map((tr) => (tr.aiArrivedAt ?? 0) - tr.deliveredAt),
      egress: done.map((tr) => (tr.sentAt ?? 0) - (tr.aiAnsweredAt ?? 0)),
      peakAtAi,
    };
  };

  await connectAgents(SESSIONS);
  const load = os.loadavg()[0]?.toFixed(1);

  // 1. What the service adds, with an AI that answers at once.
  const rows = [
    '| rate (msg/s) | messages | answered | event → AI request p50 / p99 (ms) | AI answer → engine send p50 / p99 (ms) | sustained |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  let best = 0;
  await runStep(WARMUP_RATE, WARMUP_SECONDS, SESSIONS);
  for (const rate of RATES) {
    const step = await runStep(rate, STEP_SECONDS, SESSIONS);
    const p99 = Math.max(pct(step.ingress, 99), pct(step.egress, 99));
    const sustained = step.answered === step.offered && p99 < SUSTAINED_P99_MS;
    if (sustained) best = rate;
    rows.push(
      `| ${rate} | ${step.offered} | ${step.answered} | ${ms(pct(step.ingress, 50))} / ${ms(pct(step.ingress, 99))} | ` +
        `${ms(pct(step.egress, 50))} / ${ms(pct(step.egress, 99))} | ${sustained ? 'yes' : 'no'} |`,
    );
  }

  // 2. A slow AI: the service must keep up, its overhead staying small while hundreds of calls are open.
  const slowRows = [
    '| agents | AI answers after | rate (msg/s) | messages | answered | AI calls open at once (peak) | event → AI request p50 / p99 / max (ms) | AI answer → engine send p50 / p99 (ms) | kept up |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  const loads: string[] = [];
  for (const scenario of SLOW_SCENARIOS) {
    await connectAgents(scenario.agents);
    loads.push(os.loadavg()[0]?.toFixed(1) ?? '?');
    aiDelayMs = scenario.aiDelayMs;
    const step = await runStep(scenario.rate, SLOW_SECONDS, scenario.agents);
    aiDelayMs = 0;
    const keptUp = step.answered === step.offered && pct(step.ingress, 99) < SLOW_P99_MS;
    slowRows.push(
      `| ${scenario.agents} | ${scenario.aiDelayMs / 1000} s | ${scenario.rate} | ${step.offered} | ${step.answered} | ` +
        `${step.peakAtAi} | ${ms(pct(step.ingress, 50))} / ${ms(pct(step.ingress, 99))} / ${ms(pct(step.ingress, 100))} | ` +
        `${ms(pct(step.egress, 50))} / ${ms(pct(step.egress, 99))} | ${keptUp ? 'yes' : 'no'} |`,
    );
  }

  const { aiConcurrencyPerAgent, aiConcurrencyMax } = container.config;
  const body = `${SESSIONS} connected sandbox sessions (1,000 for the last scenarios); database: ${db.url ? 'PostgreSQL' : 'PGlite'};
load average ${load} when the run started. Messages go to the agents round-robin, ${CHATS_PER_AGENT} private chats per
agent, at a steady rate, straight into the engine's \`message\` event. The AI stub (same process, 127.0.0.1) answers
after the delay given. "event → AI request" is filter, wait for a slot, dedup claim (the agent lookup runs alongside),
typing on and the HTTP call up to the stub reading the body; "AI answer → engine send" is the answer read and parsed,
typing off, the outbox and its dispatcher up to the engine's \`sendText\` (a reply goes to its agent's queue at once,
while its row is written). Per-agent rate limits are raised so the pipeline, not the send budget, is measured. The
dedup mark is committed without waiting for the disk flush (see README); the outbox's rows are committed durably.
Limits: \`AI_CONCURRENCY_PER_AGENT\`=${aiConcurrencyPerAgent}, \`AI_CONCURRENCY_MAX\`=${aiConcurrencyMax}.

### What the service adds

The AI stub answers at once; ${STEP_SECONDS} s per step, after ${WARMUP_SECONDS} s of warm-up at ${WARMUP_RATE} msg/s (not reported).

${rows.join('\n')}

Highest sustained rate: **${best} msg/s** (every message answered and both p99s under ${SUSTAINED_P99_MS} ms).

### A slow AI

${SLOW_SECONDS} s per scenario, then the answers are awaited. "Kept up": every message answered and the p99 of event →
AI request under ${SLOW_P99_MS} ms. Load average at the start of each: ${loads.join(', ')}.

${slowRows.join('\n')}

The p99s move with the machine's load: compare them with the first table at the same rate, where the AI answers at
once and no message ever waits for a slot. At 1,000 agents × 5 s × 200 msg/s, 1,000 calls are open on average,
exactly the default \`AI_CONCURRENCY_MAX\`: messages then wait for a slot and the p99 grows with that wait; such
traffic needs a higher cap.`;
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
