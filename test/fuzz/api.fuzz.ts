// The fuzz suite (`npm run fuzz`): requests generated from the app's OpenAPI document, valid-ish and hostile, with
// and without keys, against the whole app on a real database. Every answer must be a documented 2xx/3xx/4xx, errors in
// the envelope with a code of ours, never a 5xx; the app must still answer afterwards.
// FUZZ_SEED (fixed by default, so CI is repeatable) and FUZZ_RUNS (2,000) choose the cases.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../src/engines/engine.js';
import { ERRORS } from '../../src/errors.js';
import { type AiServer, replyWith, startAiServer } from '../helpers/ai-server.js';
import { ADMIN_KEY, createTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { createFakeEngine } from '../helpers/fake-engine.js';
import { type ConnectedAgent, connectAgent } from '../helpers/messaging.js';
import { type FuzzContext, type FuzzRequest, type OpenApiDocument, requestArbitrary } from './requests.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20_251_129);
const RUNS = Number(process.env.FUZZ_RUNS ?? 2_000);
const LIVE = 'fuzz-live';
const SPARES = ['fuzz-spare-a', 'fuzz-spare-b'];

/** The other engines, as fakes: a session may ask for them, and a real browser or socket has no place here. */
const fakeEngine = (name: Engine['name']): Engine => ({ ...createFakeEngine({ showsQr: true }), name });

interface Problem {
  index: number;
  request: FuzzRequest;
  status: number;
  body: string;
  reason: string;
}

describe(`fuzz: ${RUNS} generated requests (FUZZ_SEED=${SEED})`, () => {
  let ai: AiServer;
  let db: TestDatabase;
  let t: TestApp;
  let live: ConnectedAgent;

  beforeAll(async () => {
    ai = await startAiServer(replyWith('fuzz reply'));
    db = await createTestDatabase();
    t = await createTestApp({
      database: db.database,
      env: {
        AI_BACKEND_URL: ai.url,
        LOG_LEVEL: 'info',
        SEND_WAIT_MS: '200',
        QR_WAIT_TIMEOUT_MS: '2000',
        AI_TIMEOUT_MS: '2000',
        RATE_LIMIT_PER_MINUTE: '1000000',
        RATE_LIMIT_BURST: '1000000',
        // Wrong keys are part of the mix: limited as in production, they would soon turn every case into a 429.
        AUTH_FAILURES_PER_MINUTE: '1000000',
      },
      overrides: { engines: { 'whatsapp-web': fakeEngine('whatsapp-web'), baileys: fakeEngine('baileys') } },
    });
    live = await connectAgent(t, LIVE);
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
    await ai?.close();
  });

  /** The live agent is only reached by agent routes, but a run must not depend on that: connect it again if needed. */
  async function keepLiveConnected(): Promise<void> {
    if (t.container.supervisor.readySession(LIVE) === null) live = await connectAgent(t, LIVE);
  }

  it('answers every request with a documented status, never a 5xx, and stays up', async () => {
    const document = t.app.swagger() as unknown as OpenApiDocument;
    const context: FuzzContext = {
      adminKey: ADMIN_KEY,
      live: { agentId: LIVE, apiKey: live.auth.authorization.replace(/^Bearer /, '') },
      spares: SPARES,
    };
    const problems: Problem[] = [];
    const seen = new Map<string, number>();
    let index = 0;
    // Every case runs, and every problem is listed at the end with its request: one run shows all of them at once.
    await fc.assert(
      fc.asyncProperty(requestArbitrary(document, context), async (request) => {
        index += 1;
        await keepLiveConnected();
        const res = await t.app.inject(toInject(request));
        const code = res.statusCode >= 400 ? ` ${errorCodeOf(res.body)}` : '';
        const key = `${request.method} ${routeOf(request.url)} ${res.statusCode}${code}`;
        seen.set(key, (seen.get(key) ?? 0) + 1);
        const reason = judge(res.statusCode, res.headers, res.body);
        if (reason) problems.push({ index, request, status: res.statusCode, body: res.body.slice(0, 500), reason });
      }),
      { seed: SEED, numRuns: RUNS },
    );

    // What the cases reached, for the CI log: route, status and error code, and how often.
    console.log(
      [...seen]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([key, n]) => `${String(n).padStart(5)} ${key}`)
        .join('\n'),
    );
    const health = await t.app.inject({ method: 'GET', url: '/health' });
    expect(health.statusCode).toBe(200);
    await t.container.database.ping();
    expect(problems.map(describeProblem)).toEqual([]);
  });
});

const CODES = new Set(Object.keys(ERRORS));

function errorCodeOf(body: string): string {
  try {
    return String(JSON.parse(body).error?.code);
  } catch {
    return '(not JSON)';
  }
}

/** Why an answer breaks the contract, or null when it keeps it. */
function judge(status: number, headers: Record<string, unknown>, body: string): string | null {
  if (status >= 500) return `status ${status}`;
  if (status < 400) return null;
  let parsed: { error?: { code?: unknown; message?: unknown; traceId?: unknown } };
  try {
    parsed = JSON.parse(body);
  } catch {
    return 'a 4xx body that is not JSON';
  }
  const error = parsed.error;
  if (!error || typeof error.message !== 'string') return 'a 4xx body outside the error envelope';
  if (typeof error.code !== 'string' || !CODES.has(error.code)) return `an unknown error code ${String(error.code)}`;
  if (error.traceId !== headers['x-request-id']) return 'a traceId that is not the X-Request-Id header';
  return null;
}

function toInject(request: FuzzRequest) {
  const { method, url, headers, payload } = request;
  if (payload === undefined) return { method, url, headers };
  if (typeof payload === 'string') return { method, url, headers, payload };
  return { method, url, headers: { 'content-type': 'application/json', ...headers }, payload: JSON.stringify(payload) };
}

function describeProblem({ index, request, status, body, reason }: Problem): string {
  const payload = request.payload === undefined ? '' : ` ${JSON.stringify(request.payload)?.slice(0, 300)}`;
  return `#${index} ${reason}: ${request.method} ${request.url.slice(0, 200)}${payload} -> ${status} ${body}`;
}

/** The route's shape, for the summary: ids replaced by placeholders. */
function routeOf(url: string): string {
  const [path = ''] = url.split('?');
  return path
    .replace(/^\/(sessions|agents|sandbox\/agents)\/[^/]+/, '/$1/:agentId')
    .replace(/\/messages\/[^/]+$/, '/messages/:messageId')
    .slice(0, 60);
}
