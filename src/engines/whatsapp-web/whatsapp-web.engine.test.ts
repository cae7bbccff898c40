import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/database.js';
import type { Database } from '../../db/client.js';
import { type EngineHarness, nextEvent, runEngineContract } from '../engine.contract.js';
import type { MessageAck as Receipt } from '../engine.js';
import { FakeWweb } from './__fixtures__/whatsapp-web.fake.js';
import { createWhatsappWebEngine } from './whatsapp-web.engine.js';

const logger = pino({ level: 'silent' });
// The library's own constants, so that the fake speaks its values and the adapter's table is checked against them.
const { MessageAck } = (await import('whatsapp-web.js')).default;
const LIBRARY_ACKS = {
  server: MessageAck.ACK_SERVER,
  delivered: MessageAck.ACK_DEVICE,
  read: MessageAck.ACK_READ,
  played: MessageAck.ACK_PLAYED,
  error: MessageAck.ACK_ERROR,
} as const;
// Any executable stands in for Chromium: the fake client never launches it.
const chromePath = process.execPath;

let test: TestDatabase;
beforeAll(async () => {
  test = await createTestDatabase();
});
afterAll(() => test.drop());

/** One fake WhatsApp behind the engine; with a database, other instances (processes, each with its folder) share it. */
async function fakeHarness(database?: Database): Promise<EngineHarness> {
  const fake = new FakeWweb();
  const authDirs: string[] = [];
  const instance = async () => {
    const authDir = await mkdtemp(path.join(tmpdir(), 'wamt-wweb-'));
    authDirs.push(authDir);
    return createWhatsappWebEngine({ authDir, chromePath, logger, createClient: fake.createClient, database });
  };
  return {
    engine: await instance(),
    scan: (agentId, phone) => fake.latest(agentId).scan(phone),
    deliver: async (agentId, message) => fake.latest(agentId).deliver(message),
    drop: (agentId, loggedOut) => fake.latest(agentId).drop(loggedOut),
    notOnWhatsApp: (agentId, phone) => fake.latest(agentId).notOnWhatsApp.add(phone),
    sent: async (agentId) => fake.sent(agentId),
    ack: async (agentId, waMessageId, status) => fake.latest(agentId).ack(waMessageId, LIBRARY_ACKS[status]),
    failNextStart: (agentId) => fake.failNextStart(agentId),
    released: (agentId) => fake.released(agentId),
    connections: (agentId) => fake.clients.get(agentId)?.length ?? 0,
    ...(database ? { otherInstance: instance } : {}),
    close: async () => {
      for (const dir of authDirs) await rm(dir, { recursive: true, force: true });
    },
  };
}

runEngineContract({ name: 'whatsapp-web (fake Client, logins in folders)', createHarness: () => fakeHarness() });

runEngineContract({
  name: 'whatsapp-web (fake Client, logins in the database)',
  async createHarness() {
    await test.database.query('DELETE FROM wwebjs_logins');
    return fakeHarness(test.database);
  },
});

describe('whatsapp-web adapter', () => {
  let authDir: string;
  let fake: FakeWweb;
  beforeEach(async () => {
    authDir = await mkdtemp(path.join(tmpdir(), 'wamt-wweb-'));
    fake = new FakeWweb();
  });
  afterEach(() => rm(authDir, { recursive: true, force: true }));

  it('rejects start() naming CHROME_PATH when no browser is found, and builds no client', async () => {
    const sut = createWhatsappWebEngine({
      authDir,
      logger,
      createClient: fake.createClient,
      chromeCandidates: [path.join(authDir, 'no-chromium-here')],
    });
    const session = sut.createSession('agent-1', { logger });
    await expect(session.start()).rejects.toThrow(/CHROME_PATH/);
    // A failed start leaves the session startable: the next attempt tries again rather than returning quietly.
    await expect(session.start()).rejects.toThrow(/CHROME_PATH/);
    expect(fake.clients.size).toBe(0);
  });

  it('rejects start() when the configured CHROME_PATH is not executable', async () => {
    const sut = createWhatsappWebEngine({ authDir, chromePath: path.join(authDir, 'nope'), logger });
    await expect(sut.createSession('agent-1', { logger }).start()).rejects.toThrow(/CHROME_PATH=.*nope/);
  });

  it('gives the client LocalAuth settings for the agent and container-safe Chromium flags', async () => {
    const sut = createWhatsappWebEngine({ authDir, chromePath, logger, createClient: fake.createClient });
    const session = sut.createSession('agent-1', { logger });
    await session.start();
    const { settings } = fake.latest('agent-1');
    expect(settings).toMatchObject({
      dataPath: path.resolve(authDir),
      clientId: 'agent-1',
      executablePath: chromePath,
    });
    expect(settings.args).toEqual(
      expect.arrayContaining([
        '--no-sandbox',
        '--disable-dev-shm-usage',
        '--disable-gpu',
        '--disable-background-networking',
      ]),
    );
    await session.stop();
  });

  it('reports the LID of the account when WhatsApp Web knows it', async () => {
    const sut = createWhatsappWebEngine({ authDir, chromePath, logger, createClient: fake.createClient });
    const session = sut.createSession('agent-1', { logger });
    const qr = nextEvent(session, 'qr');
    await session.start();
    await qr;
    const ready = nextEvent(session, 'ready');
    await fake.latest('agent-1').scan('6281200000000');
    expect((await ready)[0]).toEqual({ me: '6281200000000@c.us', lid: '99887766554433@lid' });
    await session.stop();
  });

  it('maps message_ack to receipts, and skips pending acks and acks of received messages', async () => {
    const sut = createWhatsappWebEngine({ authDir, chromePath, logger, createClient: fake.createClient });
    const session = sut.createSession('agent-1', { logger });
    const qr = nextEvent(session, 'qr');
    await session.start();
    await qr;
    const ready = nextEvent(session, 'ready');
    await fake.latest('agent-1').scan('6281200000000');
    await ready;
    const { id } = await session.sendText('6289900000001@c.us', 'hi');
    const acks: Receipt[] = [];
    session.on('ack', (ack) => acks.push(ack));
    const client = fake.latest('agent-1');
    client.ack(id, MessageAck.ACK_PENDING);
    client.ack('false_6289900000001@c.us_3EB0IN', MessageAck.ACK_READ, false);
    client.ack(id, MessageAck.ACK_DEVICE);
    client.ack(id, MessageAck.ACK_PLAYED);
    client.ack(id, MessageAck.ACK_ERROR);
    expect(acks).toEqual([
      { waMessageId: id, status: 'delivered' },
      { waMessageId: id, status: 'played' },
      { waMessageId: id, status: 'error', error: 'WhatsApp Web reported ACK_ERROR for the message' },
    ]);
    await session.stop();
  });

  it('passes the pairing code through as a pairing_code event', async () => {
    const sut = createWhatsappWebEngine({ authDir, chromePath, logger, createClient: fake.createClient });
    const session = sut.createSession('agent-1', { logger });
    await session.start();
    await nextEvent(session, 'qr');
    const event = nextEvent(session, 'pairing_code');
    const requestPairingCode = session.requestPairingCode;
    if (!requestPairingCode) throw new Error('pairing is a capability of this engine');
    expect(await requestPairingCode.call(session, '+62 812-0000-0000')).toBe('ABCD1234');
    expect((await event)[0]).toBe('ABCD1234');
    await session.stop();
  });

  it('a browser that goes away is reported once, after the client is destroyed', async () => {
    const sut = createWhatsappWebEngine({ authDir, chromePath, logger, createClient: fake.createClient });
    const session = sut.createSession('agent-1', { logger });
    await session.start();
    await nextEvent(session, 'qr');
    const client = fake.latest('agent-1');
    const reports: { reason: string; destroyedFirst: boolean }[] = [];
    session.on('disconnected', ({ reason }) => reports.push({ reason, destroyedFirst: client.destroyed }));
    const disconnected = nextEvent(session, 'disconnected');
    client.pupPage?.emit('close');
    client.pupBrowser?.close();
    await disconnected;
    expect(reports).toEqual([{ reason: 'page closed', destroyedFirst: true }]);
  });

  it('an auth failure is reported once, after the browser is gone, and not followed by a disconnect', async () => {
    const sut = createWhatsappWebEngine({ authDir, chromePath, logger, createClient: fake.createClient });
    const session = sut.createSession('agent-1', { logger });
    await session.start();
    await nextEvent(session, 'qr');
    const client = fake.latest('agent-1');
    const events: string[] = [];
    session.on('disconnected', () => events.push('disconnected'));
    session.on('auth_failure', (message) => events.push(`auth_failure:${message}:${client.destroyed}`));
    const failed = nextEvent(session, 'auth_failure');
    client.emit('auth_failure', 'session restore failed');
    client.pupBrowser?.close();
    await failed;
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(events).toEqual(['auth_failure:session restore failed:true']);
  });

  it('stop() before any login removes the browser profile LocalAuth created', async () => {
    const sut = createWhatsappWebEngine({ authDir, chromePath, logger, createClient: fake.createClient });
    const session = sut.createSession('agent-1', { logger });
    await session.start();
    await nextEvent(session, 'qr');
    await stat(path.join(authDir, 'session-agent-1'));
    await session.stop();
    await expect(stat(path.join(authDir, 'session-agent-1'))).rejects.toThrow(/ENOENT/);
  });
});
