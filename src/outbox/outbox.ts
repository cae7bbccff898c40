// The outbox: every message an agent sends is committed as a row before an engine sees it, then goes FIFO through
// its agent's token bucket to WhatsApp; the request waits a bounded time for the result. One facade over the store
// (what is not durable yet, group commit), the dispatcher (per-agent queues) and the send waits.
import { randomUUID } from 'node:crypto';
import type { Clock, Timer } from '../clock.js';
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import type { MessageAck } from '../engines/engine.js';
import { AppError, errorMessage } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { OutboxDispatcher, type QueuedMessage } from './outbox.dispatcher.js';
import type { OutboxOwnership, OutboxPacing, OutboxSessions } from './outbox.ports.js';
import {
  type NewOutboxMessage,
  type OutboxKind,
  type OutboxMediaSource,
  type OutboxPayload,
  type OutboxRecord,
  OutboxRepository,
  type OutboxStatus,
} from './outbox.repository.js';
import { OutboxStore } from './outbox.store.js';
import { OutboxReceipts } from './receipts.js';
import { RemoteOutcomes } from './remote-outcomes.js';
import { type SendOutcome, SendWaits } from './send-waits.js';
import { TokenBuckets } from './token-bucket.js';

export {
  OUTBOX_KINDS,
  OUTBOX_STATUSES,
  type OutboxKind,
  type OutboxPayload,
  type OutboxStatus,
} from './outbox.repository.js';

export interface OutboxDraft {
  kind: OutboxKind;
  toJid: string;
  payload: OutboxPayload;
  /** A file: committed in chunks before the row (outbox_media_chunks); a file on disk is read while it commits. */
  media?: OutboxMediaSource | null;
}

export interface SubmitContext {
  idempotencyKey?: string | undefined;
  traceId?: string | undefined;
}

export interface SubmitResult {
  delivered: boolean;
  messageId: string;
  status: OutboxStatus;
  waMessageId: string | null;
  /** The preview copy of an image, when one was saved. */
  previewPath?: string | undefined;
}

/** A message's state as the API shows it: never its bytes. */
export interface OutboxMessageView {
  messageId: string;
  agentId: string;
  to: string;
  kind: OutboxKind;
  status: OutboxStatus;
  waMessageId: string | null;
  error: string | null;
  attempts: number;
  createdAt: string;
  updatedAt: string;
  sentAt: string | null;
  /** WhatsApp's receipts: when each first came (ISO 8601), null until it does; the error WhatsApp reported. */
  receipts: {
    server: string | null;
    delivered: string | null;
    read: string | null;
    played: string | null;
    error: string | null;
    errorAt: string | null;
  };
  /** A paced message: when it goes out (ISO 8601), once its agent's dispatcher has planned it; null otherwise. */
  notBefore: string | null;
}

export type OutboxConfig = Pick<
  Config,
  'sendWaitMs' | 'queueMaxPerAgent' | 'rateLimitPerMinute' | 'rateLimitBurst' | 'dbStatementTimeoutMs'
> &
  Partial<Pick<Config, 'mediaInFlightMax'>>;

export interface OutboxDeps {
  database: Database;
  sessions: OutboxSessions;
  /** Which member dispatches which agent (the cluster's leases); one process owns everything without it. */
  ownership?: OutboxOwnership;
  metrics: Metrics;
  logger: Logger;
  clock: Clock;
  config: OutboxConfig;
  /** Send retries after a failed attempt, and the wait before retry n (1 s, 2 s, 4 s by default). */
  retries?: { max?: number; delayMs?: (retry: number) => number } | undefined;
  /** Per-agent pacing profiles and the daily cap on new contacts (src/pacing/); no agent is paced without it. */
  pacing?: OutboxPacing | undefined;
}

export interface Outbox {
  /**
   * Commits the message, queues it, and waits up to SEND_WAIT_MS for its send. Throws SESSION_NOT_READY,
   * RATE_LIMITED (queue full), NEW_CONTACT_LIMIT (a paced agent's daily cap), IDEMPOTENCY_KEY_REUSED, or
   * DATABASE_UNAVAILABLE (nothing was sent).
   */
  submit(agentId: string, draft: OutboxDraft, context?: SubmitContext): Promise<SubmitResult>;
  /** The earlier message sent with this Idempotency-Key, or null; IDEMPOTENCY_KEY_REUSED for another request. */
  findIdempotent(agentId: string, key: string, fingerprint: string | undefined): Promise<SubmitResult | null>;
  /** Throws SESSION_NOT_READY unless the agent can send now. */
  assertReady(agentId: string): Promise<void>;
  get(agentId: string, messageId: string): Promise<OutboxMessageView>;
  /** The message a reaction names (our id or WhatsApp's, sent or received; see OutboxRepository.findMessageRef). */
  findMessageRef(agentId: string, messageId: string): ReturnType<OutboxRepository['findMessageRef']>;
  /** A receipt an engine reported for a message the agent sent: recorded on its row, written behind (receipts.ts). */
  receipt(agentId: string, ack: MessageAck): void;
  /** Messages of the agent accepted and not yet sent or failed, counting those still committing. */
  depth(agentId: string): number;
  /**
   * Boot: drops what deleted agents left, and (one process) queues every message a previous process left; returns
   * how many were queued. In a cluster each owner loads its agents' messages as it takes their leases (adopt).
   */
  resumeAll(): Promise<number>;
  /**
   * This member now holds the agent's lease with this epoch: loads its queued messages (the lease checked in the same
   * statement), and from now on wakes up when another member commits one for it.
   */
  adopt(agentId: string, epoch: number): Promise<void>;
  /**
   * This member gives the agent's lease up: its queue leaves memory, the rows stay for the new owner. Resolves once
   * a send in flight has ended (before the session is stopped).
   */
  release(agentId: string): Promise<void>;
  /** Listens for messages other members commit for this member's agents, and sweeps for any it missed. */
  start(): Promise<void>;
  /** Retention: forgets sent and failed messages last changed before `cutoff`; returns how many. */
  purgeSettledBefore(cutoff: Date, signal?: AbortSignal): Promise<number>;
  /** Deletes file chunks written before `cutoff` that belong to no message; returns how many chunks. */
  purgeStrayChunksBefore(cutoff: Date, signal?: AbortSignal): Promise<number>;
  /** Waits for the sends in flight and writes what is unwritten; releases every waiting request. */
  close(): Promise<void>;
}

/** Where a member that commits a message for another member's agent wakes that member (payload: the agent id). */
const WAKE_CHANNEL = 'wamt_outbox';
/** How often an owner looks for queued messages it was not woken for. */
const SWEEP_MS = 5_000;

export function createOutbox(deps: OutboxDeps): Outbox {
  return new DurableOutbox(deps);
}

class DurableOutbox implements Outbox {
  private readonly repository: OutboxRepository;
  private readonly buckets: TokenBuckets;
  private readonly waits: SendWaits;
  private readonly store: OutboxStore;
  private readonly dispatcher: OutboxDispatcher;
  private readonly remote: RemoteOutcomes;
  private readonly receipts: OutboxReceipts;
  private readonly ownership: OutboxOwnership;
  private readonly unsubscribe: Array<() => void>;
  /** Agents whose messages were committed here for another member to send, to be woken after the batch. */
  private readonly toWake = new Set<string>();
  private waking: Promise<void> | undefined;
  private sweepTimer: Timer | undefined;
  private unlisten: (() => Promise<void>) | undefined;

  constructor(private readonly deps: OutboxDeps) {
    const { database, sessions, metrics, logger, clock, config, retries } = deps;
    this.ownership = deps.ownership ?? { single: true, instanceId: 'local', epochOf: () => 0 };
    this.repository = new OutboxRepository(database);
    this.buckets = new TokenBuckets({
      capacity: config.rateLimitBurst,
      refillPerMinute: config.rateLimitPerMinute,
      clock,
    });
    this.waits = new SendWaits(clock);
    this.store = new OutboxStore({
      repository: this.repository,
      clock,
      logger,
      commitTimeoutMs: config.dbStatementTimeoutMs,
      ...(config.mediaInFlightMax === undefined ? {} : { fileCommitsInFlight: config.mediaInFlightMax }),
      onCommitted: (row) => this.committed(row),
    });
    this.dispatcher = new OutboxDispatcher({
      repository: this.repository,
      store: this.store,
      // A send of a message no request waits for here may have one waiting on the member that committed it.
      waits: {
        settle: (id, outcome) => {
          if (outcome && !this.ownership.single && !this.waits.isWaiting(id)) this.remote.tell(id, outcome);
          this.waits.settle(id, outcome);
        },
      },
      sessions,
      buckets: this.buckets,
      metrics,
      logger,
      clock,
      maxRetries: retries?.max,
      retryDelayMs: retries?.delayMs,
      mayDispatch: (agentId) => this.owns(agentId),
      pacing: deps.pacing,
      maxFileSends: config.mediaInFlightMax,
    });
    this.remote = new RemoteOutcomes({ database, repository: this.repository, waits: this.waits, clock, logger });
    this.receipts = new OutboxReceipts({ repository: this.repository, store: this.store, clock, logger, metrics });
    this.unsubscribe = [
      sessions.onSessionReady((agentId) => this.dispatcher.wake(agentId)),
      deps.pacing?.onChange((agentId) => this.dispatcher.repace(agentId)) ?? (() => {}),
      sessions.onAgentDeleted(async (agentId) => {
        try {
          await this.drop(agentId);
        } catch (err) {
          // The in-memory queue is already gone; rows left behind are dropped at the next boot (resumeAll).
          logger.error({ event: 'outbox.drop.error', agentId, err: errorMessage(err) });
        }
      }),
    ];
  }

  async findIdempotent(agentId: string, key: string, fingerprint: string | undefined): Promise<SubmitResult | null> {
    await this.store.flush();
    const existing = await this.repository.findByIdempotencyKey(agentId, key);
    if (!existing) return null;
    if (existing.payload.fingerprint !== fingerprint) throw new AppError('IDEMPOTENCY_KEY_REUSED');
    return this.settledResult(existing);
  }

  async assertReady(agentId: string): Promise<void> {
    if (!(await this.ready(agentId))) throw new AppError('SESSION_NOT_READY');
  }

  async submit(agentId: string, draft: OutboxDraft, context: SubmitContext = {}): Promise<SubmitResult> {
    const { idempotencyKey } = context;
    if (!(await this.ready(agentId))) {
      // A retry of a message accepted earlier is still answered with it.
      const earlier = idempotencyKey
        ? await this.findIdempotent(agentId, idempotencyKey, draft.payload.fingerprint)
        : null;
      if (earlier) return earlier;
      throw new AppError('SESSION_NOT_READY');
    }
    if (this.owns(agentId)) this.assertRoom(agentId, this.depth(agentId));
    // Another member dispatches it: its queue is in the table.
    else this.assertRoom(agentId, (await this.repository.countQueued(agentId)) + this.store.committing(agentId));
    // A paced agent's first message to someone new counts toward its daily cap; refused, nothing is committed.
    const limit = this.deps.pacing?.profile(agentId)?.newContactsPerDay;
    if (limit !== undefined && limit !== null) await this.deps.pacing?.admit(agentId, draft.toJid, limit);
    const id = randomUUID();
    const account = this.deps.sessions.account(agentId) ?? undefined;
    // The wait starts before the commit, so that SEND_WAIT_MS bounds the whole request and no outcome is missed.
    const outcome = this.waits.wait(id, this.deps.config.sendWaitMs);
    let committed: boolean;
    try {
      committed = await this.store.insert(
        newRow(id, agentId, { ...draft, payload: { ...draft.payload, account } }, context),
      );
    } catch (err) {
      this.waits.settle(id, null);
      throw err;
    }
    if (!committed) {
      this.waits.settle(id, null);
      // Another request holds this key: answer with its message (or 409 when it asked for something else).
      const earlier = await this.findIdempotent(agentId, idempotencyKey ?? '', draft.payload.fingerprint);
      if (!earlier) throw new AppError('INTERNAL_ERROR', 'the idempotency key vanished');
      return earlier;
    }
    this.deps.metrics.countQueued(agentId);
    if (!this.owns(agentId)) this.remote.watch(id);
    return result(id, await outcome, draft.payload);
  }

  async get(agentId: string, messageId: string): Promise<OutboxMessageView> {
    // An outcome or a receipt recorded before this read is found: the flushes wait for their writes.
    await this.receipts.flush();
    await this.store.flush();
    const record = await this.repository.find(agentId, messageId);
    if (!record) throw new AppError('MESSAGE_NOT_FOUND');
    return toView(this.current(record));
  }

  async findMessageRef(agentId: string, messageId: string): ReturnType<OutboxRepository['findMessageRef']> {
    await this.store.flush(); // a send that just ended has its WhatsApp id written
    return this.repository.findMessageRef(agentId, messageId);
  }

  receipt(agentId: string, ack: MessageAck): void {
    this.receipts.record(agentId, ack);
  }

  depth(agentId: string): number {
    return this.dispatcher.depth(agentId) + this.store.committing(agentId);
  }

  /**
   * A row found `sending` was handed to WhatsApp or not; nobody can tell, so it is sent again (at least once) rather
   * than risk losing it (at most once). Rows of agents deleted meanwhile are dropped, as their deletion would have done.
   */
  async resumeAll(): Promise<number> {
    const { logger } = this.deps;
    const orphaned = await this.repository.deleteOrphaned();
    let dropped = 0;
    for (const [agentId, count] of orphaned) {
      this.countDropped(agentId, count);
      dropped += count;
    }
    if (dropped > 0) logger.warn({ event: 'outbox.resume.orphaned', count: dropped });
    const interrupted = await this.repository.requeueInterrupted();
    if (interrupted > 0) logger.warn({ event: 'outbox.resume.interrupted', count: interrupted });
    if (!this.ownership.single) return 0;
    const rows = await this.repository.listQueued();
    for (const row of rows) this.dispatcher.enqueue(OutboxDispatcher.fromRecord(row));
    logger.info({ event: 'outbox.resumed', count: rows.length });
    return rows.length;
  }

  /** A row whose outcome is not written yet is still `queued` in the table, so it is never among those purged. */
  purgeSettledBefore(cutoff: Date, signal?: AbortSignal): Promise<number> {
    return this.repository.purgeSettledBefore(cutoff, { signal });
  }

  purgeStrayChunksBefore(cutoff: Date, signal?: AbortSignal): Promise<number> {
    return this.repository.purgeStrayChunksBefore(cutoff, { signal });
  }

  async adopt(agentId: string, epoch: number): Promise<void> {
    const lease = this.ownership.single ? null : { owner: this.ownership.instanceId, epoch };
    this.enqueueUnknown(await this.readQueued(() => this.repository.listQueuedFor(agentId, lease)));
  }

  release(agentId: string): Promise<void> {
    return this.dispatcher.handOver(agentId);
  }

  async start(): Promise<void> {
    if (this.ownership.single) return;
    const { database, clock, logger } = this.deps;
    this.unlisten = await database.listen(
      WAKE_CHANNEL,
      (agentId) => {
        const epoch = this.ownership.epochOf(agentId);
        if (epoch !== null) void this.adopt(agentId, epoch).catch((err: unknown) => this.sweepFailed(err));
      },
      () => void this.sweep(),
    );
    await this.remote.start();
    // A wake lost on the way (the notifying member died after its commit, a dropped connection) costs a few seconds.
    this.sweepTimer = clock.setInterval(() => void this.sweep(), SWEEP_MS, { background: true });
    logger.debug({ event: 'outbox.cluster_started' });
  }

  async close(): Promise<void> {
    this.sweepTimer?.cancel();
    await this.unlisten?.();
    for (const unsubscribe of this.unsubscribe) unsubscribe();
    await this.store.idle();
    await this.dispatcher.close();
    await this.receipts.close();
    // After the sends in flight: their outcomes are told to the members where requests wait for them.
    await this.remote.close();
    this.waits.close();
    await this.store.close();
  }

  /** An agent was deleted: its queued messages go, from memory and from the table. */
  private async drop(agentId: string): Promise<void> {
    await this.store.idle(); // a row still committing reaches the dispatcher first, and goes with the rest
    const keep = [...this.dispatcher.forget(agentId), ...this.store.settledIds()];
    const ids = await this.repository.deleteUnsent(agentId, keep);
    if (ids.length > 0) this.countDropped(agentId, ids.length);
  }

  private countDropped(agentId: string, count: number): void {
    const { metrics } = this.deps;
    metrics.outboxTransitions.inc({ state: 'dropped', ...metrics.agentLabel(agentId) }, count);
  }

  /** The row as it stands now: a send in progress, or an outcome not yet written, is newer than the table. */
  private current(record: OutboxRecord): OutboxRecord {
    const pending = this.store.pending(record.id);
    if (pending) {
      const { status, attempts, waMessageId, error } = pending;
      const at = new Date(pending.at);
      return { ...record, status, attempts, waMessageId, error, updatedAt: at, sentAt: status === 'sent' ? at : null };
    }
    if (record.status === 'queued' && this.dispatcher.isSending(record.agentId, record.id))
      return { ...record, status: 'sending' };
    return record;
  }

  /**
   * Whether the agent can send. A session that another member runs, and that this member has not heard of as ready
   * yet (it connected a moment ago), is read again where its owner publishes it: one statement, on this path only.
   */
  private async ready(agentId: string): Promise<boolean> {
    const { sessions } = this.deps;
    if (sessions.isReady(agentId)) return true;
    return !this.ownership.single && !this.owns(agentId) && (await sessions.confirmReady(agentId));
  }

  /** Whether this member dispatches the agent's messages now. */
  private owns(agentId: string): boolean {
    return this.ownership.single || this.ownership.epochOf(agentId) !== null;
  }

  /**
   * A row is committed. One of this member's agents: to its queue at once, before its request hears of it (FIFO in
   * commit order). Another member's: that member is woken after the batch.
   */
  private committed(row: NewOutboxMessage): void {
    if (this.owns(row.agentId)) {
      // Loaded from the table already (a wake raced the commit) and sent: its outcome is on its way.
      if (!this.store.pending(row.id)) this.dispatcher.enqueue(toQueued(row));
      return;
    }
    this.toWake.add(row.agentId);
    this.waking ??= Promise.resolve().then(() => this.wakeOwners());
  }

  private async wakeOwners(): Promise<void> {
    const agentIds = [...this.toWake];
    this.toWake.clear();
    this.waking = undefined;
    await this.deps.database
      .query('SELECT pg_notify($1, a) FROM unnest($2::text[]) AS a', [WAKE_CHANNEL, agentIds])
      .catch((err: unknown) => this.sweepFailed(err));
  }

  /**
   * Reads queued rows, leaving out those this member sent or failed while the read ran, or before it with their outcome
   * not yet written when it began: the read's snapshot may show them queued still, and they must not go out twice.
   */
  private async readQueued<T extends OutboxRecord>(read: () => Promise<T[]>): Promise<T[]> {
    const unwritten = new Set(this.store.settledIds());
    const watch = this.dispatcher.watchDone();
    try {
      const rows = await read();
      return rows.filter((row) => !unwritten.has(row.id) && !watch.done.has(row.id));
    } finally {
      watch.stop();
    }
  }

  /** Queues the rows this member should dispatch and does not hold yet (nor sent meanwhile, outcome unwritten). */
  private enqueueUnknown(rows: readonly OutboxRecord[]): void {
    for (const row of rows) {
      if (this.dispatcher.holds(row.agentId, row.id) || this.store.pending(row.id)) continue;
      this.dispatcher.enqueue(OutboxDispatcher.fromRecord(row));
    }
  }

  /** Loads what the agents this member owns have queued in the table and it does not hold. */
  private async sweep(): Promise<void> {
    try {
      const rows = await this.readQueued(() => this.repository.listQueuedOwnedBy(this.ownership.instanceId));
      this.enqueueUnknown(rows.filter((row) => this.ownership.epochOf(row.agentId) === row.epoch));
    } catch (err) {
      this.sweepFailed(err);
    }
  }

  private sweepFailed(err: unknown): void {
    this.deps.logger.warn({ event: 'outbox.wake_failed', err: errorMessage(err) });
  }

  /** 429 when the agent's queue, counting the rows still committing, is full. */
  private assertRoom(agentId: string, depth: number): void {
    const { config, metrics } = this.deps;
    if (depth < config.queueMaxPerAgent) return;
    metrics.outboxTransitions.inc({ state: 'rejected', ...metrics.agentLabel(agentId) });
    // A slot frees when the head is sent, which is when the next token arrives.
    const seconds = Math.max(1, Math.ceil(this.buckets.msUntilToken(agentId) / 1_000));
    throw new AppError('RATE_LIMITED', undefined, { headers: { 'retry-after': String(seconds) } });
  }

  private async settledResult(stored: OutboxRecord): Promise<SubmitResult> {
    const record = this.current(stored);
    if (record.status === 'queued' || record.status === 'sending') {
      return result(record.id, await this.waits.wait(record.id, this.deps.config.sendWaitMs), record.payload);
    }
    return {
      delivered: record.status === 'sent',
      messageId: record.id,
      status: record.status,
      waMessageId: record.waMessageId,
      previewPath: record.payload.previewPath,
    };
  }
}

function result(messageId: string, outcome: SendOutcome | null, payload: OutboxPayload): SubmitResult {
  const previewPath = payload.previewPath;
  if (outcome?.status === 'sent') {
    return { delivered: true, messageId, status: 'sent', waMessageId: outcome.waMessageId, previewPath };
  }
  return { delivered: false, messageId, status: outcome?.status ?? 'queued', waMessageId: null, previewPath };
}

/** A committed row as its agent's queue holds it. */
function toQueued({ id, agentId, kind, toJid, payload }: NewOutboxMessage): QueuedMessage {
  return { id, agentId, kind, toJid, payload, attempts: 0, failures: 0 };
}

/** The row a submitted message is written as. */
function newRow(id: string, agentId: string, draft: OutboxDraft, context: SubmitContext): NewOutboxMessage {
  return {
    id,
    agentId,
    kind: draft.kind,
    toJid: draft.toJid,
    payload: draft.payload,
    media: draft.media ?? null,
    idempotencyKey: context.idempotencyKey ?? null,
    traceId: context.traceId ?? null,
  };
}

function toView(record: OutboxRecord): OutboxMessageView {
  return {
    messageId: record.id,
    agentId: record.agentId,
    to: record.toJid,
    kind: record.kind,
    status: record.status,
    waMessageId: record.waMessageId,
    error: record.error,
    attempts: record.attempts,
    createdAt: record.createdAt.toISOString(),
    updatedAt: record.updatedAt.toISOString(),
    sentAt: record.sentAt?.toISOString() ?? null,
    receipts: {
      server: record.receipts.server?.toISOString() ?? null,
      delivered: record.receipts.delivered?.toISOString() ?? null,
      read: record.receipts.read?.toISOString() ?? null,
      played: record.receipts.played?.toISOString() ?? null,
      error: record.receipts.error,
      errorAt: record.receipts.errorAt?.toISOString() ?? null,
    },
    notBefore: record.notBefore?.toISOString() ?? null,
  };
}
