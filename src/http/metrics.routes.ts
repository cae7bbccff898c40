// /metrics in Prometheus text format; protected by METRICS_TOKEN when one is set.
import type { FastifyPluginAsync } from 'fastify';
import { keysEqual } from '../auth/agent-keys.js';
import { bearerToken } from '../auth/auth.hooks.js';
import { AppError } from '../errors.js';
import type { Metrics } from '../observability/metrics.js';

export interface MetricsRoutesOptions {
  metrics: Metrics;
  token: string | undefined;
}

export const metricsRoutes: FastifyPluginAsync<MetricsRoutesOptions> = async (app, { metrics, token }) => {
  app.get('/metrics', { schema: { tags: ['health'], summary: 'Prometheus metrics' } }, async (request, reply) => {
    if (token !== undefined) {
      const presented = bearerToken(request);
      if (presented === undefined || !keysEqual(presented, token)) throw new AppError('UNAUTHORIZED');
    }
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
};
