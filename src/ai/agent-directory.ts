// The AgentDirectory port over the sessions repository (keys, endpoint) and the supervisor (live connections).
import type { SessionSupervisor } from '../sessions/session-supervisor.js';
import type { SessionsRepository } from '../sessions/sessions.repository.js';
import type { AgentDirectory } from './agent-ports.js';

export function createAgentDirectory(
  repo: Pick<SessionsRepository, 'find'>,
  supervisor: Pick<SessionSupervisor, 'readySession' | 'identity'>,
): AgentDirectory {
  return {
    async aiSettings(agentId) {
      // Read per call rather than cached: the key can be rotated (lazy sync) and the endpoint edited at any time.
      const row = await repo.find(agentId);
      return row ? { apiKey: row.apiKey, endpointUrlRun: row.endpointUrlRun } : null;
    },
    connection(agentId) {
      const session = supervisor.readySession(agentId);
      const identity = supervisor.identity(agentId);
      if (!session || !identity) return null;
      const setTyping = session.setTyping?.bind(session);
      const downloadMedia = session.downloadMedia?.bind(session);
      return { identity, ...(setTyping ? { setTyping } : {}), ...(downloadMedia ? { downloadMedia } : {}) };
    },
  };
}
