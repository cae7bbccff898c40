import { readFile, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMAGES } from '../src/messaging/__fixtures__/images.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { type ConnectedAgent, connectAgent, sent, until } from './helpers/messaging.js';

const MB = 1024 * 1024;

/** Serves the test images and the misbehaving responses on 127.0.0.1, recording every request. */
function handler(hits: string[]) {
  return (req: IncomingMessage, res: ServerResponse) => {
    hits.push(`${req.method} ${req.url}`);
    const head = req.method === 'HEAD';
    const send = (status: number, body: Buffer, headers: Record<string, string | number> = {}) => {
      res.writeHead(status, { 'content-length': body.length, ...headers });
      res.end(head ? undefined : body);
    };
    switch (req.url) {
      case '/image.jpg':
        return send(200, IMAGES.jpeg, { 'content-type': 'image/jpeg' });
      case '/image.png':
        return send(200, IMAGES.png, { 'content-type': 'image/png' });
      case '/fake.jpg':
        return send(200, Buffer.from('just some text, honestly'), { 'content-type': 'image/jpeg' });
      case '/huge.jpg':
        return send(200, Buffer.concat([IMAGES.jpeg, Buffer.alloc(20 * MB)]), { 'content-type': 'image/jpeg' });
      case '/liar.jpg': {
        if (head) return send(200, IMAGES.jpeg);
        // Claims a small body and streams 20 MB without a length.
        res.writeHead(200, { 'content-type': 'image/jpeg' });
        res.on('error', () => {});
        const chunk = Buffer.alloc(256 * 1024);
        let left = 80;
        const pump = () => {
          while (left-- > 0) if (!res.write(chunk)) return void res.once('drain', pump);
          res.end();
        };
        return pump();
      }
      case '/redirect':
        res.writeHead(302, { location: '/image.png' });
        return res.end();
      default:
        return send(404, Buffer.from('not found'));
    }
  };
}

describe('POST /agents/{agentId}/media', () => {
  let db: TestDatabase;
  let t: TestApp;
  let guarded: TestApp;
  let server: Server;
  let base: string;
  const hits: string[] = [];
  let agent: ConnectedAgent;
  let guardedAgent: ConnectedAgent;

  beforeAll(async () => {
    db = await createTestDatabase();
    server = createServer(handler(hits));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // The media server is on loopback, so this app lifts the SSRF block; `guarded` keeps it.
    t = await createTestApp({ database: db.database, env: { MEDIA_ALLOW_PRIVATE_NETWORKS: 'true' } });
    guarded = await createTestApp({ database: db.database });
    agent = await connectAgent(t, 'support-bot');
    guardedAgent = await connectAgent(guarded, 'guarded-bot');
  });
  afterAll(async () => {
    await guarded?.close();
    await t?.close();
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    await db?.drop();
  });

  const media = (payload: Record<string, unknown>, app = t, who = agent, headers: Record<string, string> = {}) =>
    app.app.inject({
      method: 'POST',
      url: `/agents/${who.agentId}/media`,
      headers: { ...who.auth, ...headers },
      payload,
    });

  it('replays the seed base64 example: sends the image with its caption and saves a preview', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/agents/support-bot/media',
      headers: { 'content-type': 'application/json', authorization: agent.auth.authorization },
      payload: JSON.stringify({
        to: '6281234567890',
        caption: 'Sample',
        data: IMAGES.jpeg.toString('base64'),
        filename: 'sample.jpg',
        mimeType: 'image/jpeg',
      }),
    });
    expect(res.statusCode).toBe(200);
    const data = res.json().data;
    expect(data).toEqual({
      delivered: true,
      messageId: expect.any(String),
      status: 'sent',
      waMessageId: expect.any(String),
      previewPath: expect.any(String),
    });
    expect(path.dirname(data.previewPath)).toBe(t.container.config.tempDir);
    expect(await readFile(data.previewPath)).toEqual(IMAGES.jpeg);
    expect(sent(t, 'support-bot').at(-1)).toMatchObject({
      kind: 'image',
      to: '6281234567890@c.us',
      caption: 'Sample',
      mimeType: 'image/jpeg',
      bytes: IMAGES.jpeg.length,
      messageId: data.waMessageId,
    });
    const state = await t.app.inject({
      method: 'GET',
      url: `/agents/support-bot/messages/${data.messageId}`,
      headers: agent.auth,
    });
    expect(state.json().data).toMatchObject({ kind: 'image', status: 'sent' });
    expect(state.body).not.toContain(IMAGES.jpeg.toString('base64'));
    // Once sent, the row no longer carries the image.
    const [row] = await db.database.query('SELECT media FROM outbox_messages WHERE id = $1', [data.messageId]);
    expect(row?.media).toBeNull();
  });

  it('replays the seed URL example against a local server: HEAD, then GET', async () => {
    const before = hits.length;
    const res = await media({ to: '6281234567890', url: `${base}/image.jpg` });
    expect(res.statusCode).toBe(200);
    expect(hits.slice(before)).toEqual(['HEAD /image.jpg', 'GET /image.jpg']);
    expect(sent(t, 'support-bot').at(-1)).toMatchObject({ kind: 'image', mimeType: 'image/jpeg' });
  });

  it('reads the type from the bytes, accepts a data: URI, a redirect, and skips the preview when asked', async () => {
    const res = await media({
      to: '6281234567890',
      data: `data:image/jpeg;base64,${IMAGES.png.toString('base64')}`,
      mimetype: 'image/jpeg',
      save_to_temp: false,
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().data.previewPath).toBeNull();
    expect(sent(t, 'support-bot').at(-1)).toMatchObject({ mimeType: 'image/png' });
    const redirected = await media({ to: '6281234567890', url: `${base}/redirect`, save_to_temp: false });
    expect(redirected.statusCode).toBe(200);
    expect(sent(t, 'support-bot').at(-1)).toMatchObject({ mimeType: 'image/png' });
  });

  it('answers 415 for a text file declared image/jpeg, from base64 or from a URL', async () => {
    const count = sent(t, 'support-bot').length;
    const fromData = await media({
      to: '6281234567890',
      data: Buffer.from('just some text, honestly').toString('base64'),
      mimeType: 'image/jpeg',
    });
    expect(fromData.statusCode).toBe(415);
    expect(fromData.json().error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    const fromUrl = await media({ to: '6281234567890', url: `${base}/fake.jpg` });
    expect(fromUrl.statusCode).toBe(415);
    expect(sent(t, 'support-bot')).toHaveLength(count);
  });

  it('answers 413 MEDIA_TOO_LARGE over MEDIA_MAX_BYTES, from base64 or from a URL', async () => {
    const big = Buffer.concat([IMAGES.jpeg, Buffer.alloc(10 * MB)]).toString('base64'); // ~13.4 MB of JSON
    const fromData = await media({ to: '6281234567890', data: big });
    expect(fromData.statusCode).toBe(413);
    expect(fromData.json().error.code).toBe('MEDIA_TOO_LARGE');

    const before = hits.length;
    const announced = await media({ to: '6281234567890', url: `${base}/huge.jpg` });
    expect(announced.statusCode).toBe(413);
    expect(announced.json().error.code).toBe('MEDIA_TOO_LARGE');
    expect(hits.slice(before)).toEqual(['HEAD /huge.jpg']); // refused on the HEAD, never downloaded

    const lying = await media({ to: '6281234567890', url: `${base}/liar.jpg` });
    expect(lying.statusCode).toBe(413);
    expect(lying.json().error.code).toBe('MEDIA_TOO_LARGE');
  });

  it('answers 413 for a 30 MB body, past the JSON limit (MEDIA_JSON_MAX_MB, 16 MB, in base64: about 24 MB)', async () => {
    const res = await media({ to: '6281234567890', data: 'A'.repeat(30 * MB) });
    expect(res.statusCode).toBe(413);
    expect(res.json().error.code).toBe('PAYLOAD_TOO_LARGE');
  });

  it('answers 422 MEDIA_FETCH_FAILED when the URL answers with an error', async () => {
    const res = await media({ to: '6281234567890', url: `${base}/missing.jpg` });
    expect(res.statusCode).toBe(422);
    expect(res.json().error.code).toBe('MEDIA_FETCH_FAILED');
  });

  it('requires exactly one of data and url', async () => {
    for (const payload of [
      { to: '6281234567890' },
      { to: '6281234567890', data: IMAGES.png.toString('base64'), url: `${base}/image.png` },
    ]) {
      const res = await media(payload);
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toMatchObject({ code: 'INVALID_PAYLOAD', message: expect.stringContaining('data') });
    }
  });

  it('answers 409 SESSION_NOT_READY without fetching anything', async () => {
    await t.app.inject({
      method: 'POST',
      url: '/sessions',
      headers: t.admin,
      payload: { userId: 'u-off', agentId: 'offline-bot', agentName: 'Off', apikey: 'key-offline-0123456789' },
    });
    const before = hits.length;
    const res = await media({ to: '6281234567890', url: `${base}/image.png` }, t, {
      agentId: 'offline-bot',
      auth: { authorization: 'Bearer key-offline-0123456789' },
    });
    expect(res.statusCode).toBe(409);
    expect(res.json().error.code).toBe('SESSION_NOT_READY');
    expect(hits.length).toBe(before);
    // A malformed request is refused as such before the session's state matters.
    const badScheme = await media({ to: '6281234567890', url: 'file:///etc/passwd' }, t, {
      agentId: 'offline-bot',
      auth: { authorization: 'Bearer key-offline-0123456789' },
    });
    expect(badScheme.json().error.code).toBe('MEDIA_URL_FORBIDDEN');
  });

  it('sends an image once for a repeated Idempotency-Key, without fetching it again', async () => {
    const headers = { 'idempotency-key': 'img-1' };
    const payload = { to: '6281234567890', url: `${base}/image.png`, save_to_temp: false };
    const first = await media(payload, t, agent, headers);
    const before = hits.length;
    const count = sent(t, 'support-bot').length;
    const second = await media(payload, t, agent, headers);
    expect(second.json().data).toEqual(first.json().data);
    expect(hits.length).toBe(before);
    expect(sent(t, 'support-bot')).toHaveLength(count);
  });

  describe('SSRF', () => {
    it.each([
      'http://127.0.0.1:{port}/image.png',
      'http://localhost:{port}/image.png',
      'http://[::1]:{port}/image.png',
      'http://10.0.0.1/image.png',
      'http://169.254.169.254/latest/meta-data/',
      'http://[::ffff:127.0.0.1]:{port}/image.png',
      'file:///etc/passwd',
      'gopher://127.0.0.1:{port}/_GET%20/image.png',
    ])('refuses %s with 400 MEDIA_URL_FORBIDDEN, sending it nothing', async (template) => {
      const url = template.replace('{port}', base.split(':').at(-1) ?? '');
      const before = hits.length;
      const res = await media({ to: '6281234567890', url }, guarded, guardedAgent);
      expect(res.statusCode, res.body).toBe(400);
      expect(res.json().error.code).toBe('MEDIA_URL_FORBIDDEN');
      expect(hits.length).toBe(before);
    });

    it('keeps no preview of a refused image', async () => {
      const res = await media({ to: '6281234567890', url: `${base}/image.png` }, guarded, guardedAgent);
      expect(res.statusCode, res.body).toBe(400);
      await expect(stat(guarded.container.config.tempDir)).rejects.toMatchObject({ code: 'ENOENT' });
    });
  });
});

describe('images in flight', () => {
  let db: TestDatabase;
  let t: TestApp;
  let server: Server;
  let base: string;
  /** Requests for /slow.png wait here until the test lets them go. */
  const waiting: Array<() => void> = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    server = createServer((req, res) => {
      const answer = () => {
        res.writeHead(200, { 'content-type': 'image/png', 'content-length': IMAGES.png.length });
        res.end(req.method === 'HEAD' ? undefined : IMAGES.png);
      };
      if (req.method === 'GET') waiting.push(answer);
      else answer();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    t = await createTestApp({
      database: db.database,
      env: { MEDIA_ALLOW_PRIVATE_NETWORKS: 'true', MEDIA_IN_FLIGHT_PER_AGENT: '2', MEDIA_IN_FLIGHT_MAX: '3' },
    });
  });
  afterAll(async () => {
    await t?.close();
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    await db?.drop();
  });

  it('answers 429 past MEDIA_IN_FLIGHT_PER_AGENT and MEDIA_IN_FLIGHT_MAX, and holds up no one else', async () => {
    const flooding = await connectAgent(t, 'flooding-bot');
    const other = await connectAgent(t, 'other-bot');
    const image = (agent: ConnectedAgent) =>
      t.app.inject({
        method: 'POST',
        url: `/agents/${agent.agentId}/media`,
        headers: agent.auth,
        payload: { to: '6281234567890', url: `${base}/slow.png` },
      });
    const held = [image(flooding), image(flooding)];
    await until(() => waiting.length === 2); // both are downloading, each holding its place
    const refused = await image(flooding);
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.json().error.code).toBe('RATE_LIMITED');
    // Another agent still gets the one place left in the process, then meets the process's bound.
    const third = image(other);
    await until(() => waiting.length === 3);
    expect((await image(other)).statusCode).toBe(429);
    // Texts are not images: nobody's text waits behind them.
    const text = await t.app.inject({
      method: 'POST',
      url: '/agents/other-bot/messages',
      headers: other.auth,
      payload: { to: '6281234567890', message: 'still here' },
    });
    expect(text.statusCode).toBe(200);
    for (const answer of waiting.splice(0)) answer();
    expect((await Promise.all([...held, third])).map((res) => res.statusCode)).toEqual([200, 200, 200]);
    // The places are free again once the answers are sent.
    const again = image(flooding);
    await until(() => waiting.length === 1);
    for (const answer of waiting.splice(0)) answer();
    expect((await again).statusCode).toBe(200);
  });
});
