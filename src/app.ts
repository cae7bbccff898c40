// Builds the Fastify app from the container: hooks, error handling, schema compilers and every route plugin.

import { randomUUID } from 'node:crypto';
import cors from '@fastify/cors';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { activityRoutes } from './activity/activity.routes.js';
import { runRoutes } from './ai/run.routes.js';
import { clusterRoutes } from './cluster/cluster.routes.js';
import type { Container } from './container.js';
import { dashboardRoutes } from './dashboard/dashboard.routes.js';
import { eventsRoutes } from './events/events.routes.js';
import { historyRoutes } from './history/history.routes.js';
import { DEFAULT_BODY_LIMIT, mediaBodyLimit } from './http/body-limits.js';
import { registerDocs } from './http/docs.js';
import { frameworkErrorHandler, installErrorHandlers, MAX_PARAM_LENGTH } from './http/error-handler.js';
import { healthRoutes } from './http/health.routes.js';
import { metricsRoutes } from './http/metrics.routes.js';
import { setSecurityHeaders } from './http/security-headers.js';
import { serializerCompiler } from './http/serializer.js';
import { mediaRoutes } from './media-store/media.routes.js';
import { messagingRoutes } from './messaging/messaging.routes.js';
import { lazyChildLogger } from './observability/lazy-logger.js';
import { sandboxRoutes } from './sandbox/sandbox.routes.js';
import { sessionsRoutes } from './sessions/sessions.routes.js';
import { webhooksRoutes } from './webhooks/webhooks.routes.js';

const VALID_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;
/** Headers are a few KB: ten seconds is plenty on any link, and short enough against slowloris. */
const HEADERS_TIMEOUT_MS = 10_000;

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
    // Routes that take more say so (the text, media and run routes); authentication comes before any of it is read.
    bodyLimit: DEFAULT_BODY_LIMIT,
    forceCloseConnections: 'idle',
    // A body (or headers) trickled in slowly is cut off; a long answer (the QR wait, the event stream) is not.
    requestTimeout: config.requestTimeoutMs,
    http: {
      headersTimeout: Math.min(config.requestTimeoutMs, HEADERS_TIMEOUT_MS),
      // Node checks the two timeouts on this period (30 s by default, which would double a 30 s timeout).
      connectionsCheckingInterval: Math.min(1_000, Math.ceil(config.requestTimeoutMs / 10)),
    },
    trustProxy: config.trustProxy,
    // Router errors (a path that is not UTF-8, a parameter past the limit) answer in the error envelope too.
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    frameworkErrors: frameworkErrorHandler(metrics),
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installErrorHandlers(app, metrics);

  // Callback hooks rather than async ones: nothing here waits, and every request runs them.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    setSecurityHeaders(request, reply);
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
  // While draining, every answer closes its connection: a keep-alive client would otherwise hold the server open
  // until the shutdown timeout, and the process would exit 1 without stopping its engines.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (container.draining) reply.header('connection', 'close');
    done(null, payload);
  });
  app.addHook('onClose', () => container.close());

  if (config.corsOrigins.length > 0) await app.register(cors, { origin: config.corsOrigins });
  await registerDocs(app);

  await app.register(healthRoutes, {
    ping: () => container.database.ping(),
    isDraining: () => container.draining,
    isStarted: () => container.started,
    startedAt: container.startedAt,
    clock: container.clock,
    engines: () => container.supervisor.engineAvailability(),
  });
  await app.register(metricsRoutes, { metrics, token: config.metricsToken });
  await app.register(sessionsRoutes, {
    sessions: container.sessions,
    auth: container.auth,
    forwarder: container.forwarder,
  });
  await app.register(messagingRoutes, {
    messaging: container.messaging.service,
    auth: container.auth,
    mediaBodyLimit: mediaBodyLimit(config.mediaJsonMaxBytes),
    mediaBudget: container.messaging.mediaBudget,
    uploadDir: config.tempDir,
    uploadMaxBytes: Math.max(...Object.values(config.mediaLimits)),
  });
  await app.register(historyRoutes, {
    history: container.history,
    auth: container.auth,
    defaultCountryCode: config.defaultCountryCode,
  });
  await app.register(activityRoutes, { activity: container.activity, auth: container.auth });
  await app.register(webhooksRoutes, {
    repository: container.webhooks.repository,
    auth: container.auth,
    clock: container.clock,
    agentExists: (agentId) => container.history.agentExists(agentId),
    checkAddress: container.webhooks.checkAddress,
  });
  await app.register(runRoutes, { run: container.run, auth: container.auth });
  await app.register(clusterRoutes, { cluster: container.cluster, auth: container.auth });
  await app.register(eventsRoutes, {
    sessions: container.sessions,
    supervisor: container.supervisor,
    board: container.board,
    auth: container.auth,
    logger,
    clock: container.clock,
  });
  await app.register(dashboardRoutes);
  await app.register(mediaRoutes, { files: container.media.files });
  if (container.sandbox) {
    await app.register(sandboxRoutes, {
      sandbox: container.sandbox,
      auth: container.auth,
      defaultCountryCode: config.defaultCountryCode,
      // The change is persisted, and published for the other members, before the route answers.
      settled: async (agentId) => {
        await container.supervisor.settled(agentId);
        await container.board.published();
      },
      forwarder: container.forwarder,
    });
  }
  await app.ready();
  return app;
}
