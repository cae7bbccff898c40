// The sessions side of the outbox's OutboxSessions port: sessions running here from the supervisor, the state of every
// session (here or on another member) from the board, deletions from the service.
import type { OutboxSessions } from '../outbox/outbox.ports.js';
import type { SessionBoard } from './session-board.js';
import type { SessionSupervisor } from './session-supervisor.js';
import type { SessionsService } from './sessions.service.js';

export function createSessionGateway(
  supervisor: SessionSupervisor,
  sessions: SessionsService,
  board: SessionBoard,
): OutboxSessions {
  return {
    getReadySession: (agentId) => supervisor.readySession(agentId),
    isReady: (agentId) => board.isReady(agentId),
    confirmReady: async (agentId) => {
      await board.refresh(agentId);
      return board.isReady(agentId);
    },
    account: (agentId) => board.account(agentId),
    onSessionReady(listener) {
      supervisor.on('ready', listener);
      return () => supervisor.off('ready', listener);
    },
    onAgentDeleted: (listener) => sessions.onRemoval(listener),
  };
}
