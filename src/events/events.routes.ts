// GET /events/sessions: a Server-Sent Events stream of session changes for the dashboard (admin key).
import type { ServerResponse } from 'node:http';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Auth } from '../auth/auth.hooks.js';
import type { Clock } from '../clock.js';
import { AppError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { SessionBoard } from '../sessions/session-board.js';
import type { SessionSupervisor } from '../sessions/session-supervisor.js';
import type { SessionsService } from '../sessions/sessions.service.js';
import { type SessionEvent, SessionEvents } from './session-events.js';

export interface EventsRoutesOptions {
  sessions: SessionsService;
  supervisor: SessionSupervisor;
  /** Sessions of every member: a stream on any member shows the changes of all. */
  board: SessionBoard;
  auth: Auth;
  logger: Logger;
  clock: Clock;
  /** How often a comment line keeps proxies and the client from timing the stream out. */
  heartbeatMs?: number;
  /** A client this far behind is cut off; it reconnects and starts again from a fresh list. */
  maxBufferedBytes?: number;
}

const DESCRIPTION = `A Server-Sent Events stream (\`text/event-stream\`) of session changes, for the dashboard.
Needs the admin key in \`Authorization: Bearer\`; read it with \`fetch()\` and a stream reader, since
\`EventSource\` cannot send headers.

Events:
- \`hello\` \`{ heartbeatMs }\`: the stream is open. Load \`GET /sessions\` now; later changes arrive as events.
- \`session\` \`SessionStatus\` (as \`GET /sessions/{agentId}\`): the session changed: status, new QR code,
  connected number, error.
- \`removed\` \`{ agentId }\`: the session was deleted.

A comment line (\`: heartbeat\`) comes about every 15 s. The stream ends when the service shuts down; reconnect with backoff.

Errors come before the stream starts, as the usual JSON error envelope: 401 \`UNAUTHORIZED\` (no key or a wrong one),
403 \`FORBIDDEN\` (an agent's key: the stream shows every agent), 503 \`SERVICE_UNAVAILABLE\` (shutting down).`;

function formatEvent(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

export const eventsRoutes: FastifyPluginAsyncZod<EventsRoutesOptions> = async (app, options) => {
  const { auth, clock, heartbeatMs = 15_000, maxBufferedBytes = 1024 * 1024 } = options;
  const events = new SessionEvents(options);
  const open = new Set<() => void>();
  let closing = false;

  // Fastify waits for open connections before onClose; a stream never finishes by itself, so end them first.
  app.addHook('preClose', async () => {
    closing = true;
    for (const end of [...open]) end();
  });

  app.get(
    '/events/sessions',
    {
      onRequest: auth.admin(),
      schema: {
        tags: ['sessions'],
        security: [{ bearerAuth: [] }],
        summary: 'Live session changes as Server-Sent Events (admin key)',
        description: DESCRIPTION,
        // Only the stream is declared: one `produces` covers every status, and errors are JSON (see the description).
        produces: ['text/event-stream'],
        response: {
          200: z.string().describe('`event: session|removed|hello` and `data: <JSON>` lines; `: heartbeat` comments'),
        },
      },
    },
    async (request, reply) => {
      if (closing) throw new AppError('SERVICE_UNAVAILABLE', 'The service is shutting down.');
      reply.hijack();
      const res: ServerResponse = reply.raw;
      // Hooks (request id, CORS) set headers on the reply; a hijacked reply must send them itself.
      for (const [name, value] of Object.entries(reply.getHeaders()))
        if (value !== undefined) res.setHeader(name, value);
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-accel-buffering': 'no',
      });
      const log = request.log;
      let ended = false;
      const write = (chunk: string) => {
        if (ended) return;
        if (res.writableLength > maxBufferedBytes) {
          log.warn({ event: 'events.stream_slow_client' }, 'client too slow: closing its event stream');
          end();
          return;
        }
        res.write(chunk);
      };
      const onEvent = (event: SessionEvent) => write(formatEvent(event.type, event.data));
      const unsubscribe = events.subscribe(onEvent);
      const heartbeat = clock.setInterval(() => write(': heartbeat\n\n'), heartbeatMs, { background: true });
      const end = () => {
        if (ended) return;
        ended = true;
        heartbeat.cancel();
        unsubscribe();
        open.delete(end);
        if (!res.writableEnded) res.end();
        log.debug({ event: 'events.stream_closed', subscribers: events.subscriberCount }, 'event stream closed');
      };
      open.add(end);
      res.on('close', end);
      write(formatEvent('hello', { heartbeatMs }));
      log.debug({ event: 'events.stream_opened', subscribers: events.subscriberCount }, 'event stream opened');
    },
  );
};
