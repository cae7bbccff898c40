// Every outbound kind through HTTP to the real adapters, whatsapp-web.js and Baileys, each over a fake of its library:
// what each library was asked to send.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeBaileys } from '../src/engines/baileys/__fixtures__/baileys.fake.js';
import { createBaileysEngine } from '../src/engines/baileys/baileys.engine.js';
import type { ContractInbound, ContractSent } from '../src/engines/engine.contract.js';
import type { Engine } from '../src/engines/engine.js';
import { FakeWweb } from '../src/engines/whatsapp-web/__fixtures__/whatsapp-web.fake.js';
import { createWhatsappWebEngine } from '../src/engines/whatsapp-web/whatsapp-web.engine.js';
import { FILES } from '../src/messaging/__fixtures__/files.js';
import { IMAGES } from '../src/messaging/__fixtures__/images.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { until } from './helpers/messaging.js';

const logger = pino({ level: 'silent' });
const TO = '6281234567890';
const TO_JID = `${TO}@c.us`;
const GROUP = '120363025555555555@g.us';

interface FakeLibrary {
  engine: Engine;
  scan(agentId: string): Promise<void>;
  deliver(agentId: string, message: ContractInbound): void;
  sent(agentId: string): ContractSent[];
}

describe.each(['whatsapp-web', 'baileys'] as const)('outbound message types through %s (fake library)', (name) => {
  let db: TestDatabase;
  let t: TestApp;
  let library: FakeLibrary;
  let authDir: string;
  const agentId = `types-${name}`;
  const auth = { authorization: `Bearer key-${agentId}-0123456789` };

  beforeAll(async () => {
    db = await createTestDatabase();
    authDir = await mkdtemp(path.join(tmpdir(), 'wamt-types-'));
    if (name === 'baileys') {
      const fake = new FakeBaileys();
      library = {
        engine: createBaileysEngine({ database: db.database, logger, createSocket: fake.createSocket }),
        scan: async (id) => fake.latest(id).scan('6281100000001'),
        deliver: (id, message) => fake.latest(id).deliver(message),
        sent: (id) => fake.sent(id),
      };
    } else {
      const fake = new FakeWweb();
      library = {
        engine: createWhatsappWebEngine({
          authDir,
          chromePath: process.execPath,
          logger,
          createClient: fake.createClient,
        }),
        scan: (id) => fake.latest(id).scan('6281100000001'),
        deliver: (id, message) => fake.latest(id).deliver(message),
        sent: (id) => fake.sent(id),
      };
    }
    t = await createTestApp({ database: db.database, overrides: { engines: { [name]: library.engine } } });
    const created = await t.app.inject({
      method: 'POST',
      url: '/sessions',
      headers: t.admin,
      payload: { userId: 'u1', agentId, agentName: agentId, apikey: `key-${agentId}-0123456789`, engine: name },
    });
    expect(created.statusCode, created.body).toBe(200);
    const status = async () =>
      (await t.app.inject({ method: 'GET', url: `/sessions/${agentId}`, headers: t.admin })).json().data.liveState;
    await until(async () => (await status()).qr !== null);
    await library.scan(agentId);
    await until(async () => (await status()).isReady === true);
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
    await rm(authDir, { recursive: true, force: true });
  });

  const post = (url: string, payload: Record<string, unknown>) =>
    t.app.inject({ method: 'POST', url: `/agents/${agentId}${url}`, headers: auth, payload });

  it('hands every kind to the library as that kind', async () => {
    // A group message that does not mention the agent: stored, not answered (no typing from the AI pipeline).
    library.deliver(agentId, {
      id: 'INBOUND1',
      from: '6289900000002@c.us',
      group: GROUP,
      text: 'hello everyone',
      timestampSeconds: 1_764_000_000,
    });
    const inboundId = name === 'baileys' ? 'INBOUND1' : `false_${GROUP}_INBOUND1_6289900000002@c.us`;
    await until(async () => {
      const rows = await db.database.query('SELECT 1 FROM inbound_messages WHERE wa_message_id = $1', [inboundId]);
      return rows.length === 1;
    });
    const before = library.sent(agentId).length;

    const document = await post('/media', {
      to: TO,
      type: 'document',
      data: FILES.pdf.toString('base64'),
      filename: 'invoice.pdf',
      caption: 'Your invoice',
    });
    expect(document.statusCode, document.body).toBe(200);
    const steps: Array<[string, Record<string, unknown>]> = [
      ['/media', { to: TO, data: IMAGES.jpeg.toString('base64'), caption: 'photo' }],
      ['/media', { to: TO, type: 'audio', voice: true, data: FILES.opus.toString('base64') }],
      ['/media', { to: TO, type: 'audio', data: FILES.mp3.toString('base64') }],
      ['/media', { to: TO, type: 'video', data: FILES.mp4.toString('base64'), caption: 'clip' }],
      ['/media', { to: TO, type: 'sticker', data: FILES.webp.toString('base64') }],
      [
        '/messages',
        { to: TO, location: { latitude: -6.2, longitude: 106.8, name: 'Kantor', address: 'Jl. Sudirman 1' } },
      ],
      ['/messages', { to: TO, contact: { name: 'Budi', phone: '081234567891' } }],
      [`/messages/${document.json().data.messageId}/reaction`, { emoji: '👍' }],
      [`/messages/${inboundId}/reaction`, { emoji: '🙏' }],
      [`/chats/${GROUP}/read`, {}],
      [`/chats/${TO}/typing`, { on: true }],
    ];
    for (const [url, payload] of steps) {
      const res = await post(url, payload);
      expect(res.statusCode, `${url}: ${res.body}`).toBe(200);
    }
    const sent = library.sent(agentId).slice(before);
    expect(sent.map((entry) => entry.kind)).toEqual([
      'document',
      'image',
      'audio',
      'audio',
      'video',
      'sticker',
      'location',
      'contact',
      'reaction',
      'reaction',
      'read',
      'typing',
    ]);
    expect(sent[0]).toMatchObject({
      to: TO_JID,
      mimeType: 'application/pdf',
      filename: 'invoice.pdf',
      caption: 'Your invoice',
      bytes: FILES.pdf.length,
    });
    expect(sent[1]).toMatchObject({ mimeType: 'image/jpeg', caption: 'photo' });
    expect(sent[2]).toMatchObject({ voice: true, mimeType: 'audio/ogg; codecs=opus', bytes: FILES.opus.length });
    expect(sent[3]).toMatchObject({ voice: false, mimeType: 'audio/mpeg' });
    expect(sent[4]).toMatchObject({ mimeType: 'video/mp4', caption: 'clip', bytes: FILES.mp4.length });
    expect(sent[5]).toMatchObject({ mimeType: 'image/webp', bytes: FILES.webp.length });
    expect(sent[6]).toMatchObject({ latitude: -6.2, longitude: 106.8, name: 'Kantor', address: 'Jl. Sudirman 1' });
    expect(sent[7]).toMatchObject({ displayName: 'Budi', vcard: expect.stringContaining('waid=6281234567891') });
    expect(sent[8]).toMatchObject({ to: TO_JID, emoji: '👍', targetMessageId: document.json().data.waMessageId });
    expect(sent[9]).toMatchObject({ to: GROUP, emoji: '🙏', targetMessageId: inboundId });
    expect(sent[10]).toMatchObject({ to: GROUP });
    expect(sent[11]).toMatchObject({ to: TO_JID, typing: true });
  });
});
