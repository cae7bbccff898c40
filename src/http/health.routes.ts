// /health (liveness) and /health/ready (database and draining; each engine listed, available or not).
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Clock } from '../clock.js';

export interface HealthRoutesOptions {
  ping: () => Promise<void>;
  isDraining: () => boolean;
  /** The service has finished starting (keys loaded, sessions restored or leases taken): unready until then. */
  isStarted: () => boolean;
  startedAt: number;
  clock: Pick<Clock, 'now'>;
  /** Each engine: whether a session could begin to start, and why not. Listed, never a reason to be unready. */
  engines: () => Promise<Record<string, { available: boolean; reason: string | null }>>;
}

const health = z.object({ status: z.string(), uptime: z.number(), timestamp: z.string(), traceId: z.string() });
const engineState = z.object({ available: z.boolean(), reason: z.string().nullable() });
const readiness = health.extend({
  checks: z.object({
    database: z.enum(['ok', 'down']),
    draining: z.boolean(),
    // A missing browser only stops the sessions of that engine (503 ENGINE_UNAVAILABLE on their QR code): the
    // service itself, and every other engine, still serve.
    engines: z.record(z.string(), engineState),
  }),
});

export const healthRoutes: FastifyPluginAsyncZod<HealthRoutesOptions> = async (
  app,
  { ping, isDraining, isStarted, startedAt, clock, engines },
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
        summary:
          'Readiness: the database answers and the service is not draining; each engine is listed as available or not, with the reason',
        response: { 200: readiness, 503: readiness },
      },
    },
    async (request, reply) => {
      const [database, engineStates] = await Promise.all([
        ping().then(
          () => 'ok' as const,
          () => 'down' as const,
        ),
        engines(),
      ]);
      const draining = isDraining();
      const started = isStarted();
      const ready = database === 'ok' && !draining && started;
      return reply.status(ready ? 200 : 503).send({
        status: ready ? 'ok' : started ? 'unavailable' : 'starting',
        ...base(request.id),
        checks: { database, draining, engines: engineStates },
      });
    },
  );
};
