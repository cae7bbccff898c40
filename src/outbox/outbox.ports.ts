// What the outbox needs from the sessions side: the live session of a ready agent, and word of changes.
import type { EngineSession } from '../engines/engine.js';
import type { PacingProfile } from '../pacing/pacing.schemas.js';

export interface OutboxSessions {
  /**
   * The agent's session when it runs in this process, connected and able to send now, else null. Called on every
   * dispatch: keep it O(1).
   */
  getReadySession(agentId: string): EngineSession | null;
  /** Whether the agent is connected, in this process or on another member: a send request may be accepted. O(1). */
  isReady(agentId: string): boolean;
  /**
   * Whether the agent is connected, read again from where its owner publishes its state (another member's session
   * may have connected a moment ago, its notice still on the way). Called only when isReady said no.
   */
  confirmReady(agentId: string): Promise<boolean>;
  /** The JID of the account the agent is linked to now (its phone), wherever it runs; null when not connected. O(1). */
  account(agentId: string): string | null;
  /** Calls `listener` each time an agent's session becomes ready, so its queued messages resume. Returns an unsubscribe. */
  onSessionReady(listener: (agentId: string) => void): () => void;
  /**
   * Calls `listener` when an agent is deleted; the sessions service awaits the returned promise before it answers,
   * so the agent's queued messages are gone by then. Returns an unsubscribe.
   */
  onAgentDeleted(listener: (agentId: string) => Promise<void>): () => void;
}

/** Which member dispatches which agent's messages (docs/cluster.md): the one that holds the agent's lease. */
export interface OutboxOwnership {
  /** One process owns everything (PGlite): nothing to hand over, nobody to wake. */
  readonly single: boolean;
  readonly instanceId: string;
  /** The epoch of this member's lease on the agent while it is valid by the local clock; null otherwise. O(1). */
  epochOf(agentId: string): number | null;
}

/**
 * Per-agent pacing (src/pacing/): which agents send like a person, and their daily cap on new contacts. An agent
 * without a profile sends as fast as its token bucket lets it, as when the port is absent.
 */
export interface OutboxPacing {
  /** The agent's profile, null when it is not paced. Asked on every submit and every dispatch: O(1). */
  profile(agentId: string): PacingProfile | null;
  /** Before a message to `toJid` is committed: throws NEW_CONTACT_LIMIT when it would be one new contact too many. */
  admit(agentId: string, toJid: string, limit: number): Promise<void>;
  /** Calls `listener` when an agent's profile changes; returns an unsubscribe. */
  onChange(listener: (agentId: string) => void): () => void;
  /** A number in [0, 1) that picks each gap (Math.random when absent). */
  random?(): number;
}
