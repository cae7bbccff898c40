// A stand-in AI backend: a real HTTP server on 127.0.0.1 that records every request and answers as each test says.
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedAiRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body, or the raw text when it was not JSON. */
  body: unknown;
  /** When the request arrived (performance.now()), for latency measurements. */
  at: number;
}

/** What the server does with one request. */
export type AiBehaviour =
  | { kind: 'json'; status?: number; body: unknown; delayMs?: number }
  | { kind: 'raw'; status?: number; body: string; contentType?: string; delayMs?: number }
  /** Sends headers at once, then `bytes` of filler in chunks: the body never ends within a sane limit. */
  | { kind: 'huge'; bytes: number }
  /** Sends headers, then stalls forever: a body that never finishes. */
  | { kind: 'stall-body' }
  /** Closes the socket without answering, as a crashed backend does. */
  | { kind: 'reset' }
  /** Never answers at all. */
  | { kind: 'hang' };

export type AiHandler = (request: RecordedAiRequest) => AiBehaviour | Promise<AiBehaviour>;

export interface AiServer {
  /** Base URL, `http://127.0.0.1:<port>`. */
  url: string;
  requests: RecordedAiRequest[];
  /** Replaces how the server answers from now on. */
  respond(handler: AiHandler | AiBehaviour): void;
  /** Resolves once `count` requests have arrived in total. */
  waitForRequests(count: number): Promise<RecordedAiRequest[]>;
  close(): Promise<void>;
}

export const replyWith = (reply: string): AiBehaviour => ({ kind: 'json', body: { reply } });

export async function startAiServer(initial: AiHandler | AiBehaviour = replyWith('ok')): Promise<AiServer> {
  let handler: AiHandler = toHandler(initial);
  const requests: RecordedAiRequest[] = [];
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  const server = createServer((req, res) => {
    void handle(req, res);
  });
  const sockets = new Set<import('node:net').Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // kept as text: the test asserts on what arrived
    }
    const recorded: RecordedAiRequest = {
      method: req.method ?? '',
      path: req.url ?? '',
      headers: req.headers,
      body,
      at: performance.now(),
    };
    requests.push(recorded);
    for (const waiter of [...waiters]) {
      if (requests.length >= waiter.count) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
    const behaviour = await handler(recorded);
    await act(behaviour, res);
  }

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    respond(next) {
      handler = toHandler(next);
    },
    async waitForRequests(count) {
      if (requests.length < count) await new Promise<void>((resolve) => waiters.push({ count, resolve }));
      return requests.slice(0, count);
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A URL on 127.0.0.1 where nothing listens, so a connection is refused. */
export async function refusedUrl(): Promise<string> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

function drainOrClose(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

function toHandler(value: AiHandler | AiBehaviour): AiHandler {
  return typeof value === 'function' ? value : () => value;
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function act(behaviour: AiBehaviour, res: ServerResponse): Promise<void> {
  switch (behaviour.kind) {
    case 'json':
    case 'raw': {
      if (behaviour.delayMs) await delay(behaviour.delayMs);
      if (res.destroyed) return;
      const text = behaviour.kind === 'json' ? JSON.stringify(behaviour.body) : behaviour.body;
      const contentType = behaviour.kind === 'json' ? 'application/json' : (behaviour.contentType ?? 'text/plain');
      res.writeHead(behaviour.status ?? 200, { 'content-type': contentType });
      res.end(text);
      return;
    }
    case 'huge': {
      // No content-length: the client must count what it reads instead of trusting a header.
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      let sent = 0;
      while (sent < behaviour.bytes && !res.destroyed) {
        if (!res.write(chunk)) await drainOrClose(res);
        sent += chunk.length;
      }
      if (!res.destroyed) res.end();
      return;
    }
    case 'stall-body':
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"reply":');
      return;
    case 'reset':
      res.socket?.destroy();
      return;
    case 'hang':
      return;
  }
}
