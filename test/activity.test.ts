// GET /agents/{agentId}/activity: per-minute counts and AI latency, from real messages through the sandbox and a
// stand-in AI backend on 127.0.0.1, on a clock the test moves (so each message's minute is known).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/__fixtures__/fake-clock.js';
import { type AiServer, startAiServer } from './helpers/ai-server.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { type ConnectedAgent, connectAgent, sendText, until } from './helpers/messaging.js';

interface Bucket {
  minute: string;
  sent: number;
  received: number;
  failed: number;
  aiLatencyMs: { count: number; avg: number; p95: number } | null;
}

const USER = '6281234567890';
const GROUP = '120363025000000001@g.us';
/** Two seconds before a minute ends: the first messages land in 10:00, the rest (after 2 s) in 10:01. */
const START = Date.parse('2026-03-01T10:00:58.000Z');
/** What the stand-in AI waits before answering each input. */
const DELAYS: Record<string, number> = { fast: 0, medium: 120, slow: 450 };
const EMPTY = { sent: 0, received: 0, failed: 0, aiLatencyMs: null };

describe('GET /agents/{agentId}/activity', () => {
  let db: TestDatabase;
  let ai: AiServer;
  let t: TestApp;
  let agent: ConnectedAgent;
  const clock = new FakeClock(START);

  const deliver = async (body: Record<string, unknown>) => {
    const response = await t.app.inject({
      method: 'POST',
      url: `/sandbox/agents/${agent.agentId}/inbound`,
      headers: t.admin,
      payload: body,
    });
    expect(response.statusCode).toBe(200);
    await t.container.inbound.onIdle();
    return response.json().data.messageId as string;
  };
  const activity = (query = '', headers: Record<string, string> = agent.auth, agentId = agent.agentId) =>
    t.app.inject({ method: 'GET', url: `/agents/${agentId}/activity${query}`, headers });
  const buckets = async (query: string): Promise<Bucket[]> => {
    const response = await activity(query);
    expect(response.statusCode, response.body).toBe(200);
    return response.json().data.buckets;
  };
  const latencies = async (ids: string[]) => {
    const rows = await db.database.query(
      'SELECT wa_message_id, ai_latency_ms, outcome FROM inbound_messages WHERE agent_id = $1 AND wa_message_id = ANY($2)',
      [agent.agentId, ids],
    );
    return new Map(rows.map((row) => [String(row.wa_message_id), row.ai_latency_ms as number | null]));
  };
  /** Nearest rank: the smallest latency with at least 95 % of them at or below it. */
  const p95 = (values: number[]) => [...values].sort((a, b) => a - b)[Math.ceil(0.95 * values.length) - 1];
  const avg = (values: number[]) => Math.round(values.reduce((sum, v) => sum + v, 0) / values.length);

  beforeAll(async () => {
    db = await createTestDatabase();
    ai = await startAiServer((request) => {
      const input = String((request.body as { input?: string }).input ?? '');
      if (input === 'fail') return { kind: 'json', status: 500, body: { error: 'boom' } };
      return { kind: 'json', body: { reply: `re: ${input}` }, delayMs: DELAYS[input] ?? 0 };
    });
    t = await createTestApp({
      database: db.database,
      env: { AI_BACKEND_URL: ai.url },
      overrides: { clock },
    });
    agent = await connectAgent(t, 'activity-bot');
  });
  afterAll(async () => {
    await t?.close();
    await ai?.close();
    await db?.drop();
  });

  it('counts sent, received and failed per minute, with the AI latency of real calls, oldest first', async () => {
    // 10:00 — three questions, each answered after its delay: three received, three replies sent.
    const first = [await deliver({ from: USER, text: 'fast' })];
    first.push(await deliver({ from: USER, text: 'medium' }));
    first.push(await deliver({ from: USER, text: 'slow' }));

    // 10:01 — an AI failure (no reply), a group message the AI never sees, one typed on the phone (not received),
    // one send through the API, and one WhatsApp refuses (failed).
    await clock.advance(2_000);
    const failed = await deliver({ from: USER, text: 'fail' });
    const group = await deliver({ from: USER, chat: GROUP, text: 'hello all' });
    await deliver({ from: USER, text: 'typed on the phone', fromMe: true });
    expect((await sendText(t, agent, { to: USER, message: 'from the API' })).statusCode).toBe(200);
    const refuse = await t.app.inject({
      method: 'POST',
      url: `/sandbox/agents/${agent.agentId}/fail-sends`,
      headers: t.admin,
      payload: { count: 1, reason: 'not_on_whatsapp' },
    });
    expect(refuse.statusCode).toBe(200);
    await sendText(t, agent, { to: USER, message: 'refused' });

    // The outcomes and the sends' states are written in batches, behind the answers.
    let seen: Bucket[] = [];
    await until(async () => {
      seen = await buckets('?minutes=3');
      return seen[1]?.sent === 3 && seen[2]?.failed === 1 && seen[2]?.aiLatencyMs !== null;
    }).catch(() => {
      throw new Error(`the counts never settled: ${JSON.stringify(seen)}`);
    });

    const measured = await latencies([...first, failed, group]);
    const firstLatencies = first.map((id) => measured.get(id) ?? Number.NaN);
    // Real calls to the stand-in, measured by the service: at least the stand-in's delay.
    expect(firstLatencies[1]).toBeGreaterThanOrEqual(DELAYS.medium ?? 0);
    expect(firstLatencies[2]).toBeGreaterThanOrEqual(DELAYS.slow ?? 0);
    const failedLatency = measured.get(failed);
    expect(failedLatency).toEqual(expect.any(Number));
    // The AI was never asked about the group message.
    expect(measured.get(group)).toBeNull();

    const response = await activity('?minutes=3');
    expect(response.json().data).toEqual({
      agentId: agent.agentId,
      from: '2026-03-01T09:59:00.000Z',
      to: '2026-03-01T10:02:00.000Z',
      buckets: [
        { minute: '2026-03-01T09:59:00.000Z', ...EMPTY },
        {
          minute: '2026-03-01T10:00:00.000Z',
          sent: 3,
          received: 3,
          failed: 0,
          aiLatencyMs: { count: 3, avg: avg(firstLatencies), p95: p95(firstLatencies) },
        },
        {
          minute: '2026-03-01T10:01:00.000Z',
          sent: 1,
          received: 2,
          failed: 1,
          aiLatencyMs: { count: 1, avg: failedLatency, p95: failedLatency },
        },
      ],
    });
    // The slowest of three is the 95th percentile.
    expect(p95(firstLatencies)).toBe(firstLatencies[2]);

    // The default is the last hour: 60 minutes, the current one last; the admin key reads it too.
    const hour = await activity('', t.admin);
    expect(hour.statusCode).toBe(200);
    const hourBuckets = hour.json().data.buckets as Bucket[];
    expect(hourBuckets).toHaveLength(60);
    expect(hourBuckets[0]?.minute).toBe('2026-03-01T09:02:00.000Z');
    expect(hourBuckets.slice(-2)).toEqual(seen.slice(1));
    expect(hourBuckets.slice(0, -2).every((b) => b.sent + b.received + b.failed === 0 && !b.aiLatencyMs)).toBe(true);

    // One minute: the current one only; what came before it is outside the window.
    expect(await buckets('?minutes=1')).toEqual(seen.slice(2));
  });

  it("answers the agent's key and the admin key only, 404 for an unknown agent, 400 for a bad minutes", async () => {
    const other = await connectAgent(t, 'activity-other');
    expect((await activity('', {})).statusCode).toBe(401);
    expect((await activity('', { authorization: 'Bearer wrong-key-0123456789' })).statusCode).toBe(401);
    const forbidden = await activity('', other.auth);
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json().error.code).toBe('FORBIDDEN');
    const unknown = await activity('', t.admin, 'no-such-agent');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('SESSION_NOT_FOUND');
    expect((await activity('', t.admin, 'bad agent!')).statusCode).toBe(400);

    for (const query of ['?minutes=0', '?minutes=1441', '?minutes=abc', '?minutes=1.5', '?minutes=-5']) {
      const response = await activity(query);
      expect(response.statusCode, query).toBe(400);
      expect(response.json().error.code, query).toBe('INVALID_PAYLOAD');
    }
    expect(await buckets('?minutes=1')).toHaveLength(1);
    expect(await buckets('?minutes=1440')).toHaveLength(1440);
  });
});
