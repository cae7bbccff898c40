// Wires messaging into the app from the container's parts until container.ts builds it itself (see createMessaging).
import type { FastifyInstance } from 'fastify';
import type { Container } from '../container.js';
import type { SessionSupervisor } from '../sessions/session-supervisor.js';
import type { SessionsService } from '../sessions/sessions.service.js';
import { createMessaging } from './messaging.module.js';
import { messagingRoutes } from './messaging.routes.js';
import type { SessionGateway } from './session-gateway.js';

/** The sessions side of the SessionGateway port: ready sessions from the supervisor, removals from the service. */
export function sessionGateway(supervisor: SessionSupervisor, sessions: SessionsService): SessionGateway {
  return {
    getReadySession: (agentId) => supervisor.readySession(agentId),
    onSessionReady(listener) {
      supervisor.on('ready', listener);
      return () => supervisor.off('ready', listener);
    },
    onAgentDeleted(listener) {
      const onRemoved = (agentId: string) => void listener(agentId);
      sessions.on('removed', onRemoved);
      return () => sessions.off('removed', onRemoved);
    },
  };
}

export async function registerMessaging(app: FastifyInstance, container: Container): Promise<void> {
  const messaging = createMessaging({
    config: container.config,
    database: container.database,
    logger: container.logger,
    metrics: container.metrics,
    sessions: sessionGateway(container.supervisor, container.sessions),
  });
  // preClose runs before the container's onClose: sends in flight finish while sessions and database are still up.
  app.addHook('preClose', () => messaging.close());
  await messaging.start();
  await app.register(messagingRoutes, { messaging: messaging.service, auth: container.auth });
}
