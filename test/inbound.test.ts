// Inbound messages through the whole app: the sandbox control surface plays the contacts, a local stub the AI.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type AiBehaviour, type AiServer, refusedUrl, replyWith, startAiServer } from './helpers/ai-server.js';
import { ADMIN_KEY, createTestApp, createTestDataDir, removeDir, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { privateText } from './helpers/inbound-message.js';
import { connectAgent, deliverInbound } from './helpers/messaging.js';

/** Generous: a loaded CI machine must not turn a slow poll into a failure. */
const POLL = { timeout: 10_000, interval: 20 };

const BOT_PHONE = '6281100000001';
const USER = '6281234567890';
const USER_JID = `${USER}@c.us`;
const OTHER = '6281234500000';
const GROUP = '120363025000000001@g.us';
const DEVELOPER = '6289900000000';

interface SentEntry {
  to: string;
  kind: 'text' | 'image' | 'typing';
  text?: string;
  typing?: boolean;
  quotedMessageId?: string;
}

describe('inbound messages', () => {
  let db: TestDatabase;
  let ai: AiServer;
  let dataDir: string;
  let t: TestApp;
  let agentSeq = 0;
  let agentId: string;

  const build = (env: Record<string, string> = {}) =>
    createTestApp({
      database: db.database,
      dataDir,
      env: { AI_BACKEND_URL: ai.url, DEVELOPER_NUMBER: DEVELOPER, AI_TIMEOUT_MS: '2000', ...env },
    });

  const connect = (id: string, phone = BOT_PHONE) => connectAgent(t, id, { apikey: `key-${id}`, phone });

  /** Delivers a message and waits until the pipeline has finished with everything it accepted. */
  const deliver = (body: Record<string, unknown>, id = agentId) => deliverInbound(t, id, body);
  const settle = () => t.container.inbound.onIdle();
  /** After a rebuild the stored sandbox login brings the session back without a scan, as after a real restart. */
  const waitUntilReady = () =>
    expect
      .poll(async () => {
        const status = await t.app.inject({ method: 'GET', url: `/sessions/${agentId}`, headers: t.admin });
        return status.json().data?.liveState?.isReady;
      }, POLL)
      .toBe(true);
  const sent = async (id = agentId): Promise<SentEntry[]> =>
    (await t.app.inject({ method: 'GET', url: `/sandbox/agents/${id}/sent`, headers: t.admin })).json().data;
  const texts = async () => (await sent()).filter((e) => e.kind === 'text');
  const typing = async () => (await sent()).filter((e) => e.kind === 'typing').map((e) => e.typing);
  const metric = async (pattern: RegExp) => {
    const text = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
    const line = text.split('\n').find((l) => pattern.test(l));
    return line ? Number(line.split(' ').at(-1)) : 0;
  };
  const received = (outcome: string) =>
    metric(new RegExp(`^whatsapp_messages_received_total\\{outcome="${outcome}"\\}`));

  beforeAll(async () => {
    db = await createTestDatabase();
    ai = await startAiServer();
    dataDir = await createTestDataDir();
    t = await build();
  });
  afterAll(async () => {
    await t?.close();
    await ai?.close();
    await removeDir(dataDir);
    await db?.drop();
  });
  beforeEach(async () => {
    agentId = `inbound-${++agentSeq}`;
    ai.requests.length = 0;
    ai.respond(replyWith('Hello from AI'));
    await connect(agentId);
  });
  afterEach(() => settle());

  it('sends a private message to the AI with the exact body and headers, replies, and clears typing', async () => {
    const messageId = await deliver({ from: USER, text: 'What are your hours?', pushName: 'Ann' });
    await settle();

    expect(ai.requests).toHaveLength(1);
    const [request] = ai.requests;
    expect(request?.path).toBe(`/agents/${agentId}/execute`);
    expect(request?.headers.authorization).toBe(`Bearer key-${agentId}`);
    expect(request?.headers['content-type']).toBe('application/json');
    expect(request?.headers['x-request-id']).toEqual(expect.any(String));
    expect(request?.body).toEqual({
      input: 'What are your hours?',
      parameters: { max_steps: 5 },
      session_id: USER,
      metadata: {
        whatsapp_name: 'Ann',
        chat_name: null,
        chat_jid: USER_JID,
        sender_jid: USER_JID,
        message_id: messageId,
        is_group: false,
        agent_id: agentId,
        // One identity per person: the number, the LID where known, the JID as received.
        sender: { phone: USER, lid: null, jid: USER_JID, pushName: 'Ann' },
      },
    });
    await expect.poll(texts, POLL).toEqual([expect.objectContaining({ to: USER_JID, text: 'Hello from AI' })]);
    expect((await texts())[0]?.quotedMessageId).toBeUndefined();
    expect(await typing()).toEqual([true, false]);
    const kinds = (await sent()).map((e) => `${e.kind}${e.typing === undefined ? '' : `:${e.typing}`}`);
    expect(kinds).toEqual(['typing:true', 'typing:false', 'text']);
    expect(await received('replied')).toBe(1);

    const traceId = request?.headers['x-request-id'];
    // The reply took the outbox (rate-limited, FIFO per agent), under the message's traceId. It went out at once;
    // its row, already sent, is written behind it (up to 10 ms later), so the table is polled.
    const outbox = () =>
      db.database.query('SELECT to_jid, status, trace_id, payload FROM outbox_messages WHERE agent_id = $1', [agentId]);
    await expect.poll(outbox, POLL).toEqual([
      expect.objectContaining({
        to_jid: USER_JID,
        status: 'sent',
        trace_id: traceId,
        payload: expect.objectContaining({ text: 'Hello from AI' }),
      }),
    ]);
    const replied = t.logs.find((l) => l.event === 'inbound.replied' && l.traceId === traceId);
    expect(replied).toMatchObject({ agentId, level: 'info' });
    // Message bodies never reach the log at info level.
    const infoLines = t.logs.filter((l) => l.level === 'info').map((l) => JSON.stringify(l));
    expect(infoLines.join('\n')).not.toContain('What are your hours?');
    expect(infoLines.join('\n')).not.toContain('Hello from AI');
  });

  it("calls the agent's endpoint_url_run instead of the default when one is set", async () => {
    await db.database.query('UPDATE whatsapp_user SET endpoint_url_run = $1 WHERE agent_id = $2', [
      `${ai.url}/custom/${agentId}/run`,
      agentId,
    ]);
    await deliver({ from: USER, text: 'hi' });
    await settle();
    expect(ai.requests.map((r) => r.path)).toEqual([`/custom/${agentId}/run`]);
  });

  it.each<[string, Record<string, unknown>]>([
    ['its JID in the mentions', { mentions: [BOT_PHONE] }],
    ['its number in the text', { text: `@${BOT_PHONE} what is the plan?` }],
  ])('answers a group message that mentions the bot by %s, quoting it', async (_name, extra) => {
    const messageId = await deliver({ from: USER, chat: GROUP, text: 'what is the plan?', chatName: 'Team', ...extra });
    await settle();
    expect(ai.requests).toHaveLength(1);
    expect(ai.requests[0]?.body).toMatchObject({
      session_id: GROUP,
      metadata: { chat_jid: GROUP, sender_jid: USER_JID, is_group: true, chat_name: 'Team' },
    });
    await expect.poll(texts, POLL).toEqual([expect.objectContaining({ to: GROUP, quotedMessageId: messageId })]);
  });

  it.each<[string, Record<string, unknown>]>([
    ['a group message without mention', { from: USER, chat: GROUP, text: 'hello all' }],
    ['a group message mentioning someone else', { from: USER, chat: GROUP, text: 'hi', mentions: [OTHER] }],
    ['a status update', { from: USER, chat: 'status@broadcast', text: 'my story' }],
    ['a channel post', { from: USER, chat: '120363000000000000@newsletter', text: 'news' }],
    ['our own message', { from: USER, text: 'typed on the phone', fromMe: true }],
    // AI_FORWARD_TYPES's default forwards images, voice notes, documents and locations (test/inbound-media.test.ts).
    ['a video', { from: USER, text: 'caption', type: 'video' }],
    ['a sticker', { from: USER, type: 'sticker' }],
  ])('ignores %s', async (_name, body) => {
    const before = await received('ignored');
    await deliver(body);
    await settle();
    expect(ai.requests).toHaveLength(0);
    expect(await sent()).toEqual([]);
    expect(await received('ignored')).toBe(before + 1);
  });

  it('answers three quick messages of one chat in order while another chat is not held up', async () => {
    let openGate = () => {};
    const gate = new Promise<void>((resolve) => {
      openGate = resolve;
    });
    ai.respond(async (request): Promise<AiBehaviour> => {
      const { input } = request.body as { input: string };
      if (input === 'one') await gate;
      return replyWith(`re: ${input}`);
    });
    await deliver({ from: USER, text: 'one' });
    await deliver({ from: USER, text: 'two' });
    await deliver({ from: USER, text: 'three' });
    await deliver({ from: OTHER, text: 'other' });

    await expect.poll(async () => (await texts()).map((e) => e.text), POLL).toEqual(['re: other']);
    // The two chats run side by side, so the AI may see either first; 'two' and 'three' wait behind 'one'.
    await expect
      .poll(() => ai.requests.map((r) => (r.body as { input: string }).input).sort(), POLL)
      .toEqual(['one', 'other']);
    openGate();
    await settle();
    await expect
      .poll(async () => (await texts()).map((e) => `${e.to} ${e.text}`), POLL)
      .toEqual([`${OTHER}@c.us re: other`, `${USER_JID} re: one`, `${USER_JID} re: two`, `${USER_JID} re: three`]);
  });

  it('runs at most AI_CONCURRENCY_PER_AGENT chats of an agent at once, without holding up another agent', async () => {
    await t.close();
    t = await build({ AI_CONCURRENCY_PER_AGENT: '2' });
    await waitUntilReady();
    const other = `${agentId}-other`;
    await connect(other, '6281100000002');
    let openGate = () => {};
    const gate = new Promise<void>((resolve) => {
      openGate = resolve;
    });
    ai.respond(async (request): Promise<AiBehaviour> => {
      const { input } = request.body as { input: string };
      if (input.startsWith('busy')) await gate;
      return replyWith(`re: ${input}`);
    });
    const asked = () => ai.requests.map((r) => (r.body as { input: string }).input).sort();
    for (const n of [1, 2, 3]) await deliver({ from: `62812345678${n}0`, text: `busy ${n}` });
    await deliver({ from: USER, text: 'other agent' }, other);

    // Two chats of the busy agent are with the AI, the third waits for a slot; the other agent is answered.
    await expect.poll(async () => (await sent(other)).filter((e) => e.kind === 'text').length, POLL).toBe(1);
    await expect.poll(asked, POLL).toEqual(['busy 1', 'busy 2', 'other agent']);
    openGate();
    await settle();
    await expect.poll(async () => (await texts()).length, POLL).toBe(3);
    expect(asked()).toEqual(['busy 1', 'busy 2', 'busy 3', 'other agent']);
  });

  describe('when the AI fails', () => {
    const cases: Array<[string, AiBehaviour | 'refused', 'TIMEOUT' | 'ERROR']> = [
      ['it answers 500', { kind: 'json', status: 500, body: { error: 'boom' } }, 'ERROR'],
      ['it answers invalid JSON', { kind: 'raw', body: 'not json' }, 'ERROR'],
      ['it answers an empty body', { kind: 'raw', body: '' }, 'ERROR'],
      ['the connection is refused', 'refused', 'ERROR'],
      ['it sends 50 MB', { kind: 'huge', bytes: 50 * 1024 * 1024 }, 'ERROR'],
    ];
    it.each(cases)('when %s: no reply to the user, a developer report, typing cleared', async (_n, how, reason) => {
      if (how === 'refused') {
        await db.database.query('UPDATE whatsapp_user SET endpoint_url_run = $1 WHERE agent_id = $2', [
          await refusedUrl(),
          agentId,
        ]);
      } else {
        ai.respond(how);
      }
      const errorsBefore = await metric(/^whatsapp_errors_total\{code="AI_DOWNSTREAM_ERROR"\}/);
      const before = await received('ai_error');
      await deliver({ from: USER, text: 'please help' });
      await settle();

      await expect.poll(texts, POLL).toHaveLength(1);
      const [report] = await texts();
      expect(report?.to).toBe(`${DEVELOPER}@c.us`);
      expect(report?.text).toContain(`agent: ${agentId}`);
      expect(report?.text).toContain(`sender: ${USER_JID}`);
      expect(report?.text).toContain(`reason: ${reason}`);
      expect(report?.text).toContain('text: please help');
      expect(report?.text).toMatch(/traceId: \S+/);
      expect(report?.text).toMatch(/time: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/);
      expect(await typing()).toEqual([true, false]);
      expect(await received('ai_error')).toBe(before + 1);
      expect(await metric(/^whatsapp_errors_total\{code="AI_DOWNSTREAM_ERROR"\}/)).toBe(errorsBefore + 1);
      expect(t.logs.some((l) => l.event === 'inbound.ai.error' && l.agentId === agentId)).toBe(true);
    });

    it('sends nothing and reports nothing when the AI answers without a reply', async () => {
      ai.respond({ kind: 'json', body: { reply: '' } });
      await deliver({ from: USER, text: 'hi' });
      await settle();
      expect(await texts()).toEqual([]);
      expect(await typing()).toEqual([true, false]);
    });
  });

  it('answers a message delivered twice only once, also after a restart on the same database', async () => {
    await deliver({ from: USER, text: 'hi', id: 'WAMID-DUP-1' });
    await deliver({ from: USER, text: 'hi', id: 'WAMID-DUP-1' });
    await settle();
    expect(ai.requests).toHaveLength(1);
    await expect.poll(texts, POLL).toHaveLength(1);

    await t.close();
    t = await build();
    await waitUntilReady();
    await deliver({ from: USER, text: 'hi', id: 'WAMID-DUP-1' });
    await settle();
    expect(ai.requests).toHaveLength(1);
    expect(await received('duplicate')).toBe(1);
  });

  it('times out after AI_TIMEOUT_MS: no reply, a TIMEOUT report, typing cleared', async () => {
    await t.close();
    t = await build({ AI_TIMEOUT_MS: '200' });
    await waitUntilReady();
    ai.respond({ kind: 'hang' });
    await deliver({ from: USER, text: 'slow question' });
    await settle();
    await expect.poll(texts, POLL).toHaveLength(1);
    expect((await texts())[0]).toMatchObject({ to: `${DEVELOPER}@c.us` });
    expect((await texts())[0]?.text).toContain('reason: TIMEOUT');
    expect(await typing()).toEqual([true, false]);
    expect(await metric(/^whatsapp_errors_total\{code="AI_TIMEOUT"\}/)).toBe(1);
    expect(t.logs.some((l) => l.event === 'inbound.ai.timeout')).toBe(true);
  });

  it('drops messages of an agent that was deleted', async () => {
    const session = t.container.sandbox?.session(agentId);
    const del = await t.app.inject({
      method: 'DELETE',
      url: `/sessions/${agentId}`,
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    expect(del.statusCode).toBe(200);
    // A late event from the stopped session must not reach the AI.
    session?.emit('message', privateText('LATE1', USER_JID, 'still there?'));
    t.container.inbound.handle(agentId, privateText('LATE2', USER_JID, 'still there?'));
    await settle();
    expect(ai.requests).toHaveLength(0);
    expect(await received('dropped')).toBeGreaterThanOrEqual(1);
  });
});
