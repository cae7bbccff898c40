// A webhook receiver for tests: a real HTTP server on 127.0.0.1 that records every delivery and answers as told.
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Webhook } from 'standardwebhooks';

export interface ReceivedWebhook {
  headers: IncomingHttpHeaders;
  body: string;
  /** The parsed envelope. */
  event: { id: string; type: string; timestamp: string; agentId: string | null; data: Record<string, unknown> };
  /** The status this receiver answered. */
  answered: number | 'hang' | 'huge';
}

/** What the receiver does with one request: a status, a 10 MB 200, or never answering. */
export type ReceiverBehaviour = number | 'hang' | 'huge';

export interface WebhookReceiver {
  url: string;
  received: ReceivedWebhook[];
  /** Those answered 2xx. */
  accepted(): ReceivedWebhook[];
  respond(behaviour: ReceiverBehaviour | ((index: number) => ReceiverBehaviour)): void;
  close(): Promise<void>;
}

export async function startWebhookReceiver(initial: ReceiverBehaviour = 200): Promise<WebhookReceiver> {
  let behaviour: (index: number) => ReceiverBehaviour = () => initial;
  const received: ReceivedWebhook[] = [];
  const sockets = new Set<Socket>();
  const answer = (res: ServerResponse, how: ReceiverBehaviour) => {
    if (how === 'hang') return;
    if (how === 'huge') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 120);
      let left = 10 * 1024 * 1024;
      const write = () => {
        while (left > 0) {
          left -= chunk.length;
          if (!res.write(chunk)) return void res.once('drain', write);
        }
        res.end();
      };
      write();
      return;
    }
    res.writeHead(how, { 'content-type': 'text/plain' }).end('ok');
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const how = behaviour(received.length);
      received.push({ headers: req.headers, body, event: JSON.parse(body), answered: how });
      answer(res, how);
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    accepted: () => received.filter((r) => typeof r.answered === 'number' && r.answered < 300),
    respond(next) {
      behaviour = typeof next === 'function' ? next : () => next;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Verifies a delivery's signature with the Standard Webhooks reference library; throws when it does not verify. */
export function verify(secret: string, delivery: ReceivedWebhook): unknown {
  const header = (name: string) => String(delivery.headers[name] ?? '');
  return new Webhook(secret).verify(delivery.body, {
    'webhook-id': header('webhook-id'),
    'webhook-timestamp': header('webhook-timestamp'),
    'webhook-signature': header('webhook-signature'),
  });
}
