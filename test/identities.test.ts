// One identity per person, through the whole app: the sandbox delivers messages by LID and by number, a local stub
// plays the AI, and sends by either address reach one chat.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { IdentityRepository } from '../src/identity/identity.repository.js';
import { type AiServer, replyWith, startAiServer } from './helpers/ai-server.js';
import { createTestApp, createTestDataDir, removeDir, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { connectAgent, deliverInbound } from './helpers/messaging.js';

const POLL = { timeout: 10_000, interval: 20 };
const BOT_PHONE = '6281100000001';
const PHONE = '6281234567890';
const PHONE_JID = `${PHONE}@c.us`;
const LID = '210987654321098@lid';
const GROUP = '120363025000000001@g.us';

interface AiBody {
  input: string;
  session_id: string;
  metadata: { chat_jid: string; sender_jid: string; sender: unknown };
}

interface SentEntry {
  to: string;
  chat: string;
  kind: string;
  text?: string;
}

describe('one identity per person (LID and phone number)', () => {
  let db: TestDatabase;
  let ai: AiServer;
  let dataDir: string;
  let t: TestApp;
  let agentSeq = 0;
  let agentId: string;

  const build = () => createTestApp({ database: db.database, dataDir, env: { AI_BACKEND_URL: ai.url } });
  const agentAuth = () => ({ authorization: `Bearer key-${agentId}` });

  const connect = () => connectAgent(t, agentId, { apikey: `key-${agentId}`, phone: BOT_PHONE });
  const inbound = (payload: Record<string, unknown>) =>
    t.app.inject({ method: 'POST', url: `/sandbox/agents/${agentId}/inbound`, headers: t.admin, payload });
  const deliver = (payload: Record<string, unknown>) => deliverInbound(t, agentId, payload);
  const settle = async () => {
    await t.container.inbound.onIdle();
    await t.container.identities.idle();
  };
  const aiBodies = () => ai.requests.map((r) => r.body as AiBody);
  const sent = async (): Promise<SentEntry[]> =>
    (await t.app.inject({ method: 'GET', url: `/sandbox/agents/${agentId}/sent`, headers: t.admin })).json().data;
  const texts = async () => (await sent()).filter((e) => e.kind === 'text');
  const send = (to: string, message: string) =>
    t.app.inject({
      method: 'POST',
      url: `/agents/${agentId}/messages`,
      headers: agentAuth(),
      payload: { to, message },
    });
  const storedPairs = () =>
    db.database.query('SELECT lid, phone, push_name FROM identities WHERE agent_id = $1 ORDER BY lid', [agentId]);

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
    agentId = `ident-${++agentSeq}`;
    ai.requests.length = 0;
    ai.respond(replyWith('noted'));
    await connect();
  });
  afterEach(() => settle());

  it('gives an @lid sender with a number and the same number one session_id, chat and reply address', async () => {
    await deliver({ from: LID, phone: PHONE, text: 'hi by lid', pushName: 'Ann' });
    await settle();
    await deliver({ from: PHONE, text: 'hi by number', pushName: 'Ann' });
    await settle();

    expect(aiBodies().map((b) => [b.input, b.session_id, b.metadata.chat_jid, b.metadata.sender_jid])).toEqual([
      ['hi by lid', PHONE, PHONE_JID, PHONE_JID],
      ['hi by number', PHONE, PHONE_JID, PHONE_JID],
    ]);
    expect(aiBodies().map((b) => b.metadata.sender)).toEqual([
      { phone: PHONE, lid: LID, jid: LID, pushName: 'Ann' },
      // The number's LID is known from the first message.
      { phone: PHONE, lid: LID, jid: PHONE_JID, pushName: 'Ann' },
    ]);
    await expect
      .poll(async () => (await texts()).map((e) => [e.to, e.chat]), POLL)
      .toEqual([
        [PHONE_JID, PHONE_JID],
        [PHONE_JID, PHONE_JID],
      ]);
    expect(await storedPairs()).toEqual([{ lid: LID, phone: PHONE, push_name: 'Ann' }]);

    // The chat history holds both messages under the number's chat.
    const history = await t.app.inject({
      method: 'GET',
      url: `/agents/${agentId}/chats/${encodeURIComponent(PHONE_JID)}/messages`,
      headers: agentAuth(),
    });
    expect(history.statusCode).toBe(200);
    const items = history.json().data.items as Array<{ direction: string; text: string }>;
    expect(items.filter((i) => i.direction === 'in').map((i) => i.text)).toEqual(
      expect.arrayContaining(['hi by lid', 'hi by number']),
    );
  });

  it('falls back to the LID (`<id>@lid`) as session_id for a LID sender whose number is unknown', async () => {
    const lid = '310987654321098@lid';
    await deliver({ from: lid, text: 'who am I', pushName: 'Bea' });
    await settle();

    const [body] = aiBodies();
    expect(body?.session_id).toBe(lid);
    expect(body?.metadata.chat_jid).toBe(lid);
    expect(body?.metadata.sender).toEqual({ phone: null, lid, jid: lid, pushName: 'Bea' });
    await expect.poll(async () => (await texts()).map((e) => e.to), POLL).toEqual([lid]);
    expect(await storedPairs()).toEqual([]);
  });

  it('sends by LID to the number’s chat once the pair is known, and by either form to the same chat', async () => {
    const lid = '410987654321098@lid';
    const phone = '6281234500004';
    // Unknown yet: the LID is sent to as it is.
    expect((await send(lid, 'before')).statusCode).toBe(200);
    await deliver({ from: lid, phone, text: 'hello', pushName: 'Cid' });
    await settle();
    ai.requests.length = 0;

    expect((await send(lid, 'by lid')).statusCode).toBe(200);
    expect((await send(phone, 'by number')).statusCode).toBe(200);
    const byText = async () =>
      Object.fromEntries((await texts()).map((e) => [e.text, { to: e.to, chat: e.chat }] as const));
    await expect.poll(byText, POLL).toMatchObject({
      before: { to: lid, chat: lid },
      'by lid': { to: `${phone}@c.us`, chat: `${phone}@c.us` },
      'by number': { to: `${phone}@c.us`, chat: `${phone}@c.us` },
    });

    // Bad recipients keep their error.
    const bad = await send('12@lid', 'x');
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('INVALID_RECIPIENT');
  });

  it('learns pairs across a restart from the table, keeping the order of a chat’s messages', async () => {
    const lid = '510987654321098@lid';
    const phone = '6281234500005';
    await deliver({ from: lid, phone, text: 'first', pushName: 'Dee' });
    await settle();
    await t.close();
    t = await build();
    await expect
      .poll(
        async () =>
          (await t.app.inject({ method: 'GET', url: `/sessions/${agentId}`, headers: t.admin })).json().data?.liveState
            ?.isReady,
        POLL,
      )
      .toBe(true);
    ai.requests.length = 0;

    // A message by number: its chat needs no look-up, and the LID for the AI's metadata comes from the table.
    await deliver({ from: phone, text: 'zero', pushName: 'Dee' });
    await settle();
    expect(aiBodies()[0]?.metadata.sender).toEqual({ phone, lid, jid: `${phone}@c.us`, pushName: 'Dee' });
    ai.requests.length = 0;

    // A fresh process knows the pair only from the table: the LID message waits for its look-up, and the number's
    // message after it still comes second.
    // Both in one turn, as an engine emits a burst: the look-up cannot have finished before the second arrives.
    const sandbox = t.container.sandbox;
    const message = (senderJid: string, text: string) => ({
      chatJid: senderJid,
      senderJid,
      text,
      type: 'text' as const,
      isGroup: false,
      mentions: [],
      fromMe: false,
      timestamp: Date.now(),
      pushName: 'Dee',
      chatName: null,
    });
    sandbox?.deliver(agentId, message(lid, 'second'));
    // This one names both addresses (as Baileys does with remoteJidAlt), so it needs no look-up of its own.
    sandbox?.deliver(agentId, {
      ...message(`${phone}@c.us`, 'third'),
      senderLid: lid,
      senderPhoneJid: `${phone}@c.us`,
    });
    await settle();
    expect(aiBodies().map((b) => [b.input, b.session_id])).toEqual([
      ['second', phone],
      ['third', phone],
    ]);
    expect(aiBodies()[0]?.metadata.sender).toEqual({ phone, lid, jid: lid, pushName: 'Dee' });
  });

  it('names a group member who writes by LID with their number, while the group stays the session', async () => {
    const lid = '610987654321098@lid';
    const phone = '6281234500006';
    await deliver({ from: lid, phone, text: 'private first', pushName: 'Eve' });
    await settle();
    ai.requests.length = 0;
    await deliver({ from: lid, chat: GROUP, text: `@${BOT_PHONE} help`, mentions: [BOT_PHONE], pushName: 'Eve' });
    await settle();

    const [body] = aiBodies();
    expect(body?.session_id).toBe(GROUP);
    expect(body?.metadata.sender).toEqual({ phone, lid, jid: lid, pushName: 'Eve' });
  });

  it('learns pairs from the engine’s identities event, and the sandbox refuses a phone for a non-LID sender', async () => {
    const lid = '710987654321098@lid';
    const phone = '6281234500007';
    t.container.sandbox?.session(agentId)?.emit('identities', [{ lid, phoneJid: `${phone}@c.us`, pushName: 'Fay' }]);
    await settle();
    expect(await storedPairs()).toEqual([{ lid, phone, push_name: 'Fay' }]);
    await deliver({ from: lid, text: 'hi' });
    await settle();
    expect(aiBodies()[0]?.session_id).toBe(phone);

    const refused = await inbound({ from: PHONE, phone: '6281234500008', text: 'x' });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().error.code).toBe('INVALID_PAYLOAD');
  });

  it('purges pairs not seen for the retention period, as stored messages are', async () => {
    const repository = new IdentityRepository(db.database, 1);
    const at = (iso: string) => new Date(iso);
    await repository.saveMany([
      { agentId, lid: '810987654321098@lid', phone: '6281234500008', pushName: null, at: at('2026-01-01T00:00:00Z') },
      { agentId, lid: '910987654321098@lid', phone: '6281234500009', pushName: null, at: at('2026-01-01T00:00:00Z') },
      { agentId, lid: '990987654321098@lid', phone: '6281234500010', pushName: 'Gus', at: at('2026-03-01T00:00:00Z') },
    ]);
    expect(await repository.purgeBefore(at('2026-02-01T00:00:00Z'))).toBe(2);
    expect(await storedPairs()).toEqual([{ lid: '990987654321098@lid', phone: '6281234500010', push_name: 'Gus' }]);
  });
});
