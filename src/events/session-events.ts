// Turns the board's events (sessions of every member) into a stream of session snapshots for the dashboard's live view.
import { isAppError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { SessionBoard } from '../sessions/session-board.js';
import type { SessionSupervisor } from '../sessions/session-supervisor.js';
import type { SessionStatus } from '../sessions/sessions.schemas.js';
import type { SessionsService } from '../sessions/sessions.service.js';

export type SessionEvent = { type: 'session'; data: SessionStatus } | { type: 'removed'; data: { agentId: string } };

const MAX_SKIPPED_READS = 5;

export type SessionEventListener = (event: SessionEvent) => void;

export interface SessionEventsOptions {
  sessions: SessionsService;
  board: Pick<SessionBoard, 'on' | 'off'>;
  /** Local sessions persist their transitions after the change event: a read waits for that. */
  supervisor: Pick<SessionSupervisor, 'settled'>;
  logger: Logger;
}

interface Refresh {
  /** Another change came while the status was being read: read it once more. */
  dirty: boolean;
  /** The session was deleted meanwhile: publish `removed` last and drop any status read before it. */
  removed: boolean;
}

/**
 * One subscription to the board, shared by every open stream; attached only while someone listens.
 * A burst of changes for one agent collapses into one read, and that agent's events keep their order.
 */
export class SessionEvents {
  private readonly listeners = new Set<SessionEventListener>();
  private readonly refreshing = new Map<string, Refresh>();

  constructor(private readonly options: SessionEventsOptions) {}

  get subscriberCount(): number {
    return this.listeners.size;
  }

  subscribe(listener: SessionEventListener): () => void {
    if (this.listeners.size === 0) {
      this.options.board.on('change', this.onChange);
      this.options.board.on('removed', this.onRemoved);
    }
    this.listeners.add(listener);
    return () => {
      if (!this.listeners.delete(listener) || this.listeners.size > 0) return;
      this.options.board.off('change', this.onChange);
      this.options.board.off('removed', this.onRemoved);
    };
  }

  private publish(event: SessionEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  private readonly onRemoved = (agentId: string): void => {
    const refresh = this.refreshing.get(agentId);
    if (refresh) refresh.removed = true;
    else this.publish({ type: 'removed', data: { agentId } });
  };

  private readonly onChange = (agentId: string): void => {
    const pending = this.refreshing.get(agentId);
    if (pending) {
      pending.dirty = true;
      return;
    }
    const refresh: Refresh = { dirty: true, removed: false };
    this.refreshing.set(agentId, refresh);
    void this.refresh(agentId, refresh).finally(() => this.refreshing.delete(agentId));
  };

  private async refresh(agentId: string, refresh: Refresh): Promise<void> {
    let skipped = 0;
    while (refresh.dirty && !refresh.removed && this.listeners.size > 0) {
      refresh.dirty = false;
      // The supervisor persists transitions after it emits; wait so the row and the live state agree.
      await this.options.supervisor.settled(agentId);
      const status = await this.read(agentId);
      // A change during the read may still have its status write pending: read again rather than publish a
      // half-updated state (live state 'connected', row 'awaiting_qr'). The cap keeps a busy agent visible.
      if (refresh.dirty && skipped++ < MAX_SKIPPED_READS) continue;
      skipped = 0;
      if (status && !refresh.removed) this.publish({ type: 'session', data: status });
    }
    if (refresh.removed) this.publish({ type: 'removed', data: { agentId } });
  }

  private async read(agentId: string): Promise<SessionStatus | null> {
    try {
      return await this.options.sessions.get(agentId);
    } catch (err) {
      // SESSION_NOT_FOUND: the row went away during a delete; the `removed` event tells the clients.
      if (!(isAppError(err) && err.code === 'SESSION_NOT_FOUND')) {
        this.options.logger.warn({ event: 'events.read_failed', agentId, err }, 'could not read session status');
      }
      return null;
    }
  }
}
