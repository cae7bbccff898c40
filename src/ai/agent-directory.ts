// The AgentDirectory port over the sessions repository (keys, endpoint) and the supervisor (live connections).
import type { SessionSupervisor } from '../sessions/session-supervisor.js';
import type { SessionsRepository } from '../sessions/sessions.repository.js';
import type { AgentAiSettings, AgentDirectory } from './agent-ports.js';

export interface CachedAgentDirectory extends AgentDirectory {
  /** Forgets the agent's cached settings; called whenever its row is written. */
  invalidate(agentId: string): void;
}

export function createAgentDirectory(
  repo: Pick<SessionsRepository, 'find'>,
  supervisor: Pick<SessionSupervisor, 'readySession' | 'identity'>,
): CachedAgentDirectory {
  // Every inbound message needs the key and endpoint; reading the row each time cost a round trip per message.
  // Entries are dropped by invalidate() on every write to the row (see cachingSessionsRepository), not by a TTL.
  const cache = new Map<string, AgentAiSettings | null>();
  // Bumped on each invalidation, so that a read which started before a write cannot cache the old row.
  const generations = new Map<string, number>();
  return {
    async aiSettings(agentId) {
      if (cache.has(agentId)) return cache.get(agentId) ?? null;
      const generation = generations.get(agentId) ?? 0;
      const row = await repo.find(agentId);
      const settings = row ? { apiKey: row.apiKey, endpointUrlRun: row.endpointUrlRun } : null;
      if ((generations.get(agentId) ?? 0) === generation) cache.set(agentId, settings);
      return settings;
    },
    invalidate(agentId) {
      cache.delete(agentId);
      generations.set(agentId, (generations.get(agentId) ?? 0) + 1);
    },
    connection(agentId) {
      const session = supervisor.readySession(agentId);
      const identity = supervisor.identity(agentId);
      if (!session || !identity) return null;
      const setTyping = session.setTyping?.bind(session);
      return setTyping ? { identity, setTyping } : { identity };
    },
  };
}

/**
 * The sessions repository with every write reported to `onWrite` before and after it runs, so a cache over the rows
 * (the agent directory) is invalidated by whoever writes: SessionsService, the supervisor, the lazy key adoption.
 */
export function cachingSessionsRepository(
  repo: SessionsRepository,
  onWrite: (agentId: string) => void,
): SessionsRepository {
  const around = async <T>(agentId: string, write: () => Promise<T>): Promise<T> => {
    onWrite(agentId);
    try {
      return await write();
    } finally {
      onWrite(agentId);
    }
  };
  return {
    ...repo,
    insert: (row) => around(row.agentId, () => repo.insert(row)),
    update: (agentId, patch) => around(agentId, () => repo.update(agentId, patch)),
    delete: (agentId) => around(agentId, () => repo.delete(agentId)),
  };
}
