// The outbox's sessions port for unit tests: a map of ready sessions, and the two notifications on demand.
import type { EngineSession } from '../../engines/engine.js';
import type { OutboxSessions } from '../outbox.ports.js';

export class InMemorySessions implements OutboxSessions {
  private readonly ready = new Map<string, EngineSession>();
  private readonly accounts = new Map<string, string>();
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

  isReady(agentId: string): boolean {
    return this.ready.has(agentId);
  }

  async confirmReady(agentId: string): Promise<boolean> {
    return this.isReady(agentId);
  }

  account(agentId: string): string | null {
    return this.ready.has(agentId) ? (this.accounts.get(agentId) ?? null) : null;
  }

  /** The agent's session is connected, as `account` (a phone JID). */
  setReady(agentId: string, session: EngineSession, account = '6281100000001@c.us'): void {
    this.ready.set(agentId, session);
    this.accounts.set(agentId, account);
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
