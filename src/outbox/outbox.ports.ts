// What the outbox needs from the sessions side: the live session of a ready agent, and word of changes.
import type { EngineSession } from '../engines/engine.js';

export interface OutboxSessions {
  /** The agent's session when it is connected and can send now, else null. Called on every dispatch: keep it O(1). */
  getReadySession(agentId: string): EngineSession | null;
  /** The JID of the account the agent is linked to now (its phone), or null when it is not connected. O(1). */
  account(agentId: string): string | null;
  /** Calls `listener` each time an agent's session becomes ready, so its queued messages resume. Returns an unsubscribe. */
  onSessionReady(listener: (agentId: string) => void): () => void;
  /**
   * Calls `listener` when an agent is deleted; the sessions service awaits the returned promise before it answers,
   * so the agent's queued messages are gone by then. Returns an unsubscribe.
   */
  onAgentDeleted(listener: (agentId: string) => Promise<void>): () => void;
}
