// Builds the Fastify app from the container: hooks, error handling, schema compilers and every route plugin.

import { randomUUID } from 'node:crypto';
import cors from '@fastify/cors';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { runRoutes } from './ai/run.routes.js';
import type { Container } from './container.js';
import { dashboardRoutes } from './dashboard/dashboard.routes.js';
import { eventsRoutes } from './events/events.routes.js';
import { registerDocs } from './http/docs.js';
import { installErrorHandlers } from './http/error-handler.js';
import { healthRoutes } from './http/health.routes.js';
import { metricsRoutes } from './http/metrics.routes.js';
import { serializerCompiler } from './http/serializer.js';
import { messagingRoutes } from './messaging/messaging.routes.js';
import { lazyChildLogger } from './observability/lazy-logger.js';
import { sandboxRoutes } from './sandbox/sandbox.routes.js';
import { sessionsRoutes } from './sessions/sessions.routes.js';

const VALID_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

export type App = FastifyInstance;

export async function buildApp(container: Container): Promise<App> {
  const { config, logger, metrics } = container;
  const baseLogger: FastifyBaseLogger = logger;
  const app = Fastify({
    loggerInstance: baseLogger,
    logController: new LogController({ requestIdLogLabel: 'traceId' }),
    childLoggerFactory: lazyChildLogger,
    genReqId: (req) => {
      const header = req.headers['x-request-id'];
      return typeof header === 'string' && VALID_REQUEST_ID.test(header) ? header : randomUUID();
    },
    bodyLimit: 1024 * 1024,
    forceCloseConnections: 'idle',
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installErrorHandlers(app, metrics);

  // Callback hooks rather than async ones: nothing here waits, and every request runs them.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    done();
  });
  app.addHook('preHandler', (request, reply, done) => {
    const agentId = (request.params as Record<string, unknown> | undefined)?.agentId;
    if (typeof agentId === 'string') {
      request.log = request.log.child({ agentId });
      reply.log = request.log; // the "request completed" line is written through the reply's logger
    }
    done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.httpDuration.record(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
    done();
  });
  app.addHook('onClose', () => container.close());

  if (config.corsOrigins.length > 0) await app.register(cors, { origin: config.corsOrigins });
  await registerDocs(app);

  await app.register(healthRoutes, {
    ping: () => container.database.ping(),
    isDraining: () => container.draining,
    startedAt: container.startedAt,
    clock: container.clock,
  });
  await app.register(metricsRoutes, { metrics, token: config.metricsToken });
  await app.register(sessionsRoutes, { sessions: container.sessions, auth: container.auth });
  await app.register(messagingRoutes, { messaging: container.messaging.service, auth: container.auth });
  await app.register(runRoutes, { run: container.run, auth: container.auth });
  await app.register(eventsRoutes, {
    sessions: container.sessions,
    supervisor: container.supervisor,
    auth: container.auth,
    logger,
    clock: container.clock,
  });
  await app.register(dashboardRoutes);
  if (container.sandbox) {
    await app.register(sandboxRoutes, {
      sandbox: container.sandbox,
      auth: container.auth,
      defaultCountryCode: config.defaultCountryCode,
      settled: (agentId) => container.supervisor.settled(agentId),
    });
  }
  await app.ready();
  return app;
}
