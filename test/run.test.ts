// POST /agents/{agentId}/run through the whole app, against a local AI stub.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type AiServer, replyWith, startAiServer } from './helpers/ai-server.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

/** Generous: a loaded CI machine must not turn a slow poll into a failure. */
const POLL = { timeout: 10_000, interval: 20 };

const AGENT = 'run-bot';
const KEY = 'run-bot-key';

describe('POST /agents/{agentId}/run', () => {
  let db: TestDatabase;
  let ai: AiServer;
  let t: TestApp;

  const run = (
    payload: Record<string, unknown>,
    headers: Record<string, string> = { authorization: `Bearer ${KEY}` },
  ) => t.app.inject({ method: 'POST', url: `/agents/${AGENT}/run`, headers, payload });
  const sent = async () =>
    (await t.app.inject({ method: 'GET', url: `/sandbox/agents/${AGENT}/sent`, headers: t.admin })).json()
      .data as Array<{ to: string; kind: string; text?: string }>;

  beforeAll(async () => {
    db = await createTestDatabase();
    ai = await startAiServer();
    t = await createTestApp({ database: db.database, env: { AI_BACKEND_URL: ai.url, AI_TIMEOUT_MS: '300' } });
    await t.app.inject({
      method: 'POST',
      url: '/sessions',
      headers: t.admin,
      payload: { userId: 'u-run', agentId: AGENT, agentName: 'Run', apikey: KEY },
    });
    await t.app.inject({ method: 'POST', url: `/sandbox/agents/${AGENT}/scan`, headers: t.admin, payload: {} });
  });
  afterAll(async () => {
    await t?.close();
    await ai?.close();
    await db?.drop();
  });
  beforeEach(() => {
    ai.requests.length = 0;
    ai.respond(replyWith('Hi! How can I help?'));
  });

  it('calls the AI with the seed body plus pass-through fields, sends the reply and says so', async () => {
    const response = await run({
      input: 'Hello assistant!',
      session_id: '0812-3456-7890',
      openai_api_key: 'sk-test',
      memory_enable: true,
      context_memory: '5',
      rag_enable: false,
      metadata: { source: 'crm', tags: ['a'] },
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      data: { reply: 'Hi! How can I help?', replySent: true },
      traceId: expect.any(String),
    });
    const [request] = ai.requests;
    expect(request?.path).toBe(`/agents/${AGENT}/execute`);
    expect(request?.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(request?.headers['x-request-id']).toBe(response.json().traceId);
    expect(request?.body).toEqual({
      input: 'Hello assistant!',
      parameters: { max_steps: 5 },
      session_id: '0812-3456-7890',
      openai_api_key: 'sk-test',
      memory_enable: true,
      context_memory: '5',
      rag_enable: false,
      metadata: { source: 'crm', tags: ['a'] },
    });
    // The reply went out at once; its row, already sent, is written behind it.
    const outbox = () =>
      db.database.query('SELECT to_jid, trace_id, status FROM outbox_messages WHERE agent_id = $1', [AGENT]);
    await expect
      .poll(outbox, POLL)
      .toEqual([{ to_jid: '6281234567890@c.us', trace_id: response.json().traceId, status: 'sent' }]);
    await expect
      .poll(sent, POLL)
      .toEqual([expect.objectContaining({ to: '6281234567890@c.us', kind: 'text', text: 'Hi! How can I help?' })]);
  });

  it('accepts the aliases message and sessionId, keeps given parameters, and describes the chat in metadata', async () => {
    const response = await run(
      { message: 'hey', sessionId: '120363025000000001@g.us', parameters: { max_steps: 2, temperature: 0 } },
      { authorization: `Bearer ${t.admin.authorization.slice(7)}`, 'x-request-id': 'run-trace-1' },
    );
    expect(response.statusCode).toBe(200);
    expect(response.headers['x-request-id']).toBe('run-trace-1');
    expect(ai.requests[0]?.headers['x-request-id']).toBe('run-trace-1');
    expect(ai.requests[0]?.body).toEqual({
      input: 'hey',
      parameters: { max_steps: 2, temperature: 0 },
      session_id: '120363025000000001@g.us',
      metadata: {
        whatsapp_name: null,
        chat_name: null,
        chat_jid: '120363025000000001@g.us',
        sender_jid: null,
        message_id: null,
        is_group: true,
        agent_id: AGENT,
      },
    });
  });

  it('returns a null reply and sends nothing when the AI has no reply', async () => {
    ai.respond({ kind: 'json', body: { data: { status: 'queued' } } });
    const before = (await sent()).length;
    const response = await run({ input: 'hi', session_id: '6281234567890' });
    expect(response.json().data).toEqual({ reply: null, replySent: false });
    expect(await sent()).toHaveLength(before);
  });

  it.each([
    [{ session_id: '6281234567890' }, 'body.input: input (or message) is required'],
    [{ input: '   ', session_id: '6281234567890' }, 'body.input: input (or message) is required'],
    [{ input: 'hi' }, 'body.session_id: session_id (or sessionId) is required'],
    [{ input: 42, session_id: '6281234567890' }, 'body.input'],
    [{ input: 'hi', session_id: '6281234567890', parameters: 'fast' }, 'body.parameters'],
  ])('answers 400 INVALID_PAYLOAD naming the field for %j', async (payload, message) => {
    const response = await run(payload);
    expect(response.statusCode).toBe(400);
    expect(response.json().error.code).toBe('INVALID_PAYLOAD');
    expect(response.json().error.message).toContain(message);
    expect(ai.requests).toHaveLength(0);
  });

  it('answers 400 INVALID_RECIPIENT for a session_id that is not a number or JID, before calling the AI', async () => {
    const response = await run({ input: 'hi', session_id: 'not-a-phone' });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.code).toBe('INVALID_RECIPIENT');
    expect(ai.requests).toHaveLength(0);
  });

  it('answers 502 AI_DOWNSTREAM_ERROR when the AI fails, and 504 AI_TIMEOUT when it is too slow', async () => {
    ai.respond({ kind: 'json', status: 500, body: { error: 'internal detail' } });
    const failed = await run({ input: 'hi', session_id: '6281234567890' });
    expect(failed.statusCode).toBe(502);
    expect(failed.json().error.code).toBe('AI_DOWNSTREAM_ERROR');

    ai.respond({ kind: 'raw', body: '<html>' });
    expect((await run({ input: 'hi', session_id: '6281234567890' })).statusCode).toBe(502);

    ai.respond({ kind: 'hang' });
    const slow = await run({ input: 'hi', session_id: '6281234567890' });
    expect(slow.statusCode).toBe(504);
    expect(slow.json().error.code).toBe('AI_TIMEOUT');
  });

  it('needs the agent key or the admin key', async () => {
    expect((await run({ input: 'hi', session_id: '6281234567890' }, {})).statusCode).toBe(401);
    expect((await run({ input: 'hi', session_id: '6281234567890' }, { authorization: 'Bearer nope' })).statusCode).toBe(
      401,
    );
    expect(ai.requests).toHaveLength(0);
  });

  it('still returns the reply, with replySent false, when the session is not connected', async () => {
    await t.app.inject({
      method: 'POST',
      url: `/sandbox/agents/${AGENT}/disconnect`,
      headers: t.admin,
      payload: { loggedOut: true },
    });
    const response = await run({ input: 'hi', session_id: '6281234567890' });
    expect(response.statusCode).toBe(200);
    expect(response.json().data).toEqual({ reply: 'Hi! How can I help?', replySent: false });
  });
});
