// Inbound voice notes: sandbox sessions deliver voice notes at a steady rate, the service downloads each into the media
// store and calls an AI stub (500 ms) that fetches the signed link and checks the bytes, as a real backend would.
// Measures whether the service keeps up, and the time from the start of a download to the AI request.
// `npm run bench inbound-media` (PostgreSQL when TEST_DATABASE_URL is set, PGlite otherwise).
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import type { AiAttachment } from '../src/ai/ai-client.js';
import type { MediaDownload } from '../src/engines/engine.js';
import { startAiServer } from '../test/helpers/ai-server.js';
import { createTestDatabase } from '../test/helpers/database.js';
import { privateText } from '../test/helpers/inbound-message.js';
import { percentile, writeSection } from './report.js';
import { connectBenchAgent, deliverPaced, startBenchService } from './service.js';

const AGENTS = Number(process.env.BENCH_AGENTS ?? 100);
const CHATS_PER_AGENT = 5;
const RATE = Number(process.env.BENCH_RATE ?? 50);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 30);
const AI_DELAY_MS = Number(process.env.BENCH_AI_DELAY_MS ?? 500);
/** A 7-second Opus voice note is 10 to 20 KB. */
const VOICE_BYTES = Number(process.env.BENCH_VOICE_BYTES ?? 16_384);
const P99_LIMIT_MS = 50;

interface Trace {
  deliveredAt: number;
  sha256: string;
  downloadAt?: number;
  aiArrivedAt?: number;
  /** The AI stub fetched the link and got the same bytes. */
  fetchedOk?: boolean;
  fetchMs?: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const pct = (values: number[], p: number) =>
  percentile(
    [...values].sort((a, b) => a - b),
    p,
  );
const ms = (v: number) => (Number.isNaN(v) ? '-' : v.toFixed(1));

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function main() {
  const db = await createTestDatabase();
  const traces = new Map<string, Trace>();
  let open = 0;
  let peakOpen = 0;
  const ai = await startAiServer(async (request) => {
    const body = request.body as { metadata: { message_id: string }; attachments?: AiAttachment[] };
    const trace = traces.get(body.metadata.message_id);
    if (trace) trace.aiArrivedAt = request.at;
    open += 1;
    peakOpen = Math.max(peakOpen, open);
    const url = body.attachments?.[0]?.url;
    if (trace && url) {
      const started = performance.now();
      const response = await fetch(url);
      const bytes = Buffer.from(await response.arrayBuffer());
      trace.fetchMs = performance.now() - started;
      trace.fetchedOk = response.status === 200 && createHash('sha256').update(bytes).digest('hex') === trace.sha256;
    }
    await sleep(AI_DELAY_MS);
    open -= 1;
    return { kind: 'json', body: {} };
  });
  const dataDir = await mkdtemp(path.join(tmpdir(), 'wamt-bench-media-'));
  const port = await freePort();
  const { app, container, sandbox } = await startBenchService(db.database, {
    DATA_DIR: dataDir,
    AI_BACKEND_URL: ai.url,
    APP_BASE_URL: `http://127.0.0.1:${port}`,
  });
  await app.listen({ port, host: '127.0.0.1' });

  const agents: string[] = [];
  for (let i = 0; i < AGENTS; i++) {
    const agentId = `media-bench-${i}`;
    const phone = `62811${String(i).padStart(8, '0')}`;
    await connectBenchAgent(app, { userId: `bench-user-${i}`, agentId, apikey: `bench-key-${i}`, phone });
    // Timestamps the start of each download: where "download → AI request" begins.
    const session = sandbox.session(agentId);
    if (session) {
      const download = session.downloadMedia.bind(session);
      session.downloadMedia = (messageId: string): Promise<MediaDownload> => {
        const trace = traces.get(messageId);
        if (trace) trace.downloadAt = performance.now();
        return download(messageId);
      };
    }
    agents.push(agentId);
  }
  const load = os.loadavg()[0]?.toFixed(1);

  const total = RATE * SECONDS;
  await deliverPaced(RATE, total, (n) => {
    const agentId = agents[n % AGENTS] ?? 'media-bench-0';
    const chat = `62812${String(((n / AGENTS) % CHATS_PER_AGENT) | 0).padStart(8, '0')}@c.us`;
    const id = `VOICE${n}`;
    const voice = randomBytes(VOICE_BYTES);
    traces.set(id, { deliveredAt: performance.now(), sha256: createHash('sha256').update(voice).digest('hex') });
    const media = { mimeType: 'audio/ogg; codecs=opus', size: voice.length, filename: null, durationSeconds: 7 };
    sandbox.deliver(agentId, { ...privateText(id, chat, ''), type: 'audio', media }, voice);
  });
  const deadline = performance.now() + 15_000 + 2 * AI_DELAY_MS;
  while (performance.now() < deadline && [...traces.values()].some((tr) => tr.fetchedOk === undefined)) {
    await sleep(50);
  }
  await container.inbound.onIdle();

  const done = [...traces.values()].filter((tr) => tr.aiArrivedAt !== undefined && tr.downloadAt !== undefined);
  const verified = done.filter((tr) => tr.fetchedOk).length;
  const downloadToAi = done.map((tr) => (tr.aiArrivedAt ?? 0) - (tr.downloadAt ?? 0));
  const eventToAi = done.map((tr) => (tr.aiArrivedAt ?? 0) - tr.deliveredAt);
  const fetches = done.flatMap((tr) => (tr.fetchMs === undefined ? [] : [tr.fetchMs]));
  const keptUp = done.length === total && verified === total && pct(downloadToAi, 99) < P99_LIMIT_MS;

  const body = `${AGENTS} connected sandbox sessions, ${CHATS_PER_AGENT} private chats each; database: ${db.url ? 'PostgreSQL' : 'PGlite'};
load average ${load} at the start. ${RATE} voice notes per second for ${SECONDS} s (${total} in all, ${VOICE_BYTES / 1024} KiB
each, random bytes), round-robin over the agents, straight into the engine's \`message\` event with their bytes. For each,
the service downloads the file from the engine into the media store (on disk, SHA-256 while streaming, a row in
\`media_files\`), signs a link and calls the AI stub (same process, 127.0.0.1), which fetches the link over HTTP, checks
the bytes against what was delivered, then answers after ${AI_DELAY_MS} ms (with no reply, so the outbox is not measured).
"download → AI request" runs from the engine's \`downloadMedia\` call to the stub reading the request; "event → AI
request" adds the filter, the slot and the dedup claim. Defaults: \`MEDIA_DOWNLOADS_PER_AGENT\`=${container.config.mediaDownloadsPerAgent},
\`MEDIA_DOWNLOADS_MAX\`=${container.config.mediaDownloadsMax}.

| voice notes | reached the AI | bytes verified by the AI | AI calls open (peak) | download → AI request p50 / p99 / max (ms) | event → AI request p50 / p99 (ms) | AI fetch of the link p50 / p99 (ms) | kept up |
| --- | --- | --- | --- | --- | --- | --- | --- |
| ${total} | ${done.length} | ${verified} | ${peakOpen} | ${ms(pct(downloadToAi, 50))} / ${ms(pct(downloadToAi, 99))} / ${ms(pct(downloadToAi, 100))} | ${ms(pct(eventToAi, 50))} / ${ms(pct(eventToAi, 99))} | ${ms(pct(fetches, 50))} / ${ms(pct(fetches, 99))} | ${keptUp ? 'yes' : 'no'} |

"Kept up": every voice note reached the AI, every link served the exact bytes, and the p99 of download → AI request
stayed under ${P99_LIMIT_MS} ms. The AI stub's fetches and checks run in the service's process, on the same cores; with a
load average above the number of cores (other processes), the tail measures the wait for a CPU as much as the service.`;
  console.log(body);
  if (!process.env.BENCH_NO_WRITE) writeSection('inbound-media', 'Inbound voice notes', body);
  await app.close();
  await rm(dataDir, { recursive: true, force: true });
  await ai.close();
  await db.drop();
  if (!keptUp) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
