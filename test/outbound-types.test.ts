// Every outbound kind through HTTP on the sandbox: files by base64, URL and multipart upload; locations, contacts,
// reactions, read marks and typing; what the sandbox's sent log shows of each.
import { createHash, randomUUID } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import v8 from 'node:v8';
import vm from 'node:vm';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FILES } from '../src/messaging/__fixtures__/files.js';
import { IMAGES } from '../src/messaging/__fixtures__/images.js';
import { OutboxRepository } from '../src/outbox/outbox.repository.js';
import { createTestApp, type TestApp, useTestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase, usingPostgres } from './helpers/database.js';
import { type ConnectedAgent, connectAgent, sendText, sent, until } from './helpers/messaging.js';

const MB = 1024 * 1024;
const TO = '6281234567890';
const TO_JID = `${TO}@c.us`;

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** A multipart/form-data body: its fields, then one file part whose bytes come from `file`. */
function multipart(
  fields: Record<string, string | string[]>,
  file: { name: string; type: string; chunks: Iterable<Buffer> | AsyncIterable<Buffer> },
) {
  const boundary = `----wamt${Math.random().toString(16).slice(2)}`;
  async function* parts() {
    for (const [name, value] of Object.entries(fields)) {
      for (const one of Array.isArray(value) ? value : [value]) {
        yield Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${one}\r\n`);
      }
    }
    yield Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${file.name}"\r\n` +
        `Content-Type: ${file.type}\r\n\r\n`,
    );
    yield* file.chunks;
    yield Buffer.from(`\r\n--${boundary}--\r\n`);
  }
  return { contentType: `multipart/form-data; boundary=${boundary}`, body: parts };
}

async function collect(body: () => AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body()) chunks.push(chunk);
  return Buffer.concat(chunks);
}

describe('outbound message types over HTTP (sandbox)', () => {
  let db: TestDatabase;
  let t: TestApp;
  let agent: ConnectedAgent;
  let server: Server;
  let base: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    server = createServer((req, res) => {
      const body = req.url === '/clip.mp4' ? FILES.mp4 : req.url === '/big.mp4' ? Buffer.alloc(3 * MB) : null;
      if (!body) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': body.length });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    t = await createTestApp({
      database: db.database,
      env: {
        MEDIA_ALLOW_PRIVATE_NETWORKS: 'true',
        MEDIA_MAX_AUDIO_MB: '1',
        MEDIA_MAX_VIDEO_MB: '2',
        MEDIA_MAX_DOCUMENT_MB: '2',
      },
    });
    agent = await connectAgent(t, 'types-bot');
  });
  afterAll(async () => {
    await t?.close();
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    await db?.drop();
  });

  const post = (url: string, payload: Record<string, unknown>) =>
    t.app.inject({ method: 'POST', url: `/agents/${agent.agentId}${url}`, headers: agent.auth, payload });
  const media = (payload: Record<string, unknown>) => post('/media', { to: TO, ...payload });
  const upload = async (fields: Record<string, string | string[]>, file: Parameters<typeof multipart>[1]) => {
    const form = multipart({ to: TO, ...fields }, file);
    return t.app.inject({
      method: 'POST',
      url: `/agents/${agent.agentId}/media`,
      headers: { ...agent.auth, 'content-type': form.contentType },
      payload: await collect(form.body),
    });
  };
  /** The sent log over HTTP, as a client of the sandbox reads it. */
  const sentLog = async () => {
    const res = await t.app.inject({ method: 'GET', url: `/sandbox/agents/${agent.agentId}/sent`, headers: t.admin });
    expect(res.statusCode).toBe(200);
    return res.json().data as Array<Record<string, unknown>>;
  };
  const last = async () => (await sentLog()).at(-1);

  it('sends a document from base64 with its filename and caption; the type is read from the bytes', async () => {
    const res = await media({
      type: 'document',
      data: FILES.pdf.toString('base64'),
      filename: 'invoice.pdf',
      caption: 'Your invoice',
      mimeType: 'text/plain',
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(await last()).toMatchObject({
      to: TO_JID,
      kind: 'document',
      mimeType: 'application/pdf',
      filename: 'invoice.pdf',
      caption: 'Your invoice',
      bytes: FILES.pdf.length,
      sha256: sha256(FILES.pdf),
    });
    const state = await t.app.inject({
      method: 'GET',
      url: `/agents/${agent.agentId}/messages/${res.json().data.messageId}`,
      headers: agent.auth,
    });
    expect(state.json().data).toMatchObject({ kind: 'document', status: 'sent' });
  });

  it('sends Ogg/Opus as a voice note, other audio as audio, and refuses a voice note that is not Ogg/Opus', async () => {
    expect((await media({ type: 'audio', voice: true, data: FILES.opus.toString('base64') })).statusCode).toBe(200);
    expect(await last()).toMatchObject({ kind: 'audio', voice: true, mimeType: 'audio/ogg; codecs=opus' });
    expect((await media({ type: 'audio', data: FILES.mp3.toString('base64') })).statusCode).toBe(200);
    expect(await last()).toMatchObject({ kind: 'audio', voice: false, mimeType: 'audio/mpeg' });
    const vorbis = await media({ type: 'audio', voice: true, data: FILES.vorbis.toString('base64') });
    expect(vorbis.statusCode).toBe(415);
    expect(vorbis.json().error).toMatchObject({
      code: 'UNSUPPORTED_MEDIA_TYPE',
      message: expect.stringContaining('Opus'),
    });
  });

  it('sends a video from a URL, and refuses one over MEDIA_MAX_VIDEO_MB with 413', async () => {
    const res = await media({ type: 'video', url: `${base}/clip.mp4`, caption: 'clip' });
    expect(res.statusCode, res.body).toBe(200);
    expect(await last()).toMatchObject({
      kind: 'video',
      mimeType: 'video/mp4',
      caption: 'clip',
      sha256: sha256(FILES.mp4),
    });
    const big = await media({ type: 'video', url: `${base}/big.mp4` });
    expect(big.statusCode).toBe(413);
    expect(big.json().error.code).toBe('MEDIA_TOO_LARGE');
    // The download waited in TEMP_DIR while its row committed, and is gone.
    const left = await readdir(t.container.config.tempDir).catch(() => []);
    expect(left.filter((name) => name.startsWith('wa-download-'))).toEqual([]);
  });

  it('refuses an empty file (400) rather than failing it at send time', async () => {
    const before = (await sentLog()).length;
    const res = await upload({ type: 'document' }, { name: 'empty.pdf', type: 'application/pdf', chunks: [] });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json().error).toMatchObject({ code: 'INVALID_PAYLOAD', message: expect.stringContaining('empty') });
    expect(await sentLog()).toHaveLength(before);
  });

  it('sends a sticker uploaded as multipart/form-data; a PNG is no sticker (415), nor a caption on one (400)', async () => {
    const res = await upload({ type: 'sticker' }, { name: 's.webp', type: 'image/webp', chunks: [FILES.webp] });
    expect(res.statusCode, res.body).toBe(200);
    expect(await last()).toMatchObject({ kind: 'sticker', mimeType: 'image/webp', bytes: FILES.webp.length });
    const png = await upload({ type: 'sticker' }, { name: 's.webp', type: 'image/webp', chunks: [IMAGES.png] });
    expect(png.statusCode).toBe(415);
    const captioned = await media({ type: 'sticker', caption: 'hi', data: FILES.webp.toString('base64') });
    expect(captioned.statusCode).toBe(400);
    expect(captioned.json().error.message).toContain('caption');
  });

  it("uploads a document whose bytes tell no type: the declared type and the upload's file name are kept", async () => {
    const res = await upload(
      { type: 'document', mimeType: 'text/csv', mentions: ['6281111111111', '6282222222222'] },
      { name: '../../contacts.csv', type: 'text/csv', chunks: [FILES.csv] },
    );
    expect(res.statusCode, res.body).toBe(200);
    expect(await last()).toMatchObject({
      kind: 'document',
      mimeType: 'text/csv',
      filename: 'contacts.csv',
      mentions: ['6281111111111@c.us', '6282222222222@c.us'],
    });
  });

  it('refuses an upload past its kind limit with 413 and removes the partial file', async () => {
    const res = await upload(
      { type: 'document' },
      { name: 'big.bin', type: 'application/octet-stream', chunks: [Buffer.alloc(3 * MB)] },
    );
    expect(res.statusCode).toBe(413);
    expect(res.json().error.code).toBe('MEDIA_TOO_LARGE');
    // Past the largest limit of any kind (images, 10 MiB here) the upload is cut off while it streams.
    const endless = await upload(
      { type: 'document' },
      { name: 'huge.bin', type: 'application/octet-stream', chunks: [Buffer.alloc(11 * MB)] },
    );
    expect(endless.statusCode).toBe(413);
    expect(endless.json().error.code).toBe('MEDIA_TOO_LARGE');
    const audio = await media({ type: 'audio', data: Buffer.alloc(MB + 1).toString('base64') });
    expect(audio.statusCode).toBe(413);
    await until(async () => {
      const left = await readdir(t.container.config.tempDir).catch(() => []);
      return left.every((name) => !name.startsWith('wa-upload-'));
    });
  });

  it('keeps the image route as it was: an image by default, with its preview', async () => {
    const res = await media({ data: IMAGES.png.toString('base64'), caption: 'look' });
    expect(res.statusCode).toBe(200);
    expect(res.json().data.previewPath).toEqual(expect.any(String));
    expect(await last()).toMatchObject({ kind: 'image', mimeType: 'image/png', caption: 'look' });
  });

  it('sends a location and a contact card (given as a vCard, or built from name and phone)', async () => {
    const place = await post('/messages', {
      to: TO,
      location: { latitude: -6.1754, longitude: 106.8272, name: 'Monas', address: 'Gambir, Jakarta Pusat' },
    });
    expect(place.statusCode, place.body).toBe(200);
    expect(await last()).toMatchObject({
      kind: 'location',
      latitude: -6.1754,
      longitude: 106.8272,
      name: 'Monas',
      address: 'Gambir, Jakarta Pusat',
    });
    const vcard = 'BEGIN:VCARD\nVERSION:3.0\nFN:Siti\nTEL;type=CELL;waid=6285555555555:+6285555555555\nEND:VCARD';
    expect((await post('/messages', { to: TO, contact: { vcard } })).statusCode).toBe(200);
    expect(await last()).toMatchObject({ kind: 'contact', vcard, displayName: 'Siti' });
    expect((await post('/messages', { to: TO, contact: { name: 'Budi', phone: '0812-3456-7891' } })).statusCode).toBe(
      200,
    );
    expect(await last()).toMatchObject({
      kind: 'contact',
      displayName: 'Budi',
      vcard: 'BEGIN:VCARD\nVERSION:3.0\nFN:Budi\nTEL;type=CELL;waid=6281234567891:+6281234567891\nEND:VCARD',
    });
  });

  it('answers 400 for bad coordinates, a bad vCard, or not exactly one of message, location and contact', async () => {
    const before = (await sentLog()).length;
    for (const payload of [
      { to: TO, location: { latitude: 91, longitude: 0 } },
      { to: TO, location: { latitude: 0, longitude: 'east' } },
      { to: TO, contact: { vcard: 'FN:Nobody' } },
      { to: TO, contact: { vcard: 'BEGIN:VCARD\nVERSION:3.0\nEND:VCARD' } },
      { to: TO, contact: { name: 'Only a name' } },
      { to: TO },
      { to: TO, message: 'hi', location: { latitude: 0, longitude: 0 } },
    ]) {
      const res = await post('/messages', payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().error.code).toBe('INVALID_PAYLOAD');
    }
    expect((await sentLog()).length).toBe(before);
  });

  it("reacts to a sent message by our id and by WhatsApp's id, and to a received one by WhatsApp's id", async () => {
    const sent = (await sendText(t, agent, { to: TO, message: 'hello' })).json().data;
    const byOurs = await post(`/messages/${sent.messageId}/reaction`, { emoji: '👍' });
    expect(byOurs.statusCode, byOurs.body).toBe(200);
    expect(await last()).toMatchObject({
      kind: 'reaction',
      to: TO_JID,
      emoji: '👍',
      targetMessageId: sent.waMessageId,
    });
    expect((await post(`/messages/${sent.waMessageId}/reaction`, { emoji: '' })).statusCode).toBe(200);
    expect(await last()).toMatchObject({ kind: 'reaction', emoji: '', targetMessageId: sent.waMessageId });

    const inbound = await t.app.inject({
      method: 'POST',
      url: `/sandbox/agents/${agent.agentId}/inbound`,
      headers: t.admin,
      payload: { from: '6287777777777', text: 'thanks!', id: 'INBOUND-REACT-1' },
    });
    expect(inbound.statusCode, inbound.body).toBe(200);
    const waId = inbound.json().data.messageId as string;
    await until(async () => (await post(`/messages/${waId}/reaction`, { emoji: '❤️' })).statusCode === 200);
    expect(await last()).toMatchObject({
      kind: 'reaction',
      to: '6287777777777@c.us',
      emoji: '❤️',
      targetMessageId: waId,
    });
  });

  it('answers 404 for a reaction to an unknown id without chatId, 400 for a word as emoji', async () => {
    const unknown = await post('/messages/NO-SUCH-ID/reaction', { emoji: '👍' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('MESSAGE_NOT_FOUND');
    const withChat = await post('/messages/3EB0FFFF/reaction', { emoji: '🎉', chatId: '6288888888888' });
    expect(withChat.statusCode).toBe(200);
    expect(await last()).toMatchObject({ kind: 'reaction', to: '6288888888888@c.us', targetMessageId: '3EB0FFFF' });
    expect((await post('/messages/3EB0FFFF/reaction', { emoji: 'yes', chatId: TO })).statusCode).toBe(400);
  });

  it('marks a chat read and shows and clears typing, in order with the sends', async () => {
    expect((await post(`/chats/${TO}/typing`, { on: true })).statusCode).toBe(200);
    expect((await sendText(t, agent, { to: TO, message: 'one moment' })).statusCode).toBe(200);
    expect((await post(`/chats/${TO}/typing`, { on: false })).statusCode).toBe(200);
    expect((await post(`/chats/${TO}/read`, {})).statusCode).toBe(200);
    const tail = (await sentLog()).slice(-4).map(({ kind, to, typing }) => ({ kind, to, typing }));
    expect(tail).toEqual([
      { kind: 'typing', to: TO_JID, typing: true },
      { kind: 'text', to: TO_JID, typing: undefined },
      { kind: 'typing', to: TO_JID, typing: false },
      { kind: 'read', to: TO_JID, typing: undefined },
    ]);
  });

  it("shows files, locations and contacts in the chat's history, and no reactions, read marks or typing", async () => {
    const res = await t.app.inject({
      method: 'GET',
      url: `/agents/${agent.agentId}/chats/${TO}/messages?limit=100`,
      headers: agent.auth,
    });
    expect(res.statusCode, res.body).toBe(200);
    const items = res.json().data.items as Array<{ type: string; text: string | null; media: unknown }>;
    const types = new Set(items.map((item) => item.type));
    expect([...types].sort()).toEqual([
      'audio',
      'contact',
      'document',
      'image',
      'location',
      'sticker',
      'text',
      'video',
    ]);
    expect(items.filter((item) => item.type === 'document').map((item) => item.media)).toEqual([
      { mimeType: 'text/csv', size: FILES.csv.length, filename: 'contacts.csv' },
      { mimeType: 'application/pdf', size: FILES.pdf.length, filename: 'invoice.pdf' },
    ]);
    expect(items.find((item) => item.type === 'location')?.text).toBe('Monas');
    expect(items.filter((item) => item.type === 'contact').map((item) => item.text)).toEqual(['Budi', 'Siti']);
  });

  it('answers 409 SESSION_NOT_READY for every kind while the session is down', async () => {
    const down = await connectAgent(t, 'down-bot');
    await t.app.inject({
      method: 'POST',
      url: `/sandbox/agents/${down.agentId}/disconnect`,
      headers: t.admin,
      payload: { loggedOut: true },
    });
    const call = (url: string, payload: Record<string, unknown>) =>
      t.app.inject({ method: 'POST', url: `/agents/${down.agentId}${url}`, headers: down.auth, payload });
    for (const [url, payload] of [
      ['/media', { to: TO, type: 'document', data: FILES.pdf.toString('base64') }],
      ['/messages', { to: TO, location: { latitude: 1, longitude: 2 } }],
      [`/chats/${TO}/read`, {}],
      [`/chats/${TO}/typing`, { on: true }],
      ['/messages/3EB0/reaction', { emoji: '👍', chatId: TO }],
    ] as const) {
      const res = await call(url, payload);
      expect(res.statusCode, url).toBe(409);
      expect(res.json().error.code).toBe('SESSION_NOT_READY');
    }
  });
});

// A file's chunks are committed one by one before its row, never in one transaction: on PGlite a transaction holds
// the one connection every agent shares, and other agents' sends timed out (503) behind a 100 MB upload.
describe("a file's commit", () => {
  const f = useTestApp();

  const chunksOf = async (messageId: string) =>
    Number(
      (
        await f.db.database.query('SELECT count(*)::int AS n FROM outbox_media_chunks WHERE message_id = $1', [
          messageId,
        ])
      )[0]?.n,
    );
  const document = (agent: ConnectedAgent, size: number, headers: Record<string, string> = {}) =>
    f.t.app.inject({
      method: 'POST',
      url: `/agents/${agent.agentId}/media`,
      headers: { ...agent.auth, ...headers },
      payload: { to: TO, type: 'document', filename: 'big.bin', data: Buffer.alloc(size, 7).toString('base64') },
    });

  it("lets other agents' sends commit between its chunks, and writes the row once the file is whole", async () => {
    const uploader = await connectAgent(f.t, 'chunked-bot');
    const other = await connectAgent(f.t, 'bystander-bot');
    // The third chunk waits until the other agent's text is answered.
    let reached: () => void = () => {};
    const atThirdChunk = new Promise<void>((resolve) => {
      reached = resolve;
    });
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const query = f.db.database.query.bind(f.db.database);
    const spy = vi.spyOn(f.db.database, 'query').mockImplementation(async (sql, params, name) => {
      if (name === 'outbox_media_chunk' && params?.[1] === 2) {
        reached();
        await released;
      }
      return query(sql, params, name);
    });
    try {
      const upload = document(uploader, 4 * MB + 5);
      await atThirdChunk;
      // Two chunks are committed, the row is not there yet.
      const [committed] = await f.db.database.query(
        `SELECT count(*)::int AS n, count(*) FILTER (WHERE NOT EXISTS (
           SELECT 1 FROM outbox_messages m WHERE m.id = c.message_id))::int AS stray FROM outbox_media_chunks c`,
      );
      expect({ n: Number(committed?.n), stray: Number(committed?.stray) }).toEqual({ n: 2, stray: 2 });
      const text = await sendText(f.t, other, { to: TO, message: 'not behind the file' });
      expect(text.statusCode, text.body).toBe(200);
      release();
      const res = await upload;
      expect(res.statusCode, res.body).toBe(200);
      const messageId = res.json().data.messageId as string;
      expect(sent(f.t, uploader.agentId)).toEqual([expect.objectContaining({ kind: 'document', bytes: 4 * MB + 5 })]);
      // Sent: its chunks are gone with the outcome.
      await until(async () => (await chunksOf(messageId)) === 0);
    } finally {
      release();
      spy.mockRestore();
    }
  });

  it('leaves no chunks when the row is not written: a used Idempotency-Key, or a failure before the row', async () => {
    const agent = await connectAgent(f.t, 'keyed-file-bot');
    const first = await document(agent, MB + 1, { 'idempotency-key': 'file-once' });
    expect(first.statusCode, first.body).toBe(200);
    // A second row with the key, as from a retry that raced the first past the route's own look-up: its chunks are
    // written, its row is not, and the chunks go.
    const repository = new OutboxRepository(f.db.database);
    const racing = randomUUID();
    const keyed = await repository.write(
      [
        {
          id: racing,
          agentId: agent.agentId,
          kind: 'document',
          toJid: TO_JID,
          payload: { filename: 'big.bin', mimeType: 'application/octet-stream' },
          media: Buffer.alloc(2 * MB + 1, 7),
          idempotencyKey: 'file-once',
          traceId: null,
        },
      ],
      [],
    );
    expect(keyed.has(racing)).toBe(false);
    // The database refuses the row after the chunks: the caller hears it, and the chunks go.
    const query = f.db.database.query.bind(f.db.database);
    const spy = vi.spyOn(f.db.database, 'query').mockImplementation(async (sql, params, name) => {
      if (name === 'outbox_insert_media') throw Object.assign(new Error('no space left on device'), { code: '53100' });
      return query(sql, params, name);
    });
    try {
      const refused = await document(agent, 2 * MB + 1);
      expect(refused.statusCode).toBeGreaterThanOrEqual(500);
    } finally {
      spy.mockRestore();
    }
    const [left] = await f.db.database.query('SELECT count(*)::int AS n FROM outbox_media_chunks');
    expect(Number(left?.n)).toBe(0);
  });

  it('purges, an hour after they were written, chunks that belong to no message (a crash before the row)', async () => {
    await f.db.database.query(
      `INSERT INTO outbox_media_chunks (message_id, n, data, created_at) VALUES
         ('crashed-before-row', 0, '\\x00', now() - interval '2 hours'),
         ('crashed-before-row', 1, '\\x00', now() - interval '2 hours'),
         ('being-written', 0, '\\x00', now())`,
    );
    const purged = await f.t.container.outbox.purgeStrayChunksBefore(new Date(Date.now() - 60 * 60 * 1000));
    expect(purged).toBe(2);
    const rows = await f.db.database.query('SELECT message_id FROM outbox_media_chunks ORDER BY message_id');
    expect(rows.map((row) => row.message_id)).toEqual(['being-written']);
    await f.db.database.query(`DELETE FROM outbox_media_chunks WHERE message_id = 'being-written'`);
  });
});

describe('a 100 MB upload', () => {
  let db: TestDatabase;
  let t: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase();
    // One token a minute, spent by the first text: the document stays queued, so that what is measured is the
    // upload and its commit, not the send (which reads the file back whole, as every engine needs it).
    t = await createTestApp({
      database: db.database,
      env: { RATE_LIMIT_BURST: '1', RATE_LIMIT_PER_MINUTE: '1', SEND_WAIT_MS: '0' },
    });
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  it('streams to disk and into 1 MB chunks: memory grows by a few chunks, not by the file', async () => {
    const agent = await connectAgent(t, 'big-bot');
    await sendText(t, agent, { to: TO, message: 'first' });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = t.app.server.address() as AddressInfo;
    const size = 100 * MB;
    const chunk = Buffer.alloc(64 * 1024, 7);
    // What is live, not what waits for the collector: each sample follows a full collection.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    gc();
    const before = process.memoryUsage();
    const buffers: number[] = [];
    let heapPeak = 0;
    const sample = () => {
      gc();
      const now = process.memoryUsage();
      buffers.push(now.arrayBuffers - before.arrayBuffers);
      heapPeak = Math.max(heapPeak, now.heapUsed - before.heapUsed);
    };
    const form = multipart(
      { to: TO, type: 'document', filename: 'big.bin' },
      {
        name: 'big.bin',
        type: 'application/octet-stream',
        chunks: (function* () {
          for (let sent = 0; sent < size; sent += chunk.length) {
            // Every 10 MB that leave the client, a look at what the process holds: ten samples, however fast it goes.
            if (sent > 0 && sent % (10 * MB) === 0) sample();
            yield chunk;
          }
        })(),
      },
    );
    // Once the upload is on disk, its chunks are read and written to the database: looked at every 500 ms (a full
    // collection takes ~100 ms here).
    let committing: ReturnType<typeof setInterval> | undefined;
    const uploaded = (async function* () {
      yield* form.body();
      committing = setInterval(sample, 500);
    })();
    const res = await request(`http://127.0.0.1:${port}/agents/${agent.agentId}/media`, {
      method: 'POST',
      headers: { ...agent.auth, 'content-type': form.contentType },
      body: Readable.from(uploaded),
    }).finally(() => clearInterval(committing));
    const body = (await res.body.json()) as { data: { messageId: string; status: string } };
    expect(res.statusCode, JSON.stringify(body)).toBe(202);
    expect(body.data.status).toBe('queued');
    // Buffers (where the file's bytes live) hold a chunk or two at a time: measured 0.4 MB while uploading and 1-3.5 MB
    // while committing (1 MB chunks), in this process that is both the client and the server: while a chunk's statement
    // is in flight, the chunk and the driver's message buffer (grown to 2 MB for it) are alive, and each chunk being
    // its own commit, a sample finds one in flight more often on a busy machine. A rare sample catches a socket's queue
    // between the two (up to ~10 MB seen); none comes near the file.
    const sorted = [...buffers].sort((x, y) => x - y);
    const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
    const report = `buffers grew by ${(median / MB).toFixed(1)} MB (median), ${((sorted.at(-1) ?? 0) / MB).toFixed(1)} MB (peak); heap by ${(heapPeak / MB).toFixed(1)} MB`;
    expect(buffers.length, report).toBeGreaterThanOrEqual(9);
    // On PGlite the database runs in this process too and holds the chunk it is writing (measured up to 3.3 MB).
    expect(median, report).toBeLessThanOrEqual(5 * MB);
    expect(sorted.at(-1) ?? 0, report).toBeLessThan(32 * MB);
    expect(heapPeak, report).toBeLessThan(8 * MB);
    const [stored] = await db.database.query(
      'SELECT count(*)::int AS n, sum(length(data))::bigint AS bytes, max(length(data)) AS largest FROM outbox_media_chunks WHERE message_id = $1',
      [body.data.messageId],
    );
    expect({ n: Number(stored?.n), bytes: Number(stored?.bytes), largest: Number(stored?.largest) }).toEqual({
      n: 100,
      bytes: size,
      largest: MB,
    });
  }, 120_000);
});

// Members share a PostgreSQL server; PGlite is one process's own database (one member per DATA_DIR).
describe.skipIf(!usingPostgres())('a file committed on one member and sent by another', () => {
  let db: TestDatabase;
  let owner: TestApp;
  let other: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase();
    owner = await createTestApp({ database: db.database });
    other = await createTestApp({ database: db.database });
  });
  afterAll(async () => {
    await other?.close();
    await owner?.close();
    await db?.drop();
  });

  it('goes out whole from the member that runs the session, read back from the chunks in PostgreSQL', async () => {
    const agent = await connectAgent(owner, 'shared-bot');
    const running = (t: TestApp) => t.container.sandbox?.session('shared-bot')?.state === 'connected';
    await until(() => running(owner) || running(other));
    const [runner, committer] = running(owner) ? [owner, other] : [other, owner];
    // 2.5 MiB: three chunks, the last one short.
    const pdf = Buffer.concat([FILES.pdf, Buffer.alloc(2.5 * MB, 1)]);
    const res = await committer.app.inject({
      method: 'POST',
      url: '/agents/shared-bot/media',
      headers: agent.auth,
      payload: { to: TO, type: 'document', filename: 'big.pdf', data: pdf.toString('base64') },
    });
    expect([200, 202], res.body).toContain(res.statusCode);
    await until(() => (runner.container.sandbox?.sent('shared-bot') ?? []).some((e) => e.kind === 'document'));
    expect(runner.container.sandbox?.sent('shared-bot').find((e) => e.kind === 'document')).toMatchObject({
      filename: 'big.pdf',
      bytes: pdf.length,
      sha256: sha256(pdf),
    });
    expect(committer.container.sandbox?.sent('shared-bot') ?? []).toEqual([]);
    // Sent: its chunks are gone with it.
    await until(async () => {
      const rows = await db.database.query(
        `SELECT count(*)::int AS n FROM outbox_media_chunks c JOIN outbox_messages o ON o.id = c.message_id
         WHERE o.agent_id = 'shared-bot'`,
      );
      return Number(rows[0]?.n) === 0;
    });
  });
});
