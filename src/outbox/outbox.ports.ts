// What messaging needs from the sessions service: the live session of a ready agent, and word of changes.
import type { EngineSession } from '../engines/engine.js';

export interface SessionGateway {
  /** The agent's session when it is connected and can send now, else null. Called on every dispatch: keep it O(1). */
  getReadySession(agentId: string): EngineSession | null;
  /** Calls `listener` each time an agent's session becomes ready, so its queued messages resume. Returns an unsubscribe. */
  onSessionReady(listener: (agentId: string) => void): () => void;
  /**
   * Calls `listener` when an agent is deleted; the sessions service awaits the returned promise before it answers,
   * so the agent's queued messages are gone by then. Returns an unsubscribe.
   */
  onAgentDeleted(listener: (agentId: string) => Promise<void>): () => void;
}

/** A gateway for tests and for wiring: a map of ready sessions plus the two notifications. */
export class InMemorySessionGateway implements SessionGateway {
  private readonly ready = new Map<string, EngineSession>();
  private readonly readyListeners = new Set<(agentId: string) => void>();
  private readonly deletedListeners = new Set<(agentId: string) => Promise<void>>();

  getReadySession(agentId: string): EngineSession | null {
    return this.ready.get(agentId) ?? null;
  }

  onSessionReady(listener: (agentId: string) => void): () => void {
    this.readyListeners.add(listener);
    return () => this.readyListeners.delete(listener);
  }

  onAgentDeleted(listener: (agentId: string) => Promise<void>): () => void {
    this.deletedListeners.add(listener);
    return () => this.deletedListeners.delete(listener);
  }

  setReady(agentId: string, session: EngineSession): void {
    this.ready.set(agentId, session);
    for (const listener of this.readyListeners) listener(agentId);
  }

  setNotReady(agentId: string): void {
    this.ready.delete(agentId);
  }

  async delete(agentId: string): Promise<void> {
    this.ready.delete(agentId);
    await Promise.all([...this.deletedListeners].map((listener) => listener(agentId)));
  }
}
