import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/database.js';
import { nextEvent, runEngineContract } from '../engine.contract.js';
import type { MessageAck } from '../engine.js';
import { FakeBaileys } from './__fixtures__/baileys.fake.js';
import { createBaileysEngine } from './baileys.engine.js';

const logger = pino({ level: 'silent' });
// The library's own constants, so that the fake speaks its values and the adapter's table is checked against them.
const { Status } = (await import('baileys')).proto.WebMessageInfo;
const LIBRARY_STATUSES = {
  server: Status.SERVER_ACK,
  delivered: Status.DELIVERY_ACK,
  read: Status.READ,
  played: Status.PLAYED,
  error: Status.ERROR,
} as const;
let test: TestDatabase;
beforeAll(async () => {
  test = await createTestDatabase();
});
afterAll(() => test.drop());

runEngineContract({
  name: 'baileys (fake socket, auth in the database)',
  async createHarness() {
    const fake = new FakeBaileys();
    await test.database.query('DELETE FROM baileys_auth');
    return {
      engine: createBaileysEngine({
        database: test.database,
        logger,
        createSocket: fake.createSocket,
        downloadMedia: fake.downloadMediaMessage,
      }),
      scan: async (agentId, phone) => fake.latest(agentId).scan(phone),
      deliver: async (agentId, message) => fake.latest(agentId).deliver(message),
      drop: async (agentId, loggedOut) => fake.latest(agentId).drop(loggedOut),
      notOnWhatsApp: (agentId, phone) => fake.latest(agentId).notOnWhatsApp.add(phone),
      sent: async (agentId) => fake.sent(agentId),
      ack: async (agentId, waMessageId, status) => fake.latest(agentId).ack(waMessageId, LIBRARY_STATUSES[status]),
      failNextStart: (agentId) => fake.failNextStart(agentId),
      released: (agentId) => fake.released(agentId),
      connections: (agentId) => fake.sockets.get(agentId)?.length ?? 0,
      otherInstance: async () =>
        createBaileysEngine({
          database: test.database,
          logger,
          createSocket: fake.createSocket,
          downloadMedia: fake.downloadMediaMessage,
        }),
      close: async () => {},
    };
  },
});

describe('baileys adapter', () => {
  const linked = async (agentId: string, fake: FakeBaileys) => {
    const sut = createBaileysEngine({
      database: test.database,
      logger,
      createSocket: fake.createSocket,
      downloadMedia: fake.downloadMediaMessage,
    });
    const session = sut.createSession(agentId, { logger });
    await session.start();
    await nextEvent(session, 'qr');
    const ready = nextEvent(session, 'ready');
    fake.latest(agentId).scan('6281200000000');
    return { sut, session, identity: (await ready)[0] };
  };

  it('restarts the socket at once when WhatsApp asks after pairing, without reporting a disconnect', async () => {
    const fake = new FakeBaileys();
    let disconnects = 0;
    const { session, identity } = await linked('b-restart', fake);
    session.on('disconnected', () => {
      disconnects += 1;
    });
    expect(identity).toEqual({ me: '6281200000000@c.us', lid: '99887766554433@lid' });
    expect(fake.sockets.get('b-restart')?.length).toBe(2);
    expect(disconnects).toBe(0);
    await session.stop();
  });

  it('reports an unlink even when its login cannot be deleted (the database is away), and never rejects unhandled', async () => {
    const fake = new FakeBaileys();
    const { session } = await linked('b-unlink-db-down', fake);
    const spy = vi.spyOn(test.database.db, 'delete').mockImplementation(() => {
      throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
    });
    try {
      const disconnected = nextEvent(session, 'disconnected');
      fake.latest('b-unlink-db-down').drop(true);
      expect((await disconnected)[0]).toMatchObject({ loggedOut: true });
    } finally {
      spy.mockRestore();
    }
    await session.stop();
  });

  it('stores the creds so that their Buffers survive the database and a restart', async () => {
    const fake = new FakeBaileys();
    const { session } = await linked('b-store', fake);
    await session.stop();
    const [row] = await test.database.query(
      "SELECT value FROM baileys_auth WHERE agent_id = 'b-store' AND key = 'creds'",
    );
    expect(String(row?.value)).toContain('"type":"Buffer"');
    const again = createBaileysEngine({
      database: test.database,
      logger,
      createSocket: fake.createSocket,
      downloadMedia: fake.downloadMediaMessage,
    }).createSession('b-store', { logger });
    const ready = nextEvent(again, 'ready');
    await again.start();
    await ready;
    const creds = fake.latest('b-store').config.auth.creds;
    expect(Buffer.from(creds.noiseKey.private).length).toBe(32);
    const signatureKey = creds.account?.accountSignatureKey;
    expect(signatureKey).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(signatureKey ?? [])).toEqual(Buffer.alloc(32, 3));
    await again.stop();
  });

  it('sends to @s.whatsapp.net JIDs and mentions, and types with composing and paused', async () => {
    const fake = new FakeBaileys();
    const { session } = await linked('b-jids', fake);
    await session.sendText('6289900000001@c.us', 'hi', { mentions: ['6289900000003@c.us', '123456789012345@lid'] });
    await session.setTyping?.('120363025555555555@g.us', true);
    const calls = fake.latest('b-jids').calls;
    expect(calls[0]).toMatchObject({
      method: 'sendMessage',
      jid: '6289900000001@s.whatsapp.net',
      content: { text: 'hi', mentions: ['6289900000003@s.whatsapp.net', '123456789012345@lid'] },
    });
    expect(calls[1]).toEqual({ method: 'sendPresenceUpdate', type: 'composing', jid: '120363025555555555@g.us' });
    await session.stop();
  });

  it("maps messages.update statuses to receipts, with WhatsApp's time, and skips pending and others' messages", async () => {
    const fake = new FakeBaileys();
    const { session } = await linked('b-acks', fake);
    const { id } = await session.sendText('6289900000001@c.us', 'hi');
    const acks: MessageAck[] = [];
    session.on('ack', (ack) => acks.push(ack));
    const socket = fake.latest('b-acks');
    socket.ack(id, Status.PENDING);
    socket.ack(id, Status.READ, { fromMe: false }); // another device of ours read a message we received
    socket.ack(id, Status.DELIVERY_ACK, { at: 1_764_000_100 });
    socket.ack(id, Status.READ, { at: 1_764_000_200 });
    socket.ack(id, Status.ERROR);
    socket.ev.emit('messages.update', [{ key: { id, fromMe: true }, update: { starred: true } }]);
    expect(acks).toEqual([
      { waMessageId: id, status: 'delivered', at: 1_764_000_100_000 },
      { waMessageId: id, status: 'read', at: 1_764_000_200_000 },
      { waMessageId: id, status: 'error', error: 'WhatsApp refused the message (error 479)' },
    ]);
    await session.stop();
  });

  it('quotes the received message itself when it still has it', async () => {
    const fake = new FakeBaileys();
    const { session } = await linked('b-quote', fake);
    const received = nextEvent(session, 'message');
    fake.latest('b-quote').deliver({ id: 'IN1', from: '6289900000001@c.us', text: 'question', timestampSeconds: 1 });
    await received;
    await session.sendText('6289900000001@c.us', 'answer', { quotedMessageId: 'IN1' });
    const call = fake.latest('b-quote').calls[0];
    expect(call?.method === 'sendMessage' && call.options?.quoted?.message).toEqual({ conversation: 'question' });
    await session.stop();
  });

  it("downloads a file whose link expired by asking the sender's phone to upload it again, and fails when it cannot", async () => {
    const fake = new FakeBaileys();
    const { session } = await linked('b-reupload', fake);
    const voice = Buffer.from('OggS voice note');
    const deliverVoice = async (id: string) => {
      const received = nextEvent(session, 'message');
      fake.latest('b-reupload').deliver({
        id,
        from: '6289900000001@c.us',
        text: '',
        timestampSeconds: 1,
        media: { kind: 'audio', data: voice, mimeType: 'audio/ogg; codecs=opus', durationSeconds: 3 },
      });
      return (await received)[0];
    };
    const read = async (stream: NodeJS.ReadableStream) => {
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
      return Buffer.concat(chunks);
    };
    const first = await deliverVoice('VOICE-OLD');
    fake.mediaServer.clear(); // WhatsApp's servers dropped it
    const renewed = await session.downloadMedia?.(first.id);
    expect(renewed && (await read(renewed.stream)).equals(voice)).toBe(true);

    const second = await deliverVoice('VOICE-GONE');
    fake.mediaServer.clear();
    fake.latest('b-reupload').phoneFiles.clear(); // and the phone deleted it
    await expect(session.downloadMedia?.(second.id)).rejects.toThrow(/re-upload failed/);
    await session.stop();
  });

  it('names group chats with the group subject', async () => {
    const fake = new FakeBaileys();
    const { session } = await linked('b-group', fake);
    const received = nextEvent(session, 'message');
    fake.latest('b-group').deliver({
      id: 'G1',
      from: '6289900000002@c.us',
      group: '120363025555555555@g.us',
      text: 'x',
      timestampSeconds: 1,
    });
    expect((await received)[0].chatName).toBe('Tim Gudang');
    await session.stop();
  });

  it('reports the LID and phone pairs of lid-mapping.update, contacts and history sync as identities', async () => {
    const fake = new FakeBaileys();
    const { session } = await linked('b-identities', fake);
    const { ev } = fake.latest('b-identities');
    const reported: unknown[] = [];
    session.on('identities', (pairs) => reported.push(...pairs));
    ev.emit('lid-mapping.update', { lid: '210987654321098:2@lid', pn: '6289900000001:2@s.whatsapp.net' });
    ev.emit('contacts.upsert', [
      { id: '311122223333444@lid', phoneNumber: '6289900000007@s.whatsapp.net', notify: 'Dewi' },
      { id: '511122223333444@lid' },
    ]);
    ev.emit('messaging-history.set', {
      chats: [],
      contacts: [],
      messages: [],
      lidPnMappings: [{ lid: '611122223333444@lid', pn: '6289900000009@s.whatsapp.net' }],
    });
    expect(reported).toEqual([
      { lid: '210987654321098@lid', phoneJid: '6289900000001@c.us', pushName: null },
      { lid: '311122223333444@lid', phoneJid: '6289900000007@c.us', pushName: 'Dewi' },
      { lid: '611122223333444@lid', phoneJid: '6289900000009@c.us', pushName: null },
    ]);
    await session.stop();
  });

  it('rejects start() when Baileys refuses the socket outright, and stays startable', async () => {
    let attempts = 0;
    const sut = createBaileysEngine({
      database: test.database,
      logger,
      createSocket: () => {
        attempts += 1;
        throw new Error('Mobile API is not supported anymore');
      },
    });
    const session = sut.createSession('b-refused', { logger });
    await expect(session.start()).rejects.toThrow(/Mobile API/);
    await expect(session.start()).rejects.toThrow(/Mobile API/);
    expect(attempts).toBe(2);
  });

  it('emits the pairing code it requested', async () => {
    const fake = new FakeBaileys();
    const session = createBaileysEngine({
      database: test.database,
      logger,
      createSocket: fake.createSocket,
      downloadMedia: fake.downloadMediaMessage,
    }).createSession('b-pair', { logger });
    await session.start();
    await nextEvent(session, 'qr');
    const event = nextEvent(session, 'pairing_code');
    expect(await session.requestPairingCode?.('+62 812 0000 0000')).toBe('WXYZ5678');
    expect((await event)[0]).toBe('WXYZ5678');
    await session.stop();
  });
});
