// The live state of every session, whichever member runs it. A session this process runs is read from its supervisor;
// any other one as its owner last published it: a row of `session_live`, and a NOTIFY on `wamt_session_change` that
// every member hears. With one process (PGlite) there is nothing to publish: the board is the supervisor.
import { EventEmitter } from 'node:events';
import type { Database, Row } from '../db/client.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { LiveState, SessionSupervisor } from './session-supervisor.js';

export interface BoardEvents {
  /** Anything in the agent's live state changed, here or on another member. */
  change: [agentId: string];
  /** The agent was deleted, here or on another member. */
  removed: [agentId: string];
}

export interface BoardEntry {
  liveState: LiveState;
  /** The member that published it (this one for a local session); null when nobody runs the session. */
  owner: string | null;
}

/** What the board reads of the local supervisor. */
export interface LocalSessions extends Pick<SessionSupervisor, 'knows' | 'snapshot'> {
  on(event: 'change', listener: (agentId: string) => void): unknown;
}

export interface SessionBoardOptions {
  supervisor: LocalSessions;
  database: Database;
  logger: Logger;
  instanceId: string;
  /** Other members may run sessions: publish the local ones, and listen to theirs. */
  shared: boolean;
}

const CHANNEL = 'wamt_session_change';
/** NOTIFY payloads stop at 8,000 bytes: past this, the message names the agent and readers fetch the row. */
const MAX_PAYLOAD = 7_500;

const IDLE: LiveState = {
  isReady: false,
  hasClient: false,
  sessionState: 'idle',
  qr: null,
  qrUpdatedAt: null,
  pairingCode: null,
  me: null,
  lastError: null,
};

interface Notice {
  agentId: string;
  /** The member that runs the session now. */
  owner?: string;
  /** The member that stopped running it: readers drop what it published, and nothing newer. */
  from?: string;
  /** With `from`: it stopped to hand the session over; its last state stands until the next owner publishes. */
  moving?: boolean;
  state?: LiveState;
  removed?: boolean;
}

export class SessionBoard extends EventEmitter<BoardEvents> {
  /** Sessions other members run, as they last published them. */
  private readonly remote = new Map<string, BoardEntry>();
  /** Local changes waiting to be published, one write per agent however many changes came meanwhile. */
  private readonly unpublished = new Set<string>();
  /** Local sessions being handed to another member, with their state when the hand-over began. */
  private readonly handingOver = new Map<string, LiveState>();
  private publishing: Promise<void> | undefined;
  private unlisten: (() => Promise<void>) | undefined;

  constructor(private readonly options: SessionBoardOptions) {
    super();
    this.setMaxListeners(0);
    options.supervisor.on('change', (agentId) => {
      this.emit('change', agentId);
      if (options.shared) this.publishLater(agentId);
    });
  }

  /** Loads what the other members published, and listens for what they publish next. */
  async start(): Promise<void> {
    if (!this.options.shared) return;
    this.unlisten = await this.options.database.listen(
      CHANNEL,
      (payload) => this.onNotice(payload),
      () => void this.reload(),
    );
    await this.reload();
  }

  async close(): Promise<void> {
    await this.unlisten?.();
    await this.publishing;
  }

  /** The agent's live state as the cluster knows it. */
  entry(agentId: string): BoardEntry {
    const { supervisor, instanceId } = this.options;
    if (supervisor.knows(agentId)) return { liveState: supervisor.snapshot(agentId), owner: instanceId };
    return this.remote.get(agentId) ?? { liveState: IDLE, owner: null };
  }

  /**
   * The agent's entry read again from the table when another member may run it: what it published may not have
   * reached this member yet.
   */
  async refresh(agentId: string): Promise<BoardEntry> {
    if (this.options.shared && !this.options.supervisor.knows(agentId)) await this.reload(agentId);
    return this.entry(agentId);
  }

  /** Resolves once every local change made so far is published (the state other members read is current). */
  async published(): Promise<void> {
    while (this.publishing) await this.publishing;
  }

  /**
   * Whether a send for the agent may be accepted: its session is connected, here or on another member, or moving
   * between members with its login (it goes out once the next owner runs it). O(1): read on every send request.
   */
  isReady(agentId: string): boolean {
    return accepting(this.entry(agentId).liveState);
  }

  /** The JID of the account the agent is linked to now, wherever its session runs (or moves). */
  account(agentId: string): string | null {
    const { liveState } = this.entry(agentId);
    return accepting(liveState) ? liveState.me : null;
  }

  /**
   * The session stops here because its lease goes to another member (which resumes it from its stored login): when it
   * is connected, every member keeps its last state, with no owner, until that member publishes, so that sends are still accepted and
   * go out once the session runs again, rather than refused for the second or so the move takes.
   */
  handOver(agentId: string): void {
    const { supervisor } = this.options;
    if (!supervisor.knows(agentId)) return;
    const snapshot = supervisor.snapshot(agentId);
    // Only a connected session: a QR code or a failure shown by a member that stopped would mislead.
    if (!snapshot.isReady) return;
    const moving: LiveState = { ...snapshot, isReady: false, hasClient: false, sessionState: 'moving' };
    this.handingOver.set(agentId, moving);
    this.remote.set(agentId, { liveState: moving, owner: null });
  }

  /** The agent was deleted here: every member forgets it. */
  async removed(agentId: string): Promise<void> {
    this.remote.delete(agentId);
    this.emit('removed', agentId);
    if (!this.options.shared) return;
    const { database } = this.options;
    await database.query('DELETE FROM session_live WHERE agent_id = $1', [agentId]);
    const notice: Notice = { agentId, from: this.options.instanceId, removed: true };
    await database.query('SELECT pg_notify($1, $2)', [CHANNEL, JSON.stringify(notice)]);
  }

  private publishLater(agentId: string): void {
    this.unpublished.add(agentId);
    if (this.publishing) return;
    this.publishing = (async () => {
      while (this.unpublished.size > 0) await this.publish();
    })().finally(() => {
      this.publishing = undefined;
    });
  }

  /**
   * Writes each changed local session's state, then tells the others. A session this process no longer runs (its
   * lease moved) is published as run by nobody, unless another member has published it since. A failure is logged:
   * the next change publishes again.
   */
  private async publish(): Promise<void> {
    const { database, supervisor, instanceId, logger } = this.options;
    const agentIds = [...this.unpublished];
    this.unpublished.clear();
    for (const agentId of agentIds) {
      const running = supervisor.knows(agentId);
      const last = running ? undefined : this.handingOver.get(agentId);
      if (!running) this.handingOver.delete(agentId);
      const notice: Notice = running
        ? { agentId, owner: instanceId, state: supervisor.snapshot(agentId) }
        : { agentId, from: instanceId, state: last ?? IDLE, ...(last ? { moving: true } : {}) };
      try {
        if (running) {
          await database.query(
            `INSERT INTO session_live (agent_id, owner, state, updated_at) VALUES ($1, $2, $3, now())
             ON CONFLICT (agent_id) DO UPDATE SET owner = $2, state = $3, updated_at = now()`,
            [agentId, instanceId, JSON.stringify(notice.state)],
          );
        } else {
          await database.query(
            `UPDATE session_live SET owner = NULL, state = $3, updated_at = now() WHERE agent_id = $1 AND owner = $2`,
            [agentId, instanceId, JSON.stringify(notice.state)],
          );
        }
        const text = JSON.stringify(notice);
        const payload = text.length <= MAX_PAYLOAD ? text : JSON.stringify({ agentId } satisfies Notice);
        await database.query('SELECT pg_notify($1, $2)', [CHANNEL, payload]);
      } catch (err) {
        logger.warn({ event: 'session.publish_failed', agentId, err: errorMessage(err) });
      }
    }
  }

  private onNotice(payload: string): void {
    let notice: Notice;
    try {
      notice = JSON.parse(payload) as Notice;
    } catch {
      return;
    }
    const { agentId } = notice;
    if (notice.owner === this.options.instanceId || notice.from === this.options.instanceId) return; // our own
    if (notice.removed) {
      this.remote.delete(agentId);
      this.emit('removed', agentId);
      return;
    }
    if (notice.from) {
      if (this.remote.get(agentId)?.owner !== notice.from) return; // a newer owner published since
      this.remote.set(agentId, { liveState: notice.moving && notice.state ? notice.state : IDLE, owner: null });
      this.emit('change', agentId);
      return;
    }
    if (notice.state && notice.owner) {
      this.remote.set(agentId, { liveState: notice.state, owner: notice.owner });
      this.emit('change', agentId);
      return;
    }
    void this.reload(agentId);
  }

  /** Reads the published states again: all of them, or one agent's (a notice too large to carry it). */
  private async reload(agentId?: string): Promise<void> {
    const { database, instanceId, logger } = this.options;
    try {
      const rows = await database.query(
        `SELECT agent_id, owner, state FROM session_live ${agentId ? 'WHERE agent_id = $1' : ''}`,
        agentId ? [agentId] : [],
      );
      if (!agentId) this.remote.clear();
      for (const row of rows) {
        const entry = toEntry(row);
        if (entry.owner === instanceId) continue;
        this.remote.set(String(row.agent_id), entry);
        this.emit('change', String(row.agent_id));
      }
    } catch (err) {
      logger.warn({ event: 'session.board_reload_failed', err: errorMessage(err) });
    }
  }
}

function accepting(state: LiveState): boolean {
  return state.isReady || state.sessionState === 'moving';
}

function toEntry(row: Row): BoardEntry {
  const state = (typeof row.state === 'string' ? JSON.parse(row.state) : row.state) as LiveState;
  return { liveState: state, owner: row.owner == null ? null : String(row.owner) };
}
