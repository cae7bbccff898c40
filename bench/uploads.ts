// Memory while 20 agents each upload a 16 MB video at once: the service's peak RSS growth, for a multipart upload
// (streamed to disk, then committed in 1 MiB chunks) and, for comparison, for base64 in JSON (the body parsed whole).
// Run with `npm run bench uploads` (PostgreSQL with TEST_DATABASE_URL, else PGlite in this process). The uploads are
// made by curl processes, so that the clients' memory is not counted.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createTestDatabase } from '../test/helpers/database.js';
import { mib, writeSection } from './report.js';
import { connectBenchAgent, startBenchService } from './service.js';

const AGENTS = Number(process.env.BENCH_AGENTS ?? 20);
const MB = 1024 * 1024;
const SIZE = 16 * MB;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc (npm run bench does)');

const dir = await mkdtemp(path.join(tmpdir(), 'wamt-bench-uploads-'));
// An MP4 (its ftyp box) padded to 16 MB: what the media route takes as a video.
const header = Buffer.concat([
  Buffer.from([0, 0, 0, 0x18]),
  Buffer.from('ftypmp42'),
  Buffer.alloc(4),
  Buffer.from('mp42isom'),
]);
const video = Buffer.concat([header, Buffer.alloc(SIZE - header.length - 1024)]);
const videoFile = path.join(dir, 'video.mp4');
await writeFile(videoFile, video);
const jsonFile = path.join(dir, 'video.json');
const jsonBody = (to: string) => JSON.stringify({ to, type: 'video', data: video.toString('base64') });

const db = await createTestDatabase();
const { app, sandbox } = await startBenchService(db.database, {
  DATA_DIR: path.join(dir, 'data'),
  // Every agent's upload at once: the service-wide bound on files in flight is raised to let all 20 through.
  MEDIA_IN_FLIGHT_MAX: String(AGENTS),
  MEDIA_JSON_MAX_MB: '16',
  SEND_WAIT_MS: '30000',
});
for (let i = 0; i < AGENTS; i++) {
  const agentId = `u-${i}`;
  const phone = `6281${String(i).padStart(9, '0')}`;
  await connectBenchAgent(app, { userId: 'bench', agentId, apikey: `key-${agentId}-0123456789`, phone });
}
const base = await app.listen({ host: '127.0.0.1', port: 0 });

function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', ...args]);
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', () => resolve(out));
  });
}

async function settle(): Promise<number> {
  for (let i = 0; i < 4; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 50));
  }
  return process.memoryUsage().rss;
}

/** All agents upload at once; returns the peak RSS growth, how long it took, and the answers' status codes. */
async function round(mode: 'multipart' | 'base64', n: number) {
  if (mode === 'base64') await writeFile(jsonFile, jsonBody('6289900000001'));
  const before = await settle();
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 10);
  const started = Date.now();
  const codes = await Promise.all(
    [...Array(AGENTS).keys()].map((i) => {
      const auth = ['-H', `Authorization: Bearer key-u-${i}-0123456789`];
      return mode === 'multipart'
        ? curl([
            ...auth,
            '-F',
            'to=6289900000001',
            '-F',
            'type=video',
            '-F',
            `file=@${videoFile}`,
            `${base}/agents/u-${i}/media`,
          ])
        : curl([
            ...auth,
            '-H',
            'Content-Type: application/json',
            '--data-binary',
            `@${jsonFile}`,
            `${base}/agents/u-${i}/media`,
          ]);
    }),
  );
  const elapsedMs = Date.now() - started;
  clearInterval(sampler);
  const sent = [...Array(AGENTS).keys()].filter((i) => sandbox.sent(`u-${i}`).length === n).length;
  const after = await settle();
  return { mode, before, peak, after, elapsedMs, codes: [...new Set(codes)].join(', '), sent };
}

// Warm-up (JIT, pools, buffers reach their steady size), then the measured rounds.
await round('multipart', 1);
const rows = [await round('multipart', 2), await round('base64', 3)];

const body = `${AGENTS} connected sandbox agents each send one ${SIZE / MB} MiB MP4 through \`POST /agents/{agentId}/media\`
at once (curl processes, so the clients' memory is not counted), with \`MEDIA_IN_FLIGHT_MAX=${AGENTS}\`; database:
${db.url ? 'PostgreSQL' : 'PGlite in this process'}. Each answer waits for the send (the sandbox engine takes the file
whole, as every engine does). RSS of the service's process, sampled every 10 ms; "after" follows a forced GC. One
warm-up round first.

| upload | answers | sent | took | RSS before | peak | peak growth | growth per upload | after |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
${rows
  .map((r) =>
    [
      r.mode === 'multipart' ? 'multipart/form-data' : 'base64 in JSON',
      r.codes,
      `${r.sent}/${AGENTS}`,
      `${(r.elapsedMs / 1000).toFixed(1)} s`,
      mib(r.before),
      mib(r.peak),
      mib(r.peak - r.before),
      mib((r.peak - r.before) / AGENTS),
      mib(r.after),
    ].join(' | '),
  )
  .map((line) => `| ${line} |`)
  .join('\n')}

A multipart upload streams to a file in TEMP_DIR and is committed from it a 1 MiB chunk per statement; the growth
that remains is each send reading its file back whole for the engine (bounded by \`MEDIA_IN_FLIGHT_MAX\`). Base64 in
JSON holds the body (21 MiB here), its decoded bytes and the send's copy at once, which is why the JSON route is
capped by \`MEDIA_JSON_MAX_MB\` and larger files should be uploaded.`;

writeSection('uploads', 'Memory: 20 agents uploading a 16 MB video at once', body);
process.stdout.write(`${body}\n`);
await app.close();
await db.drop();
await rm(dir, { recursive: true, force: true });
