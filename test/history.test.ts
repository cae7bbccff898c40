// The message store and chat history through the whole app: the sandbox plays the contacts, a local stub the AI.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { HistoryItem } from '../src/history/history.schemas.js';
import { InboundRepository } from '../src/inbound/inbound.repository.js';
import { OutboxRepository } from '../src/outbox/outbox.repository.js';
import { type AiServer, startAiServer } from './helpers/ai-server.js';
import { createTestApp, createTestDataDir, removeDir, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { type ConnectedAgent, connectAgent, sendText, until } from './helpers/messaging.js';

const USER = '6281234567890';
const USER_JID = `${USER}@c.us`;
const OTHER = '6281234500000';
const OTHER_JID = `${OTHER}@c.us`;
const GROUP = '120363025000000001@g.us';
const DAY = 24 * 60 * 60 * 1000;

/** An item of the history as the API answers it (JSON: times are strings). */
type Item = HistoryItem;
type Receipts = NonNullable<HistoryItem['receipts']>;

const NO_RECEIPTS: Receipts = { server: null, delivered: null, read: null, played: null, error: null, errorAt: null };
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

interface Chat {
  chatId: string;
  chatName: string | null;
  isGroup: boolean;
  lastMessageAt: string;
  lastMessage: { direction: 'in' | 'out'; type: string; preview: string };
  counts: { in: number; out: number };
}

describe('message store and chat history', () => {
  let db: TestDatabase;
  let ai: AiServer;
  let dataDir: string;
  let t: TestApp;
  let seq = 0;
  let agent: ConnectedAgent;

  const deliver = async (body: Record<string, unknown>, agentId = agent.agentId) => {
    const response = await t.app.inject({
      method: 'POST',
      url: `/sandbox/agents/${agentId}/inbound`,
      headers: t.admin,
      payload: body,
    });
    expect(response.statusCode).toBe(200);
    await t.container.inbound.onIdle();
    return response.json().data.messageId as string;
  };
  const get = (url: string, headers: Record<string, string> = agent.auth) =>
    t.app.inject({ method: 'GET', url, headers });
  const messagesUrl = (chat: string, query = '') =>
    `/agents/${agent.agentId}/chats/${encodeURIComponent(chat)}/messages${query}`;
  const messages = async (chat: string, query = ''): Promise<{ items: Item[]; nextCursor: string | null }> => {
    const response = await get(messagesUrl(chat, query));
    expect(response.statusCode).toBe(200);
    return response.json().data;
  };
  /** Every message of the chat, page after page of `limit`. */
  const allPages = async (chat: string, limit: number): Promise<{ items: Item[]; pages: number }> => {
    const items: Item[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = `?limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`;
      const page = await messages(chat, query);
      items.push(...page.items);
      cursor = page.nextCursor;
      pages += 1;
    } while (cursor && pages < 100);
    return { items, pages };
  };

  beforeAll(async () => {
    db = await createTestDatabase();
    // Answers every question with its own text, so that the history shows which reply went with which message.
    ai = await startAiServer((request) => ({
      kind: 'json',
      body: { reply: `re: ${(request.body as { input?: string }).input ?? ''}` },
    }));
    dataDir = await createTestDataDir();
    t = await createTestApp({
      database: db.database,
      dataDir,
      // Text only, as before media forwarding: the files below are stored without going to the AI.
      env: { AI_BACKEND_URL: ai.url, AI_TIMEOUT_MS: '2000', AI_HISTORY_MESSAGES: '3', AI_FORWARD_TYPES: 'text' },
    });
  });
  afterAll(async () => {
    await t?.close();
    await ai?.close();
    await removeDir(dataDir);
    await db?.drop();
  });
  beforeEach(async () => {
    ai.requests.length = 0;
    agent = await connectAgent(t, `history-${++seq}`);
  });

  it('stores what the AI never sees: group messages without mention, own messages, media with its metadata', async () => {
    const groupId = await deliver({ from: USER, chat: GROUP, text: 'hello all', chatName: 'Team' });
    const ownId = await deliver({ from: USER, text: 'typed on the phone', fromMe: true });
    const imageId = await deliver({
      from: USER,
      type: 'image',
      text: 'the receipt',
      quotedMessageId: 'QUOTED-1',
      media: { mimeType: 'image/jpeg', size: 48_213 },
    });
    const documentId = await deliver({
      from: USER,
      type: 'document',
      media: { mimeType: 'application/pdf', size: 1_000, filename: 'invoice.pdf' },
    });
    expect(ai.requests).toHaveLength(0);

    const group = await messages(GROUP);
    expect(group).toEqual({
      items: [
        {
          id: groupId,
          waMessageId: groupId,
          direction: 'in',
          chatId: GROUP,
          from: USER_JID,
          type: 'text',
          text: 'hello all',
          caption: null,
          quotedMessageId: null,
          media: null,
          timestamp: expect.any(String),
          status: null,
          receipts: null,
          error: null,
        },
      ],
      nextCursor: null,
    });

    const direct = await messages(USER);
    expect(direct.items.map((item) => item.id)).toEqual([documentId, imageId, ownId]);
    const [document, image, own] = direct.items;
    expect(document).toMatchObject({
      type: 'document',
      text: null,
      caption: null,
      media: { mimeType: 'application/pdf', size: 1_000, filename: 'invoice.pdf' },
    });
    expect(image).toMatchObject({
      direction: 'in',
      type: 'image',
      text: null,
      caption: 'the receipt',
      quotedMessageId: 'QUOTED-1',
      media: { mimeType: 'image/jpeg', size: 48_213, filename: null },
    });
    // Sent from the account's phone: outgoing, though no outbox row stands for it.
    expect(own).toMatchObject({ direction: 'out', text: 'typed on the phone', status: null, receipts: null });
    // A redelivery of the same id is stored once.
    await deliver({ from: USER, chat: GROUP, text: 'hello all', id: groupId });
    expect((await messages(GROUP)).items).toHaveLength(1);
  });

  it('serves both directions newest first, and pages through them without duplicates or gaps', async () => {
    for (const text of ['one', 'two', 'three', 'four']) await deliver({ from: USER, text });
    const api = await sendText(t, agent, { to: USER, message: 'sent by the API' });
    expect(api.statusCode).toBe(200);
    await deliver({ from: USER, text: 'five' });
    await deliver({ from: OTHER, text: 'another chat' });

    const whole = await messages(USER, '?limit=200');
    expect(whole.nextCursor).toBeNull();
    expect(whole.items.map((item) => `${item.direction}:${item.text}`)).toEqual([
      'out:re: five',
      'in:five',
      'out:sent by the API',
      'out:re: four',
      'in:four',
      'out:re: three',
      'in:three',
      'out:re: two',
      'in:two',
      'out:re: one',
      'in:one',
    ]);
    const timestamps = whole.items.map((item) => Date.parse(item.timestamp));
    expect(timestamps).toEqual([...timestamps].sort((a, b) => b - a));
    expect(whole.items[0]).toMatchObject({ status: 'sent', chatId: USER_JID, waMessageId: expect.any(String) });
    expect(whole.items.find((item) => item.text === 'sent by the API')?.id).toBe(api.json().data.messageId);

    for (const limit of [1, 3, 4]) {
      const paged = await allPages(USER, limit);
      expect(paged.items.map((item) => item.id)).toEqual(whole.items.map((item) => item.id));
      expect(paged.pages).toBe(Math.ceil(whole.items.length / limit));
    }
    // The default page is 50 messages.
    expect((await messages(USER)).items).toHaveLength(11);
    // A chat id may be given as a phone number or any JID form.
    expect((await messages(`+${USER}`)).items).toHaveLength(11);
    expect((await messages(`${USER}@s.whatsapp.net`)).items).toHaveLength(11);
  });

  it("carries each sent message's receipts and its send's error, and none on received ones", async () => {
    const ack = async (waMessageId: string, status: string, error?: string) => {
      const response = await t.app.inject({
        method: 'POST',
        url: `/sandbox/agents/${agent.agentId}/ack`,
        headers: t.admin,
        payload: { waMessageId, status, ...(error ? { error } : {}) },
      });
      expect(response.statusCode).toBe(200);
    };
    const send = async (message: string) => {
      const response = await sendText(t, agent, { to: OTHER, message });
      expect(response.statusCode).toBe(200);
      return response.json().data as { messageId: string; waMessageId: string };
    };
    const item = async (id: string) => (await messages(OTHER)).items.find((entry) => entry.id === id);
    /** Receipts are written behind the send, in batches: the history shows them a moment later. */
    const receiptsOf = async (id: string, done: (receipts: Receipts) => boolean) => {
      let last: Receipts | null | undefined;
      await until(async () => {
        last = (await item(id))?.receipts;
        return Boolean(last && done(last));
      }).catch(() => {
        throw new Error(`receipts never arrived: ${JSON.stringify(last)}`);
      });
      return last as Receipts;
    };

    const received = await deliver({ from: OTHER, text: 'no receipts here' });
    const read = await send('will be read');
    const delivered = await send('only delivered');
    const refused = await send('refused by WhatsApp');
    expect(await item(read.messageId)).toMatchObject({ status: 'sent', receipts: NO_RECEIPTS, error: null });

    await ack(read.waMessageId, 'server');
    await ack(read.waMessageId, 'delivered');
    await ack(read.waMessageId, 'read');
    await ack(delivered.waMessageId, 'delivered');
    await ack(refused.waMessageId, 'error', 'recipient unreachable');
    const readReceipts = await receiptsOf(read.messageId, (r) => r.read !== null);
    expect(readReceipts).toEqual({
      ...NO_RECEIPTS,
      server: expect.stringMatching(ISO),
      delivered: expect.stringMatching(ISO),
      read: expect.stringMatching(ISO),
    });
    expect(Date.parse(readReceipts.read ?? '')).toBeGreaterThanOrEqual(Date.parse(readReceipts.server ?? ''));
    // A receipt implies those before it: delivered was on the server first.
    expect(await receiptsOf(delivered.messageId, (r) => r.delivered !== null)).toEqual({
      ...NO_RECEIPTS,
      server: expect.stringMatching(ISO),
      delivered: expect.stringMatching(ISO),
    });
    expect(await receiptsOf(refused.messageId, (r) => r.errorAt !== null)).toEqual({
      ...NO_RECEIPTS,
      error: 'recipient unreachable',
      errorAt: expect.stringMatching(ISO),
    });
    expect(await item(received)).toMatchObject({ direction: 'in', receipts: null, error: null });

    // A send WhatsApp refuses fails for good: the item says why, and no receipt ever comes.
    const failSends = await t.app.inject({
      method: 'POST',
      url: `/sandbox/agents/${agent.agentId}/fail-sends`,
      headers: t.admin,
      payload: { count: 1, reason: 'not_on_whatsapp' },
    });
    expect(failSends.statusCode).toBe(200);
    const failed = await sendText(t, agent, { to: OTHER, message: 'never arrives' });
    const failedId = failed.json().data.messageId as string;
    await until(async () => (await item(failedId))?.status === 'failed');
    expect(await item(failedId)).toMatchObject({
      status: 'failed',
      receipts: NO_RECEIPTS,
      error: expect.stringMatching(/\S/),
    });
  });

  it('lists the chats, latest first, with a preview and counts, in pages', async () => {
    await deliver({ from: USER, text: 'first chat' });
    await deliver({ from: OTHER, chat: GROUP, text: 'in the group', chatName: 'Team' });
    await deliver({ from: OTHER, text: 'x'.repeat(300), fromMe: true });

    const response = await get(`/agents/${agent.agentId}/chats`);
    expect(response.statusCode).toBe(200);
    const { items, nextCursor } = response.json().data as { items: Chat[]; nextCursor: string | null };
    expect(nextCursor).toBeNull();
    expect(items.map((chat) => chat.chatId)).toEqual([OTHER_JID, GROUP, USER_JID]);
    expect(items[0]).toMatchObject({
      isGroup: false,
      lastMessage: { direction: 'out', type: 'text', preview: 'x'.repeat(200) },
      counts: { in: 0, out: 1 },
    });
    expect(items[1]).toMatchObject({ chatName: 'Team', isGroup: true, counts: { in: 1, out: 0 } });
    expect(items[2]).toMatchObject({
      lastMessage: { direction: 'out', preview: 're: first chat' },
      counts: { in: 1, out: 1 },
    });

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { items: Chat[]; nextCursor: string | null } = (
        await get(`/agents/${agent.agentId}/chats?limit=2${cursor ? `&cursor=${cursor}` : ''}`, t.admin)
      ).json().data;
      seen.push(...page.items.map((chat) => chat.chatId));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual([OTHER_JID, GROUP, USER_JID]);
  });

  it("answers only the agent's own key and the admin, and refuses bad ids, cursors and limits", async () => {
    await deliver({ from: USER, text: 'hi' });
    const other = await connectAgent(t, `history-other-${seq}`);
    expect((await get(messagesUrl(USER), other.auth)).statusCode).toBe(403);
    expect((await get(`/agents/${agent.agentId}/chats`, other.auth)).statusCode).toBe(403);
    expect((await get(messagesUrl(USER), {})).statusCode).toBe(401);
    expect((await get(messagesUrl(USER), t.admin)).statusCode).toBe(200);

    const unknown = await get('/agents/no-such-agent/chats', t.admin);
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('SESSION_NOT_FOUND');
    expect((await get(`/agents/no-such-agent/chats/${USER}/messages`, t.admin)).statusCode).toBe(404);

    for (const query of ['?limit=0', '?limit=201', '?limit=abc', '?cursor=not-a-cursor', '?cursor=%00']) {
      expect((await get(messagesUrl(USER, query))).statusCode, query).toBe(400);
      expect((await get(`/agents/${agent.agentId}/chats${query}`)).statusCode, query).toBe(400);
    }
    const forged = Buffer.from(JSON.stringify(['1', 'x', 'y'])).toString('base64url');
    expect((await get(messagesUrl(USER, `?cursor=${forged}`))).statusCode).toBe(400);
    for (const chat of ['abc@nowhere', 'nope', `${USER}\u0000`, '@c.us']) {
      expect((await get(messagesUrl(chat))).statusCode, chat).toBe(400);
    }
  });

  it('gives the AI the last AI_HISTORY_MESSAGES messages of the chat, oldest first', async () => {
    await deliver({ from: USER, text: 'one' });
    expect(ai.requests[0]?.body).toMatchObject({ metadata: { history: [] } });
    await deliver({ from: USER, text: 'two' });
    await deliver({ from: OTHER, text: 'elsewhere' });
    await deliver({ from: USER, text: 'three' });
    const last = ai.requests.at(-1)?.body as { input: string; metadata: { history: unknown[] } };
    expect(last.input).toBe('three');
    expect(last.metadata.history).toEqual([
      { direction: 'out', text: 're: one', timestamp: expect.any(String) },
      { direction: 'in', text: 'two', timestamp: expect.any(String) },
      { direction: 'out', text: 're: two', timestamp: expect.any(String) },
    ]);
  });

  it('purges messages past the retention period in batches, both directions', async () => {
    for (const text of ['a', 'b', 'c', 'd']) await deliver({ from: USER, text });
    // The replies are committed when the inbound pipeline is idle; wait until all four went out (settled rows only).
    await until(async () => {
      const [row] = await db.database.query(
        `SELECT count(*)::int AS n FROM outbox_messages WHERE agent_id = $1 AND status = 'sent'`,
        [agent.agentId],
      );
      return row?.n === 4;
    });
    const longAgo = new Date(Date.now() - 40 * DAY).toISOString();
    // Three received messages and all four replies are old; the last message is not.
    await db.database.query(
      `UPDATE inbound_messages SET received_at = $1 WHERE agent_id = $2 AND text IN ('a', 'b', 'c')`,
      [longAgo, agent.agentId],
    );
    await db.database.query('UPDATE outbox_messages SET updated_at = $1, created_at = $1 WHERE agent_id = $2', [
      longAgo,
      agent.agentId,
    ]);
    const cutoff = new Date(Date.now() - 30 * DAY);
    expect(await new InboundRepository(db.database, 2).purgeBefore(cutoff)).toBeGreaterThanOrEqual(3);
    expect(await new OutboxRepository(db.database).purgeSettledBefore(cutoff, { batchSize: 3 })).toBeGreaterThanOrEqual(
      4,
    );
    expect((await messages(USER)).items.map((item) => `${item.direction}:${item.text}`)).toEqual(['in:d']);
  });
});
