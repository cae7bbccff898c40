// Inbound files through the whole app: the sandbox delivers a voice note, the AI stub fetches its signed link over
// HTTP and compares the bytes; links expire, refuse tampering, and files go after MEDIA_RETENTION_HOURS.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdir } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/__fixtures__/fake-clock.js';
import type { AiAttachment } from '../src/ai/ai-client.js';
import { MediaLinks } from '../src/media-store/media-links.js';
import { type AiBehaviour, type AiServer, type RecordedAiRequest, startAiServer } from './helpers/ai-server.js';
import { ADMIN_KEY, createTestApp, createTestDataDir, removeDir, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { connectAgent, deliverInbound } from './helpers/messaging.js';

const BOT_PHONE = '6281100000001';
const USER = '6281234567890';
const GROUP = '120363025000000001@g.us';
const HOUR_MS = 60 * 60 * 1000;
const NO_REPLY: AiBehaviour = { kind: 'json', body: {} };

interface Fetched {
  status: number;
  headers: Headers;
  bytes: Buffer;
}

/** A port nothing listens on now, for the app to listen on (APP_BASE_URL must name it before the app is built). */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function fetchBytes(url: string): Promise<Fetched> {
  const response = await fetch(url);
  return { status: response.status, headers: response.headers, bytes: Buffer.from(await response.arrayBuffer()) };
}

const attachmentsOf = (request: RecordedAiRequest | undefined): AiAttachment[] =>
  ((request?.body as { attachments?: AiAttachment[] } | undefined)?.attachments ?? []) as AiAttachment[];

describe('inbound media', () => {
  let db: TestDatabase;
  let ai: AiServer;
  let dataDir: string;
  let t: TestApp;
  let base: string;
  const clock = new FakeClock(Date.UTC(2026, 5, 1));
  /** What the AI stub got when it fetched each attachment url, by the message's id. */
  const fetchedByAi = new Map<string, Fetched>();
  let agentSeq = 0;
  let agentId: string;

  const connect = (app: TestApp, id: string) => connectAgent(app, id, { apikey: `key-${id}`, phone: BOT_PHONE });
  const deliver = async (body: Record<string, unknown>, app = t, id = agentId) => {
    const messageId = await deliverInbound(app, id, body);
    await app.container.inbound.onIdle();
    return messageId;
  };
  const metric = async (pattern: RegExp) => {
    const text = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
    const line = text.split('\n').find((l) => pattern.test(l));
    return line ? Number(line.split(' ').at(-1)) : 0;
  };
  const storedFiles = async () => (await readdir(path.join(dataDir, 'media'))).filter((name) => !name.startsWith('.'));

  beforeAll(async () => {
    db = await createTestDatabase();
    // The AI stub does what an AI backend would: it fetches every attachment url it is given, then answers.
    ai = await startAiServer(async (request) => {
      const body = request.body as { metadata: { message_id: string }; attachments?: AiAttachment[] };
      const url = body.attachments?.[0]?.url;
      if (url) fetchedByAi.set(body.metadata.message_id, await fetchBytes(url));
      return NO_REPLY;
    });
    dataDir = await createTestDataDir();
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    t = await createTestApp({
      database: db.database,
      dataDir,
      env: {
        AI_BACKEND_URL: ai.url,
        APP_BASE_URL: base,
        MEDIA_URL_TTL_SECONDS: '600',
        MEDIA_RETENTION_HOURS: '24',
        MEDIA_STORE_MAX_MB: '2',
      },
      overrides: { clock },
    });
    await t.app.listen({ port, host: '127.0.0.1' });
  });
  afterAll(async () => {
    await t?.close();
    await ai?.close();
    await removeDir(dataDir);
    await db?.drop();
  });
  beforeEach(async () => {
    agentId = `media-${++agentSeq}`;
    ai.requests.length = 0;
    await connect(t, agentId);
  });
  afterEach(() => t.container.inbound.onIdle());

  it('gives the AI a voice note as a signed link that serves the exact bytes, then expires', async () => {
    const voice = Buffer.concat([Buffer.from('OggS'), randomBytes(50_000)]);
    const messageId = await deliver({
      from: USER,
      type: 'audio',
      media: { data: voice.toString('base64'), mimeType: 'audio/ogg; codecs=opus', durationSeconds: 7 },
    });

    expect(ai.requests).toHaveLength(1);
    const request = ai.requests[0];
    expect(request?.body).toMatchObject({ input: '', metadata: { message_id: messageId } });
    const [attachment] = attachmentsOf(request);
    expect(attachment).toEqual({
      type: 'audio',
      mimeType: 'audio/ogg; codecs=opus',
      size: voice.length,
      filename: null,
      caption: null,
      durationSeconds: 7,
      url: expect.stringMatching(new RegExp(`^${base}/media/[0-9a-z]+\\?expires=\\d+&sig=[\\w-]+$`)),
      expiresAt: new Date(clock.now() + 600_000).toISOString(),
      available: true,
      unavailableReason: null,
      sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
    });

    // The AI stub fetched it over HTTP while the request was open: byte for byte what the contact sent.
    const fetched = fetchedByAi.get(messageId);
    expect(fetched?.status).toBe(200);
    expect(fetched?.bytes.equals(voice)).toBe(true);
    expect(fetched?.headers.get('content-type')).toBe('audio/ogg; codecs=opus');
    expect(fetched?.headers.get('content-length')).toBe(String(voice.length));
    expect(fetched?.headers.get('content-disposition')).toMatch(/^attachment; filename="audio-[0-9a-z]+\.ogg"/);
    expect(fetched?.headers.get('x-content-type-options')).toBe('nosniff');

    // The signature is a credential while it lasts: no log line carries it.
    const sig = new URL(attachment?.url ?? '').searchParams.get('sig') ?? '';
    expect(t.logs.filter((line) => JSON.stringify(line).includes(sig))).toEqual([]);

    // Still good just before its expiry; refused (403) once it has passed.
    const url = attachment?.url ?? '';
    await clock.advance(599_000);
    expect((await fetchBytes(url)).status).toBe(200);
    await clock.advance(1_000);
    const expired = await fetchBytes(url);
    expect(expired.status).toBe(403);
    expect(JSON.parse(expired.bytes.toString()).error.code).toBe('MEDIA_LINK_INVALID');
  });

  it('refuses a link whose signature, expiry or id was changed (403), and answers 404 for a purged file', async () => {
    const image = randomBytes(2_000);
    const messageId = await deliver({
      from: USER,
      type: 'image',
      text: 'look at this',
      media: { data: image.toString('base64'), mimeType: 'image/jpeg', filename: 'photo.jpg' },
    });
    expect(fetchedByAi.get(messageId)?.bytes.equals(image)).toBe(true);
    const [attachment] = attachmentsOf(ai.requests[0]);
    expect(attachment).toMatchObject({
      type: 'image',
      caption: 'look at this',
      filename: 'photo.jpg',
      available: true,
    });
    const url = new URL(attachment?.url ?? '');
    const id = url.pathname.split('/').at(-1) ?? '';
    const expires = Number(url.searchParams.get('expires'));
    const sig = url.searchParams.get('sig') ?? '';
    const flipped = `${sig.slice(0, -1)}${sig.endsWith('A') ? 'B' : 'A'}`;

    expect((await fetchBytes(`${base}/media/${id}?expires=${expires}&sig=${flipped}`)).status).toBe(403);
    expect((await fetchBytes(`${base}/media/${id}?expires=${expires + 3600}&sig=${sig}`)).status).toBe(403);
    const otherId = `${id.slice(0, -1)}${id.endsWith('a') ? 'b' : 'a'}`;
    expect((await fetchBytes(`${base}/media/${otherId}?expires=${expires}&sig=${sig}`)).status).toBe(403);
    expect((await fetchBytes(`${base}/media/${id}?expires=${expires}`)).status).toBe(400);
    const good = await fetchBytes(url.toString());
    expect(good.status).toBe(200);
    expect(good.headers.get('content-disposition')).toBe(
      `attachment; filename="photo.jpg"; filename*=UTF-8''photo.jpg`,
    );

    // The retention job's purge (every 10 minutes, cutoff MEDIA_RETENTION_HOURS ago; run here directly, since a day
    // of the fake clock fires every heartbeat of that day): a cutoff before the file keeps it, one after deletes the
    // row and the file, and even a freshly signed link then finds nothing.
    const { store } = t.container.media;
    const usedBefore = store.usedBytes;
    await store.purgeBefore(new Date(clock.now() - 24 * HOUR_MS));
    expect(await storedFiles()).toContain(id);
    await store.purgeBefore(new Date(clock.now() + 1));
    expect(await storedFiles()).not.toContain(id);
    expect(store.usedBytes).toBeLessThanOrEqual(usedBefore - image.length);
    const signer = new MediaLinks(ADMIN_KEY, base);
    const purged = await fetchBytes(signer.url(id, clock.now() + 60_000) ?? '');
    expect(purged.status).toBe(404);
    expect(JSON.parse(purged.bytes.toString()).error.code).toBe('MEDIA_NOT_FOUND');
  });

  it('keeps the group filter: a file in a group goes to the AI only when the bot is mentioned', async () => {
    const image = randomBytes(1_000).toString('base64');
    const ignoredBefore = await metric(/^whatsapp_messages_received_total\{outcome="ignored"\}/);
    const storedBefore = (await storedFiles()).length;
    await deliver({
      from: USER,
      chat: GROUP,
      type: 'image',
      text: 'for all',
      media: { data: image, mimeType: 'image/png' },
    });
    expect(ai.requests).toHaveLength(0);
    expect(await metric(/^whatsapp_messages_received_total\{outcome="ignored"\}/)).toBe(ignoredBefore + 1);
    // Nothing was downloaded for a message the AI does not get.
    expect((await storedFiles()).length).toBe(storedBefore);

    await deliver({
      from: USER,
      chat: GROUP,
      type: 'image',
      text: `@${BOT_PHONE} what is this?`,
      mentions: [BOT_PHONE],
      media: { data: image, mimeType: 'image/png' },
    });
    expect(ai.requests).toHaveLength(1);
    expect(attachmentsOf(ai.requests[0])).toEqual([
      expect.objectContaining({ type: 'image', mimeType: 'image/png', available: true }),
    ]);
  });

  it('still forwards the text when the download fails, with the attachment marked unavailable', async () => {
    // No bytes: the sandbox's download fails, as one of a file WhatsApp no longer has.
    const failedBefore = await metric(/^whatsapp_media_downloads_total\{outcome="download_failed"\}/);
    await deliver({
      from: USER,
      type: 'document',
      text: 'the invoice',
      media: { mimeType: 'application/pdf', filename: 'invoice.pdf', size: 12_345 },
    });
    expect(ai.requests).toHaveLength(1);
    expect(ai.requests[0]?.body).toMatchObject({ input: 'the invoice' });
    expect(attachmentsOf(ai.requests[0])).toEqual([
      {
        type: 'document',
        mimeType: 'application/pdf',
        size: 12_345,
        filename: 'invoice.pdf',
        caption: 'the invoice',
        durationSeconds: null,
        url: null,
        expiresAt: null,
        available: false,
        unavailableReason: 'download_failed',
        sha256: null,
      },
    ]);
    expect(await metric(/^whatsapp_media_downloads_total\{outcome="download_failed"\}/)).toBe(failedBefore + 1);
  });

  it('refuses a download that would fill the store past MEDIA_STORE_MAX_MB, and keeps nothing of it', async () => {
    const storedBefore = await storedFiles();
    const big = randomBytes(2 * 1024 * 1024 + 1);
    await deliver({
      from: USER,
      type: 'document',
      media: { data: big.toString('base64'), mimeType: 'application/zip' },
    });
    expect(attachmentsOf(ai.requests[0])).toEqual([
      expect.objectContaining({ type: 'document', available: false, unavailableReason: 'store_full', url: null }),
    ]);
    expect(await storedFiles()).toEqual(storedBefore);
    expect(await readdir(path.join(dataDir, 'media'))).toEqual(storedBefore);
    expect(await metric(/^whatsapp_media_downloads_total\{outcome="store_full"\}/)).toBeGreaterThanOrEqual(1);
    // The store had room for a small file all along: the refused one's bytes were given back.
    await deliver({
      from: USER,
      type: 'image',
      media: { data: randomBytes(100).toString('base64'), mimeType: 'image/webp' },
    });
    expect(attachmentsOf(ai.requests[1])).toEqual([expect.objectContaining({ available: true })]);
  });

  it('forwards a location as an attachment with its coordinates, and ignores types outside AI_FORWARD_TYPES', async () => {
    await deliver({ from: USER, type: 'location', location: { latitude: -6.2, longitude: 106.816666, name: 'Monas' } });
    expect(attachmentsOf(ai.requests[0])).toEqual([
      {
        type: 'location',
        mimeType: null,
        size: null,
        filename: null,
        caption: null,
        durationSeconds: null,
        url: null,
        expiresAt: null,
        available: true,
        unavailableReason: null,
        sha256: null,
        latitude: -6.2,
        longitude: 106.816666,
        name: 'Monas',
        address: null,
      },
    ]);
    await deliver({
      from: USER,
      type: 'video',
      media: { data: randomBytes(100).toString('base64'), mimeType: 'video/mp4' },
    });
    expect(ai.requests).toHaveLength(1);
  });

  it('takes a data: URI in the sandbox, and refuses bytes that are not base64 or a location out of range (400)', async () => {
    const png = randomBytes(500);
    const messageId = await deliver({
      from: USER,
      type: 'image',
      media: { data: `data:image/png;base64,${png.toString('base64')}`, mimeType: 'image/png' },
    });
    expect(fetchedByAi.get(messageId)?.bytes.equals(png)).toBe(true);
    for (const payload of [
      { from: USER, type: 'image', media: { data: 'not base64!', mimeType: 'image/png' } },
      { from: USER, type: 'location', location: { latitude: 91, longitude: 0 } },
    ]) {
      const response = await t.app.inject({
        method: 'POST',
        url: `/sandbox/agents/${agentId}/inbound`,
        headers: t.admin,
        payload,
      });
      expect(response.statusCode).toBe(400);
      expect(response.json().error.code).toBe('INVALID_PAYLOAD');
    }
  });

  it('downloads a redelivered voice note once: the duplicate is neither stored again nor sent to the AI', async () => {
    const voice = randomBytes(1_000).toString('base64');
    const before = await storedFiles();
    const body = { from: USER, id: 'VOICE-REDELIVERED', type: 'audio', media: { data: voice, mimeType: 'audio/ogg' } };
    await deliver(body);
    await deliver(body);
    expect(ai.requests).toHaveLength(1);
    expect((await storedFiles()).length).toBe(before.length + 1);
  });

  it('sends a plain text without attachments', async () => {
    await deliver({ from: USER, text: 'hello' });
    expect(ai.requests[0]?.body).not.toHaveProperty('attachments');
  });

  describe('without APP_BASE_URL, and with AI_FORWARD_TYPES=text', () => {
    it('downloads the file but gives the AI no url, and warns at boot; text only forwards no files', async () => {
      const other = await createTestApp({ database: db.database, env: { AI_BACKEND_URL: ai.url } });
      const textOnly = await createTestApp({
        database: db.database,
        env: { AI_BACKEND_URL: ai.url, APP_BASE_URL: base, AI_FORWARD_TYPES: 'text' },
      });
      try {
        expect(other.logs.some((line) => line.event === 'media.no_base_url')).toBe(true);
        expect(textOnly.logs.some((line) => line.event === 'media.no_base_url')).toBe(false);
        await connect(other, 'media-nourl');
        const voice = randomBytes(300);
        await deliver(
          { from: USER, type: 'audio', media: { data: voice.toString('base64'), mimeType: 'audio/ogg' } },
          other,
          'media-nourl',
        );
        expect(attachmentsOf(ai.requests[0])).toEqual([
          expect.objectContaining({ type: 'audio', size: 300, available: true, url: null, expiresAt: null }),
        ]);

        await connect(textOnly, 'media-textonly');
        await deliver(
          { from: USER, type: 'image', media: { data: voice.toString('base64'), mimeType: 'image/png' } },
          textOnly,
          'media-textonly',
        );
        expect(ai.requests).toHaveLength(1);
      } finally {
        await other.close();
        await textOnly.close();
      }
    });
  });
});
