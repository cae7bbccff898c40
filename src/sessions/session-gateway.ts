// The sessions side of the outbox's OutboxSessions port: ready sessions from the supervisor, deletions from the service.
import type { OutboxSessions } from '../outbox/outbox.ports.js';
import type { SessionSupervisor } from './session-supervisor.js';
import type { SessionsService } from './sessions.service.js';

export function createSessionGateway(supervisor: SessionSupervisor, sessions: SessionsService): OutboxSessions {
  return {
    getReadySession: (agentId) => supervisor.readySession(agentId),
    account: (agentId) => supervisor.identity(agentId)?.me ?? null,
    onSessionReady(listener) {
      supervisor.on('ready', listener);
      return () => supervisor.off('ready', listener);
    },
    onAgentDeleted: (listener) => sessions.onRemoval(listener),
  };
}
