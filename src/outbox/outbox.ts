// The outbox: accepts a message, hands it to the dispatcher, writes its row (in one statement with the other writes
// of the moment), and waits a bounded time for the result. A text without an Idempotency-Key goes to the dispatcher
// at once, while its row is being written: an answer that says "sent" does not wait for the row, any other answer
// does. A message with a key, or an image, is handed over only once its row is committed.
import { randomUUID } from 'node:crypto';
import type { OutboxStatus } from '../db/schema.js';
import { AppError, errorMessage } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import {
  type DispatchTimers,
  OutboxDispatcher,
  type QueuedMessage,
  realTimers,
  type SendOutcome,
} from './outbox.dispatcher.js';
import type {
  NewOutboxMessage,
  OutboxKind,
  OutboxPayload,
  OutboxRecord,
  OutboxRepository,
} from './outbox.repository.js';
import { TransitionLog } from './outbox.transitions.js';
import { OutboxWriter } from './outbox.writer.js';
import type { SessionGateway } from './session-gateway.js';
import type { TokenBuckets } from './token-bucket.js';

export interface OutboxDraft {
  kind: OutboxKind;
  toJid: string;
  payload: OutboxPayload;
  media?: Buffer | null;
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
}

export interface OutboxServiceOptions {
  repository: OutboxRepository;
  sessions: SessionGateway;
  buckets: TokenBuckets;
  metrics: Metrics;
  logger: Logger;
  /** How long a request waits for its send before answering 202. */
  sendWaitMs: number;
  queueMaxPerAgent: number;
  maxRetries?: number;
  retryDelayMs?: (retry: number) => number;
  timers?: DispatchTimers;
  /**
   * Rows waiting for their batch past which a "sent" answer waits for its row like any other (1,000): the writes
   * keep up with the sends, and memory stays bounded, when the database is slower than WhatsApp.
   */
  maxUnwritten?: number;
}

export class OutboxService {
  readonly dispatcher: OutboxDispatcher;
  private readonly transitions: TransitionLog;
  private readonly writer: OutboxWriter;
  /** Slots taken by requests whose INSERT is still running, so concurrent requests cannot overfill a queue. */
  private readonly reserved = new Map<string, number>();
  private readonly unsubscribe: Array<() => void>;

  constructor(private readonly options: OutboxServiceOptions) {
    const timers = options.timers ?? realTimers;
    // A committed row goes to its agent's queue at once, before its request hears of it.
    this.writer = new OutboxWriter({
      repository: options.repository,
      onInserted: ({ id, agentId, kind, toJid, payload, queuedEarly }) => {
        if (!queuedEarly) this.dispatcher.enqueue(queued(id, agentId, { kind, toJid, payload }));
      },
    });
    this.transitions = new TransitionLog({ writer: this.writer, logger: options.logger, timers });
    this.dispatcher = new OutboxDispatcher({
      repository: options.repository,
      transitions: this.transitions,
      sessions: options.sessions,
      buckets: options.buckets,
      metrics: options.metrics,
      logger: options.logger,
      maxRetries: options.maxRetries,
      retryDelayMs: options.retryDelayMs,
      timers,
    });
    this.unsubscribe = [
      options.sessions.onSessionReady((agentId) => this.dispatcher.wake(agentId)),
      options.sessions.onAgentDeleted(async (agentId) => {
        try {
          await this.drop(agentId);
        } catch (err) {
          // The in-memory queue is already gone; rows left behind are dropped at the next boot (resumeAll).
          options.logger.error({ event: 'outbox.drop.error', agentId, err: errorMessage(err) });
        }
      }),
    ];
  }

  /**
   * The earlier message sent with this Idempotency-Key, or null when the key is new.
   * Throws IDEMPOTENCY_KEY_REUSED when the key came with a different request.
   */
  async findIdempotent(agentId: string, key: string, fingerprint: string | undefined): Promise<SubmitResult | null> {
    await this.transitions.flush();
    const existing = await this.options.repository.findByIdempotencyKey(agentId, key);
    if (!existing) return null;
    if (existing.payload.fingerprint !== fingerprint) throw new AppError('IDEMPOTENCY_KEY_REUSED');
    return this.settledResult(existing);
  }

  /** Throws SESSION_NOT_READY unless the agent can send now (an earlier idempotent message is still returned). */
  assertReady(agentId: string): void {
    if (!this.options.sessions.getReadySession(agentId)) throw new AppError('SESSION_NOT_READY');
  }

  async submit(agentId: string, draft: OutboxDraft, context: SubmitContext = {}): Promise<SubmitResult> {
    const { idempotencyKey } = context;
    if (!this.options.sessions.getReadySession(agentId)) {
      const earlier = idempotencyKey
        ? await this.findIdempotent(agentId, idempotencyKey, draft.payload.fingerprint)
        : null;
      if (earlier) return earlier;
      throw new AppError('SESSION_NOT_READY');
    }
    if (!idempotencyKey && draft.kind === 'text') return await this.submitEarly(agentId, draft, context);
    this.reserve(agentId);
    const id = randomUUID();
    // The wait starts before the INSERT, so that no outcome can be missed and SEND_WAIT_MS bounds the whole request.
    const outcome = this.dispatcher.waitFor(id, this.options.sendWaitMs);
    let inserted: boolean;
    try {
      inserted = await this.writer.insert(newRow(id, agentId, draft, context));
    } catch (err) {
      this.dispatcher.stopWaiting(id);
      throw err;
    } finally {
      this.release(agentId);
    }
    if (!inserted) {
      this.dispatcher.stopWaiting(id);
      // Another request holds this key: answer with its message (or 409 when it asked for something else).
      const earlier = await this.findIdempotent(agentId, idempotencyKey ?? '', draft.payload.fingerprint);
      if (!earlier) throw new AppError('INTERNAL_ERROR', 'the idempotency key vanished');
      return earlier;
    }
    this.options.metrics.countQueued(agentId);
    return this.result(id, await outcome, draft.payload);
  }

  /** A text handed to the dispatcher while its row is written. */
  private async submitEarly(agentId: string, draft: OutboxDraft, context: SubmitContext): Promise<SubmitResult> {
    this.assertRoom(agentId); // the queue holds the message from here on
    const id = randomUUID();
    const message = queued(id, agentId, draft);
    const outcome = this.dispatcher.waitFor(id, this.options.sendWaitMs);
    const { metrics, logger } = this.options;
    // Settles when the row is written or has failed; never rejects, whoever waits for it or not. Not written means
    // not durable: a message still waiting is taken back at once, and its request fails with the error. One that
    // WhatsApp has, or had, is only logged: the message went, its record is missing.
    const lost = this.writer.insert(newRow(id, agentId, draft, context, true), false).then(
      () => undefined,
      (err: unknown) => {
        const withdrawn = this.dispatcher.withdraw(message);
        if (!withdrawn) logger.error({ event: 'outbox.write.error', agentId, messageId: id, err: errorMessage(err) });
        return { err, withdrawn };
      },
    );
    this.dispatcher.enqueue(message);
    metrics.countQueued(agentId);
    const result = await outcome;
    if (result?.status === 'sent' && this.writer.backlog < (this.options.maxUnwritten ?? 1_000)) {
      return this.result(id, result, draft.payload);
    }
    this.writer.hurry(); // the answer waits for the row now
    const failure = await lost;
    if (failure?.withdrawn) throw failure.err;
    if (!failure || result) return this.result(id, result, draft.payload);
    // WhatsApp has it in hand right now: its outcome is the answer.
    return this.result(id, await this.dispatcher.waitFor(id, this.options.sendWaitMs), draft.payload);
  }

  async get(agentId: string, messageId: string): Promise<OutboxMessageView> {
    // A message answered before its row was written is still found: the flush waits for that write too.
    await this.transitions.flush();
    const record = await this.options.repository.find(agentId, messageId);
    if (!record) throw new AppError('MESSAGE_NOT_FOUND');
    return toView(this.current(record));
  }

  /**
   * Boot: queues what a previous process left. A row found `sending` was handed to WhatsApp or not; nobody can
   * tell, so it is sent again (at least once) rather than risk losing it (at most once). Rows of agents deleted
   * meanwhile are dropped, as their deletion would have done.
   */
  async resumeAll(): Promise<number> {
    const orphaned = await this.options.repository.deleteOrphaned();
    let dropped = 0;
    for (const [agentId, count] of orphaned) {
      this.countDropped(agentId, count);
      dropped += count;
    }
    if (dropped > 0) this.options.logger.warn({ event: 'outbox.resume.orphaned', count: dropped });
    const interrupted = await this.options.repository.requeueInterrupted();
    if (interrupted > 0) {
      this.options.logger.warn({ event: 'outbox.resume.interrupted', count: interrupted });
    }
    const rows = await this.options.repository.listQueued();
    for (const row of rows) this.dispatcher.enqueue(OutboxDispatcher.fromRecord(row));
    this.options.logger.info({ event: 'outbox.resumed', count: rows.length });
    return rows.length;
  }

  /**
   * Retention: forgets sent and failed messages last changed before `cutoff`. A row whose outcome is not written
   * yet is still `queued` in the table, so it is never among them.
   */
  purgeSettledBefore(cutoff: Date): Promise<number> {
    return this.options.repository.purgeSettledBefore(cutoff);
  }

  async close(): Promise<void> {
    for (const unsubscribe of this.unsubscribe) unsubscribe();
    await this.writer.idle();
    await this.dispatcher.close();
    await this.transitions.close();
  }

  /** An agent was deleted: its queued messages go, from memory and from the table. */
  private async drop(agentId: string): Promise<void> {
    await this.writer.idle(); // a row still being inserted reaches the dispatcher first, and goes with the rest
    const keep = [...this.dispatcher.forget(agentId), ...this.transitions.settledIds()];
    const ids = await this.options.repository.deleteUnsent(agentId, keep);
    if (ids.length > 0) this.countDropped(agentId, ids.length);
  }

  private countDropped(agentId: string, count: number): void {
    const { metrics } = this.options;
    metrics.outboxTransitions.inc({ state: 'dropped', ...metrics.agentLabel(agentId) }, count);
  }

  /** The row as it stands now: a send in progress, or an outcome not yet written, is newer than the table. */
  private current(record: OutboxRecord): OutboxRecord {
    const pending = this.transitions.pending(record.id);
    if (pending) {
      const { status, attempts, waMessageId, error } = pending;
      const at = new Date(pending.at);
      return { ...record, status, attempts, waMessageId, error, updatedAt: at, sentAt: status === 'sent' ? at : null };
    }
    if (record.status === 'queued' && this.dispatcher.isSending(record.agentId, record.id))
      return { ...record, status: 'sending' };
    return record;
  }

  private reserve(agentId: string): void {
    this.assertRoom(agentId);
    this.reserved.set(agentId, (this.reserved.get(agentId) ?? 0) + 1);
  }

  private assertRoom(agentId: string): void {
    if (this.dispatcher.depth(agentId) + (this.reserved.get(agentId) ?? 0) >= this.options.queueMaxPerAgent) {
      const { metrics } = this.options;
      metrics.outboxTransitions.inc({ state: 'rejected', ...metrics.agentLabel(agentId) });
      // A slot frees when the head is sent, which is when the next token arrives.
      const seconds = Math.max(1, Math.ceil(this.options.buckets.msUntilToken(agentId) / 1_000));
      throw new AppError('RATE_LIMITED', undefined, { headers: { 'retry-after': String(seconds) } });
    }
  }

  private release(agentId: string): void {
    const reserved = (this.reserved.get(agentId) ?? 1) - 1;
    if (reserved > 0) this.reserved.set(agentId, reserved);
    else this.reserved.delete(agentId);
  }

  private async settledResult(stored: OutboxRecord): Promise<SubmitResult> {
    const record = this.current(stored);
    if (record.status === 'queued' || record.status === 'sending') {
      return this.result(record.id, await this.dispatcher.waitFor(record.id, this.options.sendWaitMs), record.payload);
    }
    return {
      delivered: record.status === 'sent',
      messageId: record.id,
      status: record.status,
      waMessageId: record.waMessageId,
      previewPath: record.payload.previewPath,
    };
  }

  private result(messageId: string, outcome: SendOutcome | null, payload: OutboxPayload): SubmitResult {
    const previewPath = payload.previewPath;
    if (outcome?.status === 'sent') {
      return { delivered: true, messageId, status: 'sent', waMessageId: outcome.waMessageId, previewPath };
    }
    return { delivered: false, messageId, status: outcome?.status ?? 'queued', waMessageId: null, previewPath };
  }
}

/** A message as its agent's queue holds it. */
function queued(id: string, agentId: string, { kind, toJid, payload }: OutboxDraft): QueuedMessage {
  return { id, agentId, kind, toJid, payload, attempts: 0, failures: 0 };
}

/** The row a submitted message is written as. */
function newRow(
  id: string,
  agentId: string,
  draft: OutboxDraft,
  context: SubmitContext,
  queuedEarly = false,
): NewOutboxMessage {
  return {
    id,
    agentId,
    kind: draft.kind,
    toJid: draft.toJid,
    payload: draft.payload,
    media: draft.media ?? null,
    idempotencyKey: context.idempotencyKey ?? null,
    traceId: context.traceId ?? null,
    queuedEarly,
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
  };
}
