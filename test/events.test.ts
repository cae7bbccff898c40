import Fastify from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { Agent, type Response as UndiciResponse, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/__fixtures__/fake-clock.js';
import { eventsRoutes } from '../src/events/events.routes.js';
import { type SessionEvent, SessionEvents } from '../src/events/session-events.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

interface StreamMessage {
  event: string;
  data: unknown;
}

/** A client of the SSE endpoint over a real socket: collects messages and comment lines as they arrive. */
class StreamClient {
  readonly messages: StreamMessage[] = [];
  readonly comments: string[] = [];
  ended = false;
  private buffer = '';
  private waiters: (() => void)[] = [];

  private constructor(
    readonly response: UndiciResponse,
    private readonly controller: AbortController,
    private readonly agent: Agent,
  ) {}

  /**
   * Each stream gets its own connection pool: after an abort, Node 20's built-in fetch leaves a spare
   * connection open that never sends a request, and app.close() would wait for its keep-alive timeout.
   */
  static async open(url: string, headers: Record<string, string> = {}): Promise<StreamClient> {
    const controller = new AbortController();
    const agent = new Agent();
    const response = await undiciFetch(url, { headers, signal: controller.signal, dispatcher: agent });
    const stream = new StreamClient(response, controller, agent);
    if (response.ok && response.body) void stream.pump(response.body);
    return stream;
  }

  private async pump(body: ReadableStream<Uint8Array>): Promise<void> {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        this.buffer += value;
        const blocks = this.buffer.split('\n\n');
        this.buffer = blocks.pop() ?? '';
        for (const block of blocks) this.take(block);
        this.notify();
      }
    } catch {
      // aborted by close()
    }
    this.ended = true;
    this.notify();
  }

  private take(block: string): void {
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
      else if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data.push(line.slice(6));
    }
    if (data.length > 0) this.messages.push({ event, data: JSON.parse(data.join('\n')) });
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** Resolves when the condition holds, checking after every chunk; rejects after the timeout. */
  async until<T>(condition: () => T | undefined | false, what: string, timeoutMs = 5_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = condition();
      if (value) return value;
      if (this.ended) throw new Error(`stream ended while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  find(event: string, predicate: (data: Record<string, unknown>) => boolean = () => true) {
    return () =>
      this.messages.find((m) => m.event === event && predicate(m.data as Record<string, unknown>)) as
        | { event: string; data: Record<string, unknown> }
        | undefined;
  }

  close(): void {
    this.controller.abort();
    void this.agent.destroy();
  }
}

/** Polls a condition that no event announces (listener counts) until it holds or the timeout passes. */
async function eventually(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

type Live = { isReady: boolean; sessionState: string; me: string | null; qr: { base64: string } | null };

// One database for the file; each describe builds its own apps on it.
let db: TestDatabase;
// PGlite takes a while to start on a busy machine; allow more than the default hook timeout.
beforeAll(async () => {
  db = await createTestDatabase();
}, 180_000);
afterAll(async () => {
  await db?.drop();
});

describe('GET /events/sessions', () => {
  let t: TestApp;
  let base: string;

  beforeAll(async () => {
    t = await createTestApp({ database: db.database });
    base = await t.app.listen({ port: 0, host: '127.0.0.1' });
  });
  afterAll(async () => {
    await t?.close();
  });

  const create = (agentId: string, apikey = `key-${agentId}`) =>
    fetch(`${base}/sessions`, {
      method: 'POST',
      headers: { ...t.admin, 'content-type': 'application/json' },
      body: JSON.stringify({ userId: `u-${agentId}`, agentId, agentName: agentId, apikey, engine: 'sandbox' }),
    });

  it('needs a key: 401 without one or with a wrong one, as the usual JSON error', async () => {
    for (const headers of [{}, { authorization: 'Bearer wrong' }] as Record<string, string>[]) {
      const res = await fetch(`${base}/events/sessions`, { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      const body = (await res.json()) as { error: { code: string; traceId: string } };
      expect(body.error.code).toBe('UNAUTHORIZED');
      expect(body.error.traceId).toBe(res.headers.get('x-request-id'));
    }
  });

  it("refuses an agent's own key with 403: the stream shows every agent", async () => {
    expect((await create('ev-agent-key', 'the-agents-key')).status).toBe(200);
    const res = await fetch(`${base}/events/sessions`, { headers: { authorization: 'Bearer the-agents-key' } });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('FORBIDDEN');
  });

  it('opens with hello, then streams QR codes, the scan and the removal of a sandbox session', async () => {
    const stream = await StreamClient.open(`${base}/events/sessions`, {
      ...t.admin,
      'x-request-id': 'events-trace-1',
    });
    try {
      expect(stream.response.status).toBe(200);
      expect(stream.response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
      expect(stream.response.headers.get('cache-control')).toBe('no-store');
      expect(stream.response.headers.get('x-request-id')).toBe('events-trace-1');
      const hello = await stream.until(stream.find('hello'), 'hello');
      expect(hello.data).toEqual({ heartbeatMs: 15_000 });
      expect(stream.messages[0]?.event).toBe('hello');

      expect((await create('ev-bot')).status).toBe(200);
      const qr = await stream.until(
        stream.find('session', (d) => d.agentId === 'ev-bot' && (d.liveState as Live).qr !== null),
        'a QR code',
      );
      expect(qr.data).toMatchObject({ agentId: 'ev-bot', engine: 'sandbox', status: 'awaiting_qr' });
      expect((qr.data.liveState as Live).sessionState).toBe('qr');
      expect(
        Buffer.from((qr.data.liveState as Live).qr?.base64 ?? '', 'base64')
          .subarray(1, 4)
          .toString(),
      ).toBe('PNG');
      expect(JSON.stringify(stream.messages)).not.toContain('key-ev-bot');

      const scan = await fetch(`${base}/sandbox/agents/ev-bot/scan`, {
        method: 'POST',
        headers: { ...t.admin, 'content-type': 'application/json' },
        body: JSON.stringify({ phone: '6281234567890' }),
      });
      expect(scan.status).toBe(200);
      const ready = await stream.until(
        stream.find('session', (d) => d.agentId === 'ev-bot' && (d.liveState as Live).isReady),
        'the connected session',
      );
      // The persisted row and the live state agree: the stream waits for the status write.
      expect(ready.data).toMatchObject({ status: 'connected', lastError: null });
      expect(Date.parse(String(ready.data.lastConnectedAt))).not.toBeNaN();
      expect(ready.data.liveState).toMatchObject({ sessionState: 'connected', me: '6281234567890@c.us', qr: null });

      const deleted = await fetch(`${base}/sessions/ev-bot`, { method: 'DELETE', headers: t.admin });
      expect(deleted.status).toBe(200);
      await stream.until(
        stream.find('removed', (d) => d.agentId === 'ev-bot'),
        'removed',
      );
      const removedAt = stream.messages.findIndex((m) => m.event === 'removed');
      const after = stream.messages.slice(removedAt + 1);
      expect(after.filter((m) => (m.data as { agentId?: string }).agentId === 'ev-bot')).toEqual([]);
    } finally {
      stream.close();
    }
  });

  it('reports errors: a dropped connection shows as reconnecting with the reason', async () => {
    expect((await create('ev-drop')).status).toBe(200);
    const stream = await StreamClient.open(`${base}/events/sessions`, t.admin);
    try {
      await stream.until(stream.find('hello'), 'hello');
      const qr = await fetch(`${base}/sessions/ev-drop/qr`, { method: 'POST', headers: t.admin });
      expect(qr.status).toBe(200);
      const scan = await fetch(`${base}/sandbox/agents/ev-drop/scan`, {
        method: 'POST',
        headers: { ...t.admin, 'content-type': 'application/json' },
        body: '{}',
      });
      expect(scan.status).toBe(200);
      await stream.until(
        stream.find('session', (d) => d.agentId === 'ev-drop' && (d.liveState as Live).isReady),
        'connected',
      );
      const drop = await fetch(`${base}/sandbox/agents/ev-drop/disconnect`, {
        method: 'POST',
        headers: { ...t.admin, 'content-type': 'application/json' },
        body: JSON.stringify({ loggedOut: false }),
      });
      expect(drop.status).toBe(200);
      const dropped = await stream.until(
        stream.find('session', (d) => d.agentId === 'ev-drop' && d.status === 'disconnected'),
        'the disconnect',
      );
      expect(dropped.data.lastError).toBe('disconnected: NETWORK');
    } finally {
      stream.close();
    }
  });

  it('is in the OpenAPI document as an event stream', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/docs/json' })).json();
    const get = doc.paths['/events/sessions'].get;
    expect(get.description).toMatch(/Server-Sent Events/);
    expect(get.security).toEqual([{ bearerAuth: [] }]);
    expect(Object.keys(get.responses[200].content)).toEqual(['text/event-stream']);
    expect(get.description).toMatch(/401 `UNAUTHORIZED`.*\n403 `FORBIDDEN`/);
  });
});

describe('GET /events/sessions, lifecycle', () => {
  it('shares one subscription between streams and removes its listeners when the last client goes', async () => {
    const t = await createTestApp({ database: db.database });
    const base = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const { board } = t.container;
    const changeBefore = board.listenerCount('change');
    const removedBefore = board.listenerCount('removed');
    const first = await StreamClient.open(`${base}/events/sessions`, t.admin);
    const second = await StreamClient.open(`${base}/events/sessions`, t.admin);
    await first.until(first.find('hello'), 'hello');
    await second.until(second.find('hello'), 'hello');
    expect(board.listenerCount('change')).toBe(changeBefore + 1);
    expect(board.listenerCount('removed')).toBe(removedBefore + 1);

    first.close();
    // The second stream still gets events after the first left.
    const created = await fetch(`${base}/sessions`, {
      method: 'POST',
      headers: { ...t.admin, 'content-type': 'application/json' },
      body: JSON.stringify({ userId: 'u', agentId: 'ev-after-first', agentName: 'x', apikey: 'k', engine: 'sandbox' }),
    });
    expect(created.status).toBe(200);
    await second.until(
      second.find('session', (d) => d.agentId === 'ev-after-first'),
      'an event on the second',
    );
    expect(board.listenerCount('change')).toBe(changeBefore + 1);

    second.close();
    await eventually(
      () => board.listenerCount('change') === changeBefore && board.listenerCount('removed') === removedBefore,
      'the listeners to go',
    );
    await t.close();
  });

  it('collapses a burst of changes into one event, and a removal beats a status read that was in flight', async () => {
    const t = await createTestApp({ database: db.database });
    try {
      const created = await t.app.inject({
        method: 'POST',
        url: '/sessions',
        headers: t.admin,
        payload: { userId: 'u-burst', agentId: 'burst-bot', agentName: 'B', apikey: 'k-burst', engine: 'sandbox' },
      });
      expect(created.statusCode).toBe(200);
      // Wait for the QR code, so that no real change comes during the test (the next one is 20 s away).
      const qr = await t.app.inject({ method: 'POST', url: '/sessions/burst-bot/qr', headers: t.admin });
      expect(qr.statusCode).toBe(200);
      await t.container.supervisor.settled('burst-bot');
      const sut = new SessionEvents({ ...t.container });
      const seen: SessionEvent[] = [];
      const unsubscribe = sut.subscribe((event) => seen.push(event));

      for (let i = 0; i < 10; i++) t.container.supervisor.emit('change', 'burst-bot');
      await eventually(() => seen.length >= 1, 'the read');
      // A short grace period to catch a surplus event: it can only let a bug slip by, never fail a good run.
      await new Promise((resolve) => setTimeout(resolve, 50));
      // All ten came before the first read finished: one event, with the state after the last.
      expect(seen.map((e) => e.type)).toEqual(['session']);

      seen.length = 0;
      t.container.supervisor.emit('change', 'burst-bot');
      t.container.board.emit('removed', 'burst-bot');
      await eventually(() => seen.length >= 1, 'the removal');
      await new Promise((resolve) => setTimeout(resolve, 50)); // the same grace period
      expect(seen).toEqual([{ type: 'removed', data: { agentId: 'burst-bot' } }]);
      unsubscribe();
      expect(sut.subscriberCount).toBe(0);
    } finally {
      await t.close();
    }
  });

  it('ends open streams when the app closes, and app.close() does not hang on them', async () => {
    const t = await createTestApp({ database: db.database });
    const base = await t.app.listen({ port: 0, host: '127.0.0.1' });
    const streams = [
      await StreamClient.open(`${base}/events/sessions`, t.admin),
      await StreamClient.open(`${base}/events/sessions`, t.admin),
    ];
    for (const stream of streams) await stream.until(stream.find('hello'), 'hello');
    const started = Date.now();
    await t.close();
    expect(Date.now() - started).toBeLessThan(5_000);
    for (const stream of streams) {
      await stream.until(() => stream.ended, 'the end of the stream').catch(() => undefined);
      expect(stream.ended).toBe(true);
      stream.close();
    }
    expect(t.container.board.listenerCount('change')).toBe(0);
  });

  it('sends heartbeat comments at the configured interval, and stops them when the client goes', async () => {
    const t = await createTestApp({ database: db.database });
    // The same plugin on a bare server, on a clock the test moves: no 5 s waits.
    const clock = new FakeClock();
    const server = Fastify().setValidatorCompiler(validatorCompiler).setSerializerCompiler(serializerCompiler);
    await server.register(eventsRoutes, { ...t.container, clock, heartbeatMs: 5_000 });
    try {
      const base = await server.listen({ port: 0, host: '127.0.0.1' });
      const stream = await StreamClient.open(`${base}/events/sessions`, t.admin);
      const hello = await stream.until(stream.find('hello'), 'hello');
      expect(hello.data).toEqual({ heartbeatMs: 5_000 });
      expect(clock.pending()).toEqual([5_000]);
      await clock.advance(10_000);
      const heartbeats = () => stream.comments.filter((c) => c === 'heartbeat').length;
      await stream.until(() => heartbeats() >= 2, 'two heartbeats');
      expect(heartbeats()).toBe(2);
      stream.close();
      await eventually(() => clock.pending().length === 0, 'the heartbeat timer to go');
    } finally {
      await server.close();
      await t.close();
    }
  });
});
