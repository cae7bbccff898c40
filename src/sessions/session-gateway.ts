// The sessions side of messaging's SessionGateway port: ready sessions from the supervisor, deletions from the service.
import type { SessionGateway } from '../messaging/session-gateway.js';
import type { SessionSupervisor } from './session-supervisor.js';
import type { SessionsService } from './sessions.service.js';

export function createSessionGateway(supervisor: SessionSupervisor, sessions: SessionsService): SessionGateway {
  return {
    getReadySession: (agentId) => supervisor.readySession(agentId),
    onSessionReady(listener) {
      supervisor.on('ready', listener);
      return () => supervisor.off('ready', listener);
    },
    onAgentDeleted: (listener) => sessions.onRemoval(listener),
  };
}
