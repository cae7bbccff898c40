// /health (liveness) and /health/ready (database and draining).
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Clock } from '../clock.js';

export interface HealthRoutesOptions {
  ping: () => Promise<void>;
  isDraining: () => boolean;
  startedAt: number;
  clock: Pick<Clock, 'now'>;
}

const health = z.object({ status: z.string(), uptime: z.number(), timestamp: z.string(), traceId: z.string() });
const readiness = health.extend({ checks: z.object({ database: z.enum(['ok', 'down']), draining: z.boolean() }) });

export const healthRoutes: FastifyPluginAsyncZod<HealthRoutesOptions> = async (
  app,
  { ping, isDraining, startedAt, clock },
) => {
  const base = (traceId: string) => {
    const now = clock.now();
    return { uptime: Math.round((now - startedAt) / 1000), timestamp: new Date(now).toISOString(), traceId };
  };

  app.get(
    '/health',
    { schema: { tags: ['health'], summary: 'Liveness', response: { 200: health } } },
    async (request) => ({ status: 'ok', ...base(request.id) }),
  );

  app.get(
    '/health/ready',
    {
      schema: {
        tags: ['health'],
        summary: 'Readiness: the database answers and the service is not draining',
        response: { 200: readiness, 503: readiness },
      },
    },
    async (request, reply) => {
      const database = await ping().then(
        () => 'ok' as const,
        () => 'down' as const,
      );
      const draining = isDraining();
      const ready = database === 'ok' && !draining;
      return reply
        .status(ready ? 200 : 503)
        .send({ status: ready ? 'ok' : 'unavailable', ...base(request.id), checks: { database, draining } });
    },
  );
};
