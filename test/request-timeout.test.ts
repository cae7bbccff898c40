// REQUEST_TIMEOUT_MS cuts off a request whose headers or body trickle in, and leaves long answers alone. These are
// Node's own timers on a real socket, so the test waits in real time, on a short timeout.
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { useTestApp } from './helpers/app.js';

const TIMEOUT_MS = 1_000;

/** Writes `first`, then one byte every 100 ms; resolves with how long the server kept the connection open. */
function trickle(port: number, first: string, byte: string, maxMs: number): Promise<{ ms: number; answer: string }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    let ticker: NodeJS.Timeout | undefined;
    const giveUp = setTimeout(() => {
      clearInterval(ticker);
      socket.destroy();
      reject(new Error(`still open after ${maxMs} ms: the trickle was never cut off`));
    }, maxMs);
    socket.on('connect', () => {
      socket.write(first);
      ticker = setInterval(() => {
        if (!socket.destroyed && socket.writable) socket.write(byte);
      }, 100);
    });
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1');
    });
    socket.on('close', () => {
      clearInterval(ticker);
      clearTimeout(giveUp);
      resolve({ ms: Date.now() - started, answer });
    });
    socket.on('error', () => {});
    socket.on('end', () => socket.destroy());
  });
}

describe('request timeouts', () => {
  const f = useTestApp({ env: { REQUEST_TIMEOUT_MS: String(TIMEOUT_MS) } });
  let base = '';
  let port = 0;
  const listen = async () => {
    if (!base) {
      base = await f.t.app.listen({ port: 0, host: '127.0.0.1' });
      port = Number(new URL(base).port);
    }
  };

  it('cuts off an authenticated body that trickles in', async () => {
    await listen();
    const head =
      `POST /sessions HTTP/1.1\r\nHost: x\r\nAuthorization: ${f.t.admin.authorization}\r\n` +
      'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"userId":"';
    const { ms, answer } = await trickle(port, head, 'a', 8_000);
    expect(ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 100);
    expect(ms).toBeLessThan(4_000);
    if (answer) expect(answer).toMatch(/^HTTP\/1\.1 408/);
  });

  it('cuts off headers that trickle in', async () => {
    await listen();
    const { ms } = await trickle(port, 'GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ', 'a', 8_000);
    expect(ms).toBeLessThan(4_000);
  });

  it('leaves a long answer alone: the event stream outlives the timeout', async () => {
    await listen();
    const controller = new AbortController();
    const res = await fetch(`${base}/events/sessions`, { headers: f.t.admin, signal: controller.signal });
    expect(res.status).toBe(200);
    const reader = res.body?.getReader();
    if (!reader) throw new Error('no stream');
    const decoder = new TextDecoder();
    let text = '';
    const readUntil = async (needle: string) => {
      while (!text.includes(needle)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before ${needle}`);
        text += decoder.decode(value, { stream: true });
      }
    };
    await readUntil('event: hello');
    await new Promise((resolve) => setTimeout(resolve, TIMEOUT_MS * 1.5));
    const created = await f.t.app.inject({
      method: 'POST',
      url: '/sessions',
      headers: f.t.admin,
      payload: { userId: 'u-long', agentId: 'long-bot', agentName: 'Long', apikey: 'long-key-0123456789' },
    });
    expect(created.statusCode).toBe(200);
    await readUntil('"agentId":"long-bot"');
    controller.abort();
  });
});
