// Credentials are checked before the body is read: an unauthenticated request is refused while its body is still on
// the wire (nothing parsed, buffered or validated), and each route reads at most its own body limit.
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { useTestApp } from './helpers/app.js';
import { connectAgent } from './helpers/messaging.js';

const MB = 1024 * 1024;

interface EarlyAnswer {
  status: number;
  head: string;
  /** Body bytes sent when the answer came. */
  bodySent: number;
}

/**
 * Sends the headers of a request that announces `declared` body bytes, then only `sent` of them, and waits for the
 * answer. A server that reads the body before authenticating never answers: it is still waiting for the rest.
 */
function sendHeadersThenStall(port: number, head: string, declared: number, sent: number): Promise<EarlyAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no answer while the body was incomplete: the server waits for the body before auth'));
    }, 5_000);
    socket.on('connect', () => {
      socket.write(`${head}Content-Length: ${declared}\r\n\r\n`);
      socket.write(Buffer.alloc(sent, 0x41));
    });
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      const end = received.indexOf('\r\n\r\n');
      if (end === -1) return;
      clearTimeout(timer);
      socket.destroy();
      resolve({ status: Number(received.slice(9, 12)), head: received.slice(0, end), bodySent: sent });
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

describe('authentication before the body', () => {
  const f = useTestApp({ env: { MEDIA_MAX_BYTES: String(MB), MEDIA_JSON_MAX_MB: '1' } });
  let port = 0;

  const listen = async () => {
    if (port === 0) {
      await f.t.app.listen({ port: 0, host: '127.0.0.1' });
      const address = f.t.app.server.address();
      port = typeof address === 'object' && address ? address.port : 0;
    }
    return port;
  };

  it('refuses an unauthenticated 14 MB upload with 401 before its body has arrived', async () => {
    const agent = await connectAgent(f.t, 'upload-bot');
    const at = await listen();
    const head = (authorization?: string) =>
      `POST /agents/${agent.agentId}/media HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
      (authorization ? `Authorization: ${authorization}\r\n` : '');
    for (const authorization of [undefined, 'Bearer not-the-key', `Bearer ${'x'.repeat(40)}`]) {
      const answer = await sendHeadersThenStall(at, head(authorization), 14 * MB, 64 * 1024);
      expect(answer.status).toBe(401);
      expect(answer.bodySent).toBeLessThan(14 * MB);
    }
  });

  it('refuses 40 such uploads at once, each after 64 KiB of its 14 MB', async () => {
    const at = await listen();
    const head = 'POST /agents/upload-bot/media HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n';
    const answers = await Promise.all(
      Array.from({ length: 40 }, () => sendHeadersThenStall(at, head, 14 * MB, 64 * 1024)),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(40).fill(401));
  });

  it('answers 401 before 413: an oversize body from a stranger is not even measured', async () => {
    const at = await listen();
    const answer = await sendHeadersThenStall(
      at,
      'POST /sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n',
      50 * MB,
      1024,
    );
    expect(answer.status).toBe(401);
  });

  it('shows schema errors only to authenticated callers', async () => {
    const agent = await connectAgent(f.t, 'schema-bot');
    const bad = { to: 12, message: ['not', 'text'] };
    const stranger = await f.t.app.inject({
      method: 'POST',
      url: '/agents/schema-bot/messages',
      headers: { authorization: 'Bearer wrong-key' },
      payload: bad,
    });
    expect(stranger.statusCode).toBe(401);
    expect(stranger.body).not.toContain('body.');
    const owner = await f.t.app.inject({
      method: 'POST',
      url: '/agents/schema-bot/messages',
      headers: agent.auth,
      payload: bad,
    });
    expect(owner.statusCode).toBe(400);
    expect(owner.json().error.code).toBe('INVALID_PAYLOAD');
    // Not even a broken JSON body is parsed for a stranger.
    const broken = await f.t.app.inject({
      method: 'POST',
      url: '/sessions',
      headers: { 'content-type': 'application/json' },
      payload: '{"userId":',
    });
    expect(broken.statusCode).toBe(401);
  });

  it('answers an invalid agentId with 401 to a stranger and 400 INVALID_AGENT_ID to the admin', async () => {
    const stranger = await f.t.app.inject({ method: 'GET', url: '/sessions/a%20b' });
    expect(stranger.statusCode).toBe(401);
    const strangerAgent = await f.t.app.inject({
      method: 'POST',
      url: '/agents/..%2Fx/messages',
      headers: { authorization: 'Bearer wrong-key' },
      payload: { to: '6281234567890', message: 'hi' },
    });
    expect(strangerAgent.statusCode).toBe(401);
    const admin = await f.t.app.inject({ method: 'GET', url: '/sessions/a%20b', headers: f.t.admin });
    expect(admin.statusCode).toBe(400);
    expect(admin.json().error.code).toBe('INVALID_AGENT_ID');
  });

  it('gives each route its own body limit', async () => {
    const agent = await connectAgent(f.t, 'limits-bot');
    // Session creation is small: 100 KB is too much.
    const session = await f.t.app.inject({
      method: 'POST',
      url: '/sessions',
      headers: f.t.admin,
      payload: { userId: 'u', agentId: 'big-name', agentName: 'x'.repeat(100_000), apikey: 'k' },
    });
    expect(session.statusCode).toBe(413);
    expect(session.json().error.code).toBe('PAYLOAD_TOO_LARGE');
    // A 65,536-character message fits even with every character escaped (\uXXXX: 6 bytes each).
    const escaped = `{"to":"6281234567890","message":"${'\\u00e9'.repeat(65_536)}"}`;
    expect(escaped.length).toBeGreaterThan(390_000);
    const text = await f.t.app.inject({
      method: 'POST',
      url: `/agents/${agent.agentId}/messages`,
      headers: { ...agent.auth, 'content-type': 'application/json' },
      payload: escaped,
    });
    expect(text.statusCode).not.toBe(413);
    // The media route takes MEDIA_JSON_MAX_MB (1 MiB here) in base64, and refuses a body far past it.
    const image = Buffer.alloc(MB, 0);
    const fits = await f.t.app.inject({
      method: 'POST',
      url: `/agents/${agent.agentId}/media`,
      headers: agent.auth,
      payload: { to: '6281234567890', data: image.toString('base64') },
    });
    expect(fits.json().error?.code).not.toBe('PAYLOAD_TOO_LARGE');
    const tooLarge = await f.t.app.inject({
      method: 'POST',
      url: `/agents/${agent.agentId}/media`,
      headers: agent.auth,
      payload: { to: '6281234567890', data: 'A'.repeat(2 * MB) },
    });
    expect(tooLarge.statusCode).toBe(413);
    expect(tooLarge.json().error.code).toBe('PAYLOAD_TOO_LARGE');
  });

  it('still adopts a key rotated in api_keys, from the hook, on a real connection', async () => {
    const at = await listen();
    await connectAgent(f.t, 'rotate-bot', { userId: 'u-rotate' });
    await f.db.database.query(
      `INSERT INTO api_keys (user_id, access_token, is_active, updated_at) VALUES ('u-rotate', 'rotated-0123456789', true, now())`,
    );
    const res = await fetch(`http://127.0.0.1:${at}/sessions/rotate-bot`, {
      headers: { authorization: 'Bearer rotated-0123456789' },
    });
    expect(res.status).toBe(200);
  });
});
