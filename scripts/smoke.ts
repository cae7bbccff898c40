// Smoke test of the built service, run as users run it: `node dist/main.js` on the sandbox engine.
//
// Usage (after `npm run build`):
//
//   npm run smoke                                                              # embedded PGlite in a temp DATA_DIR
//   SMOKE_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run smoke   # a fresh database on that server
//   SMOKE_URL=http://127.0.0.1:3000 SMOKE_ADMIN_KEY=… npm run smoke             # a service already running
//
// It boots the service on a free port of 127.0.0.1 with a fresh temporary DATA_DIR and a generated admin key, waits
// for /health/ready, creates a sandbox agent, fetches its QR code, plays the phone scanning it, sends one text through
// the REST API and checks its state and what the sandbox received, then stops the service with SIGTERM and expects
// exit code 0. With SMOKE_DATABASE_URL (or TEST_DATABASE_URL) it creates a database `wamt_smoke_<random>` on that
// server, with the shared api_keys table production has, and drops it at the end. One line per step; "smoke: ok"
// at the end, or "smoke: FAILED: …" with the service's last log lines and a non-zero exit code. Every wait is bounded;
// the service is always killed and the temporary directory and database always removed. What it shares with
// scripts/crash.ts (booting, waiting, the API, the run's cleanup) is in scripts/service-process.ts.
//
// With SMOKE_URL it boots nothing: it checks the service already running there (on the sandbox engine, with
// SMOKE_ADMIN_KEY as its admin key; .ci/container.sh runs it against the container image), from /health/ready to the
// message read back, and leaves stopping it, and checking its exit code, to the caller.
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import {
  api,
  bootService,
  check,
  createScratchDatabase,
  errorText,
  MAIN,
  ScriptError,
  ScriptRun,
  type Service,
  type SessionStatus,
  stopService,
  waitSessionReady,
} from './service-process.js';

const SESSION_READY_TIMEOUT_MS = 15_000;
/** A backstop over every step: the smoke gives up, cleans up and fails after this long whatever happens. */
const OVERALL_TIMEOUT_MS = 240_000;

interface SendResult {
  delivered: boolean;
  messageId: string;
  status: string;
  waMessageId: string | null;
}

interface MessageState {
  messageId: string;
  status: string;
  to: string;
  waMessageId: string | null;
}

interface SentEntry {
  messageId: string;
  to: string;
  kind: string;
  text?: string;
}

const run = new ScriptRun('smoke');

/** The service under test: booted here (`running`, stopped with SIGTERM at the end), or already running at SMOKE_URL. */
interface Target {
  base: string;
  adminKey: string;
  running: Service | null;
}

async function attach(url: string): Promise<Target> {
  const adminKey = process.env.SMOKE_ADMIN_KEY ?? '';
  check(adminKey !== '', 'SMOKE_URL needs SMOKE_ADMIN_KEY, the admin key of the service running there');
  const base = url.replace(/\/+$/, '');
  let status = 0;
  let text = '';
  try {
    const res = await fetch(`${base}/health/ready`, { signal: AbortSignal.timeout(10_000) });
    status = res.status;
    text = await res.text();
  } catch (err) {
    throw new ScriptError(`GET ${base}/health/ready: ${errorText(err)}`);
  }
  let database: string | undefined;
  try {
    database = (JSON.parse(text) as { checks?: { database?: string } }).checks?.database;
  } catch {}
  check(
    status === 200 && database === 'ok',
    `GET ${base}/health/ready: expected 200 with database "ok", got ${status}: ${text.slice(0, 300)}`,
  );
  run.step(`GET ${base}/health/ready: 200, database ok (a service already running)`);
  return { base, adminKey, running: null };
}

async function boot(): Promise<Target> {
  check(existsSync(MAIN), `${path.relative(process.cwd(), MAIN)} is missing: run \`npm run build\` first`);
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'wamt-smoke-'));
  run.onCleanup(`remove ${tmp}`, () => rm(tmp, { recursive: true, force: true, maxRetries: 3 }));
  const dataDir = path.join(tmp, 'data');
  run.step(`temporary DATA_DIR ${dataDir}`);

  const adminUrl = process.env.SMOKE_DATABASE_URL || process.env.TEST_DATABASE_URL;
  let dbUrl = '';
  let databaseLabel = 'embedded PGlite';
  if (adminUrl) {
    const database = await createScratchDatabase(run, adminUrl, 'wamt_smoke');
    run.step(`database ${database.label} created, with the shared api_keys table`);
    dbUrl = database.url;
    databaseLabel = `PostgreSQL ${database.label}`;
  }
  const adminKey = randomBytes(24).toString('hex');
  const running = await bootService(run, { dataDir, cwd: tmp, adminKey, dbUrl, databaseLabel });
  run.step(`GET /health/ready: 200, database ok`);
  return { base: running.base, adminKey, running };
}

async function smoke(): Promise<void> {
  const external = process.env.SMOKE_URL;
  const { base, adminKey, running } = external ? await attach(external) : await boot();

  const agentId = `smoke-${randomBytes(4).toString('hex')}`;
  const agentKey = `smoke-key-${randomBytes(16).toString('hex')}`;
  const created = await api<SessionStatus>(base, 'POST', '/sessions', adminKey, {
    userId: randomUUID(),
    agentId,
    agentName: 'Smoke',
    apikey: agentKey,
  });
  check(created.engine === 'sandbox', `POST /sessions: engine ${created.engine}, expected sandbox`);
  run.step(`POST /sessions: 200, agent ${agentId} (engine ${created.engine}, status ${created.status})`);

  const qr = await api<{ qr: { contentType: string; base64: string } }>(
    base,
    'POST',
    `/sessions/${agentId}/qr`,
    adminKey,
  );
  const png = Buffer.from(qr.qr.base64, 'base64');
  check(
    qr.qr.contentType === 'image/png' && png.subarray(0, 8).equals(Buffer.from('89504e470d0a1a0a', 'hex')),
    `POST /sessions/${agentId}/qr: not a PNG QR code: ${JSON.stringify(qr).slice(0, 200)}`,
  );
  run.step(`POST /sessions/${agentId}/qr: 200, a ${png.length}-byte PNG`);

  const scanned = await api<{ me: string }>(base, 'POST', `/sandbox/agents/${agentId}/scan`, adminKey, {});
  run.step(`POST /sandbox/agents/${agentId}/scan: 200, me ${scanned.me}`);

  const { session, polls } = await waitSessionReady(base, adminKey, agentId, SESSION_READY_TIMEOUT_MS);
  run.step(`GET /sessions/${agentId}: ready after ${polls} poll(s), status ${session.status}`);

  const text = `smoke ${randomBytes(6).toString('hex')}`;
  const to = '6281234567890';
  const sentResult = await api<SendResult>(base, 'POST', `/agents/${agentId}/messages`, agentKey, {
    to,
    message: text,
  });
  check(
    sentResult.status === 'sent' && sentResult.delivered && sentResult.waMessageId,
    `POST /agents/${agentId}/messages: expected status "sent", got ${JSON.stringify(sentResult)}`,
  );
  run.step(`POST /agents/${agentId}/messages: 200, sent (messageId ${sentResult.messageId})`);

  const state = await api<MessageState>(base, 'GET', `/agents/${agentId}/messages/${sentResult.messageId}`, agentKey);
  check(
    state.status === 'sent' && state.waMessageId === sentResult.waMessageId,
    `GET /agents/${agentId}/messages/${sentResult.messageId}: expected sent, got ${JSON.stringify(state)}`,
  );
  run.step(`GET /agents/${agentId}/messages/${sentResult.messageId}: 200, sent to ${state.to}`);

  const delivered = await api<SentEntry[]>(base, 'GET', `/sandbox/agents/${agentId}/sent`, adminKey);
  const only = delivered[0];
  check(
    delivered.length === 1 &&
      only?.kind === 'text' &&
      only.text === text &&
      only.to.startsWith(`${to}@`) &&
      only.messageId === sentResult.waMessageId,
    `GET /sandbox/agents/${agentId}/sent: expected exactly the text "${text}" to ${to}, got ${JSON.stringify(delivered)}`,
  );
  run.step(`GET /sandbox/agents/${agentId}/sent: exactly "${text}" to ${only.to}`);

  if (!running) return;
  await stopService(running);
  run.step('SIGTERM: exited with code 0');
}

run.start(smoke, OVERALL_TIMEOUT_MS);
