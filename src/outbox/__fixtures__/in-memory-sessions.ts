// The outbox's sessions port for unit tests: a map of ready sessions, and the two notifications on demand.
import type { EngineSession } from '../../engines/engine.js';
import type { OutboxSessions } from '../outbox.ports.js';

export class InMemorySessions implements OutboxSessions {
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
