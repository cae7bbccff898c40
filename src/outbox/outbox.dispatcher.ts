// Per-agent dispatch: each agent's committed messages go FIFO through its token bucket to its engine session; each
// attempt's outcome is recorded in the store (written behind) and answers the requests waiting on it.
import type { Clock, Timer } from '../clock.js';
import {
  type EngineSession,
  isMediaKind,
  RecipientRejectedError,
  type SendOptions,
  type SentMessage,
} from '../engines/engine.js';
import { AppError, errorMessage, isAppError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { PacingProfile } from '../pacing/pacing.schemas.js';
import { pacingStep, planSend, typingMs } from '../pacing/pacing-plan.js';
import { jidUser } from '../whatsapp/jid.js';
import type { OutboxPacing, OutboxSessions } from './outbox.ports.js';
import type { OutboxKind, OutboxRecord, OutboxRepository, OutboxTransition } from './outbox.repository.js';
import type { OutboxStore } from './outbox.store.js';
import type { SendWaits } from './send-waits.js';
import type { TokenBuckets } from './token-bucket.js';

/** The error of a message queued for an account the agent is no longer linked to. */
export const ACCOUNT_CHANGED = 'account_changed';

/** Whether the account a message was accepted for is the one connected now (unknown on either side: yes). */
function sameAccount(acceptedFor: string | undefined, connected: string | null): boolean {
  return !acceptedFor || !connected || jidUser(acceptedFor) === jidUser(connected);
}

/** A queued message as the dispatcher holds it: everything but the image bytes, which stay in the database. */
export type QueuedMessage = Pick<OutboxRecord, 'id' | 'agentId' | 'kind' | 'toJid' | 'payload' | 'attempts'> & {
  /** Failed attempts in this process, counted only while the session stayed ready. */
  failures: number;
  /** Paced: when it is sent (epoch ms), from its row or planned when its dispatcher first took it. */
  notBefore?: number | undefined;
  /** Paced: this process has shown the typing indicator for it. */
  typingShown?: boolean;
};

/** Recipients whose last send time each paced agent keeps in memory; past this the oldest are read from the table. */
const RECENT_RECIPIENTS = 1_000;

export interface OutboxDispatcherOptions {
  /** Reads an image's bytes just before it is sent; keeps a paced message's send time, and reads the last ones. */
  repository: Pick<OutboxRepository, 'media' | 'setNotBefore' | 'lastSentTo'>;
  /** Where each attempt's outcome goes; the dispatcher never waits for it to be written. */
  store: Pick<OutboxStore, 'record'>;
  waits: Pick<SendWaits, 'settle'>;
  sessions: Pick<OutboxSessions, 'getReadySession' | 'account'>;
  /** Whether this member may hand the agent's messages to its engine now: it holds the agent's lease (fencing). */
  mayDispatch(agentId: string): boolean;
  buckets: TokenBuckets;
  metrics: Metrics;
  logger: Logger;
  clock: Clock;
  /** Retries after the first failed attempt before the message is marked failed. */
  maxRetries?: number | undefined;
  /** Wait before retry n (1-based). Exponential by default: 1 s, 2 s, 4 s. */
  retryDelayMs?: ((retry: number) => number) | undefined;
  /** Which agents are paced (src/pacing/); none without it. */
  pacing?: Pick<OutboxPacing, 'profile' | 'random'> | undefined;
  /**
   * Files read back and handed to engines at once, in the process (MEDIA_IN_FLIGHT_MAX): each is whole in memory
   * while it is sent. A queue whose head is a file waits (FILE_WAIT_MS, no strike) for a place. Unbounded when absent.
   */
  maxFileSends?: number | undefined;
}

/** How long a queue whose head is a file waits before it asks again for a place among the file sends. */
const FILE_WAIT_MS = 100;

/** Not messages of their own: a paced agent's read marks and typing go without a gap. */
const UNPACED_KINDS: ReadonlySet<OutboxKind> = new Set(['read', 'typing']);

interface AgentQueue {
  agentId: string;
  /** In the order they were accepted; the head is the one being sent or waited on. */
  items: QueuedMessage[];
  /** The ids of `items`: a message handed in twice (committed here, and loaded from the table) is queued once. */
  ids: Set<string>;
  /** Set while the queue waits for a token or a retry. */
  timer: Timer | undefined;
  /** A drain is running (or about to): kick() starts no second one. */
  draining: boolean;
  /** The latest drain, which close() waits for. */
  drained: Promise<void>;
  /** The message WhatsApp has in hand right now (its head, while it is sent): its state is `sending`. */
  inFlight: QueuedMessage | undefined;
  /** Forgotten because its agent's lease moves (not deleted): a send in flight that fails stays queued for the next. */
  handedOver: boolean;
}

type Step = 'next' | 'retry' | 'wait-ready';

export class OutboxDispatcher {
  private readonly queues = new Map<string, AgentQueue>();
  /** For each read of the table in progress (watchDone), the messages sent or failed here since it began. */
  private readonly watchers = new Set<Set<string>>();
  /** Paced agents: when each last sent to each recipient here (epoch ms), the latest last. */
  private readonly lastSent = new Map<string, Map<string, number>>();
  private readonly maxRetries: number;
  private readonly retryDelayMs: (retry: number) => number;
  private closed = false;
  /** Files being read back or sent now (maxFileSends). */
  private fileSends = 0;

  constructor(private readonly options: OutboxDispatcherOptions) {
    this.maxRetries = options.maxRetries ?? 3;
    this.retryDelayMs = options.retryDelayMs ?? ((retry) => 1_000 * 2 ** (retry - 1));
    options.metrics.setQueueDepthSource(() => this.depths());
  }

  private *depths(): Iterable<readonly [string, number]> {
    for (const [agentId, queue] of this.queues) if (queue.items.length > 0) yield [agentId, queue.items.length];
  }

  static fromRecord(record: OutboxRecord): QueuedMessage {
    const { id, agentId, kind, toJid, payload, attempts, notBefore } = record;
    return { id, agentId, kind, toJid, payload, attempts, failures: 0, notBefore: notBefore?.getTime() };
  }

  /** Adds a message at the end of its agent's queue, and starts dispatching if idle. */
  enqueue(message: QueuedMessage): void {
    const queue = this.queue(message.agentId);
    if (queue.ids.has(message.id)) return;
    queue.ids.add(message.id);
    queue.items.push(message);
    this.kick(queue);
  }

  /** Whether the message is in its agent's queue (waiting, or being sent). */
  holds(agentId: string, id: string): boolean {
    return this.queues.get(agentId)?.ids.has(id) ?? false;
  }

  /** Messages accepted for the agent and not yet sent or failed, including the one in flight. */
  depth(agentId: string): number {
    return this.queues.get(agentId)?.items.length ?? 0;
  }

  /** True while the message is being handed to WhatsApp. */
  isSending(agentId: string, id: string): boolean {
    return this.queues.get(agentId)?.inFlight?.id === id;
  }

  /**
   * The agent's session became ready: resume its queue. If the agent is now linked to another number (the phone
   * unlinked it, and another phone scanned), what was queued for the old number fails with `account_changed`: it must
   * not go out from the new one.
   */
  wake(agentId: string): void {
    const queue = this.queues.get(agentId);
    if (!queue) return;
    const account = this.options.sessions.account(agentId);
    const foreign = queue.items.filter((m) => m !== queue.inFlight && !sameAccount(m.payload.account, account));
    if (foreign.length > 0) {
      const gone = new Set(foreign);
      queue.items = queue.items.filter((m) => !gone.has(m));
      for (const message of foreign) queue.ids.delete(message.id);
      for (const message of foreign) this.fail(queue, message, ACCOUNT_CHANGED);
    }
    this.kick(queue);
  }

  /**
   * The agent's pacing profile changed: a queue waiting out a gap looks again now (switched off, it sends at once).
   */
  repace(agentId: string): void {
    const queue = this.queues.get(agentId);
    if (!queue?.timer) return;
    queue.timer.cancel();
    queue.timer = undefined;
    this.kick(queue);
  }

  /**
   * Forgets an agent's queue from memory: its agent was deleted, or its lease went to another member (whose turn it is
   * to load the rows). A send already in flight completes, and is not retried; its id is returned so that its row is
   * kept.
   */
  forget(agentId: string): string[] {
    const queue = this.queues.get(agentId);
    this.options.buckets.delete(agentId);
    this.lastSent.delete(agentId);
    if (!queue) return [];
    queue.timer?.cancel();
    queue.timer = undefined;
    this.queues.delete(agentId);
    const items = queue.items.splice(0);
    for (const message of items) if (message !== queue.inFlight) this.options.waits.settle(message.id, null);
    return queue.inFlight ? [queue.inFlight.id] : [];
  }

  /**
   * Forgets the agent's queue because its lease goes to another member, and resolves once a send in flight has
   * ended: the session may be stopped then, and the new owner loads the rows (none of them in anyone's hands).
   */
  async handOver(agentId: string): Promise<void> {
    const queue = this.queues.get(agentId);
    if (!queue) return;
    queue.handedOver = true;
    this.forget(agentId);
    await queue.drained;
  }

  /** Stops taking new steps, clears timers, and waits for the sends in flight. */
  async close(): Promise<void> {
    this.closed = true;
    for (const queue of this.queues.values()) {
      queue.timer?.cancel();
      queue.timer = undefined;
    }
    await Promise.all([...this.queues.values()].map((queue) => queue.drained));
  }

  private queue(agentId: string): AgentQueue {
    let queue = this.queues.get(agentId);
    if (!queue) {
      queue = {
        agentId,
        items: [],
        ids: new Set(),
        timer: undefined,
        draining: false,
        drained: Promise.resolve(),
        handedOver: false,
        inFlight: undefined,
      };
      this.queues.set(agentId, queue);
    }
    return queue;
  }

  private kick(queue: AgentQueue): void {
    if (this.closed || queue.draining || queue.timer !== undefined || queue.items.length === 0) return;
    queue.draining = true; // before the call: a drain with nothing to wait for ends within it
    queue.drained = this.drain(queue);
  }

  private schedule(queue: AgentQueue, ms: number): void {
    queue.timer = this.options.clock.setTimeout(() => {
      queue.timer = undefined;
      this.kick(queue);
    }, ms);
  }

  private async drain(queue: AgentQueue): Promise<void> {
    try {
      while (!this.closed && this.queues.get(queue.agentId) === queue) {
        const message = queue.items[0];
        if (!message) return;
        const session = this.options.sessions.getReadySession(queue.agentId);
        if (!session) return; // wake() resumes the queue when the session is ready again
        // Fencing: a member whose lease ended (paused, partitioned) hands nothing more to WhatsApp; the lease's new
        // owner loads the queue from the table.
        if (!this.options.mayDispatch(queue.agentId)) return;
        // Paced agents only: for the others this is one map lookup.
        // A read mark or typing is no message of its own: it is not paced.
        const profile = UNPACED_KINDS.has(message.kind) ? null : (this.options.pacing?.profile(queue.agentId) ?? null);
        if (profile) {
          const pause = await this.pace(session, message, profile);
          if (pause === 'again') continue; // it awaited: the queue, the session or the lease may have changed
          if (pause > 0) {
            this.schedule(queue, pause);
            return;
          }
        }
        // A file waits for a place among the file sends before it takes a token: no attempt, no strike.
        if (!this.fileSendFree(message)) {
          this.schedule(queue, FILE_WAIT_MS);
          return;
        }
        const wait = this.options.buckets.take(queue.agentId);
        if (wait > 0) {
          this.schedule(queue, wait);
          return;
        }
        let step: Step;
        try {
          step = await this.sendOne(session, message, queue);
        } catch (err) {
          // Nothing in sendOne should throw; if something does, the same message is tried again later, not lost.
          queue.inFlight = undefined;
          this.options.logger.error({ event: 'outbox.dispatch.error', agentId: queue.agentId, err: errorMessage(err) });
          step = 'retry';
          message.failures += 1;
        }
        if (step === 'wait-ready') return;
        if (step === 'retry') {
          this.schedule(queue, this.retryDelayMs(Math.max(1, message.failures)));
          return;
        }
        const index = queue.items.indexOf(message);
        if (index >= 0) queue.items.splice(index, 1);
        queue.ids.delete(message.id);
      }
    } finally {
      queue.draining = false;
    }
  }

  private async sendOne(session: EngineSession, message: QueuedMessage, queue: AgentQueue): Promise<Step> {
    const isFile = isMediaKind(message.kind);
    if (isFile) this.fileSends += 1;
    try {
      return await this.sendOneHeld(session, message, queue);
    } finally {
      if (isFile) this.fileSends -= 1;
    }
  }

  private fileSendFree(message: QueuedMessage): boolean {
    const { maxFileSends } = this.options;
    return maxFileSends === undefined || !isMediaKind(message.kind) || this.fileSends < maxFileSends;
  }

  private async sendOneHeld(session: EngineSession, message: QueuedMessage, queue: AgentQueue): Promise<Step> {
    const { metrics, logger } = this.options;
    queue.inFlight = message;
    let sent: SentMessage | null;
    try {
      const media = isMediaKind(message.kind) ? await this.options.repository.media(message.id) : null;
      // Checked again after the read: a member paused during it may have lost the lease meanwhile.
      if (!this.options.mayDispatch(message.agentId)) {
        queue.inFlight = undefined;
        return 'wait-ready';
      }
      message.attempts += 1;
      sent = await this.send(session, message, media);
    } catch (err) {
      const reason = errorMessage(err);
      const forgotten = this.queues.get(message.agentId) !== queue;
      if (forgotten && queue.handedOver) {
        // Its lease moves: the next owner sends it, from its row, queued again.
        this.transition(queue, message, 'queued', { error: reason });
        return 'next';
      }
      // WhatsApp refused the recipient (not on WhatsApp, blocked): retrying would only hold the queue.
      const permanent = isAppError(err) || err instanceof RecipientRejectedError || forgotten;
      if (!permanent && !this.options.sessions.getReadySession(message.agentId)) {
        // The session dropped under us: not the message's fault, so it waits for the next ready without a strike.
        this.transition(queue, message, 'queued', { error: reason });
        return 'wait-ready';
      }
      message.failures += 1;
      if (permanent || message.failures > this.maxRetries) {
        this.fail(queue, message, reason);
        return 'next';
      }
      this.transition(queue, message, 'queued', { error: reason });
      metrics.outboxTransitions.inc({ state: 'retried', ...metrics.agentLabel(message.agentId) });
      logger.info({ event: 'outbox.retry', agentId: message.agentId, messageId: message.id, err: reason });
      return 'retry';
    }
    // A read mark or typing has no WhatsApp message of its own.
    const waMessageId = sent?.id ?? null;
    this.transition(queue, message, 'sent', waMessageId === null ? {} : { waMessageId });
    if (message.notBefore !== undefined) this.sentTo(message.agentId, message.toJid);
    metrics.countSent(message.kind, message.agentId);
    this.options.waits.settle(message.id, { status: 'sent', waMessageId });
    return 'next';
  }

  /**
   * A paced head message: plans its send time the first time (kept on its row: 'again'), shows the typing indicator
   * when its time comes ('again'), and otherwise returns how long to wait (0: send now).
   */
  private async pace(
    session: EngineSession,
    message: QueuedMessage,
    profile: PacingProfile,
  ): Promise<number | 'again'> {
    const { clock, logger } = this.options;
    const length = (message.payload.text ?? message.payload.caption ?? '').length;
    const typing = typingMs(profile, length);
    if (message.notBefore === undefined) {
      message.notBefore = await this.plan(message, profile, length);
      return 'again';
    }
    const step = pacingStep(clock.now(), message.notBefore, typing, message.typingShown === true);
    if (step.action === 'send') return 0;
    if (step.action === 'wait') return step.ms;
    message.typingShown = true;
    try {
      // Best effort: an engine without a typing indicator, or one that fails to show it, still sends on time.
      await session.setTyping?.(message.toJid, true);
    } catch (err) {
      logger.debug({ event: 'outbox.pacing.typing_failed', agentId: message.agentId, err: errorMessage(err) });
    }
    return 'again';
  }

  /** The message's send time: planned now, and kept on its row first (the row's own, if it has one already, wins). */
  private async plan(message: QueuedMessage, profile: PacingProfile, length: number): Promise<number> {
    const { clock, repository, logger, pacing } = this.options;
    const now = clock.now();
    const random = pacing?.random?.() ?? Math.random();
    try {
      const lastToRecipient =
        this.lastSent.get(message.agentId)?.get(message.toJid) ??
        (profile.perRecipientGapMs > 0 ? await repository.lastSentTo(message.agentId, message.toJid) : null);
      const { sendAt } = planSend({ profile, now, length, lastToRecipient, random });
      return (await repository.setNotBefore(message.id, sendAt)) ?? sendAt;
    } catch (err) {
      // The database cannot answer: paced from memory, as if from the table; a restart plans it again.
      logger.warn({ event: 'outbox.pacing.plan_failed', agentId: message.agentId, err: errorMessage(err) });
      return planSend({ profile, now, length, lastToRecipient: null, random }).sendAt;
    }
  }

  /** A paced agent sent to `toJid` now. */
  private sentTo(agentId: string, toJid: string): void {
    let recent = this.lastSent.get(agentId);
    if (!recent) {
      recent = new Map();
      this.lastSent.set(agentId, recent);
    }
    recent.delete(toJid); // re-inserted last: the map stays in order of sends
    recent.set(toJid, this.options.clock.now());
    if (recent.size > RECENT_RECIPIENTS) {
      const oldest = recent.keys().next().value;
      if (oldest !== undefined) recent.delete(oldest);
    }
  }

  /** The message will not be sent: its row says why, and its waiting request hears it. */
  private fail(queue: AgentQueue, message: QueuedMessage, reason: string): void {
    const { metrics, logger } = this.options;
    const label = metrics.agentLabel(message.agentId);
    this.transition(queue, message, 'failed', { error: reason });
    metrics.outboxTransitions.inc({ state: 'failed', ...label });
    metrics.errors.inc({ code: 'OUTBOX_SEND_FAILED', ...label });
    logger.warn({ event: 'outbox.failed', agentId: message.agentId, messageId: message.id, err: reason });
    this.options.waits.settle(message.id, { status: 'failed', error: reason });
  }

  /** Records the attempt's outcome; from here reads see it, and `sending` ends. */
  private transition(
    queue: AgentQueue,
    message: QueuedMessage,
    status: OutboxTransition['status'],
    outcome: { waMessageId?: string; error?: string },
  ): void {
    this.options.store.record({
      id: message.id,
      status,
      attempts: message.attempts,
      waMessageId: outcome.waMessageId ?? null,
      // PostgreSQL text cannot hold NUL, and an engine's error message could: that would make the row unwritable.
      error: outcome.error?.replaceAll('\u0000', '') ?? null,
      at: this.options.clock.now(),
    });
    if (status !== 'queued') for (const done of this.watchers) done.add(message.id);
    if (queue.inFlight === message) queue.inFlight = undefined;
  }

  /**
   * For a read of the table about to begin: collects the messages sent or failed here until `stop`. A row the read
   * returns as queued may be one of them (its outcome written after the read's snapshot): it must not be queued again.
   * Costs nothing while no read runs.
   */
  watchDone(): { done: ReadonlySet<string>; stop(): void } {
    const done = new Set<string>();
    this.watchers.add(done);
    return { done, stop: () => void this.watchers.delete(done) };
  }

  private async send(
    session: EngineSession,
    message: QueuedMessage,
    media: Buffer | null,
  ): Promise<SentMessage | null> {
    const { payload, kind, toJid } = message;
    const options: SendOptions = { quotedMessageId: payload.quotedMessageId, mentions: payload.mentions };
    switch (kind) {
      case 'text':
        return session.sendText(toJid, payload.text ?? '', options);
      case 'location':
        if (!payload.location) throw new AppError('INTERNAL_ERROR', 'the location is missing');
        return (session.sendLocation ?? unsupported('locations')).call(session, toJid, payload.location, options);
      case 'contact':
        if (!payload.contact) throw new AppError('INTERNAL_ERROR', 'the contact is missing');
        return (session.sendContact ?? unsupported('contacts')).call(session, toJid, payload.contact, options);
      case 'reaction': {
        const reaction = payload.reaction;
        if (!reaction) throw new AppError('INTERNAL_ERROR', 'the reaction is missing');
        const { emoji, ...target } = reaction;
        await (session.react ?? unsupported('reactions')).call(session, target, emoji);
        return null;
      }
      case 'read':
        await (session.markRead ?? unsupported('read marks')).call(session, toJid);
        return null;
      case 'typing':
        await (session.setTyping ?? unsupported('typing')).call(session, toJid, payload.typing ?? true);
        return null;
      default: {
        if (!media) throw new AppError('INTERNAL_ERROR', 'the file is missing');
        const file = {
          data: media,
          mimeType: payload.mimeType ?? 'application/octet-stream',
          filename: payload.filename,
          caption: payload.caption,
        };
        if (kind === 'image' && !session.sendMedia) return session.sendImage(toJid, file, options);
        return (session.sendMedia ?? unsupported(`${kind} messages`)).call(
          session,
          toJid,
          { ...file, kind, voice: payload.voice },
          options,
        );
      }
    }
  }
}

/** An engine without the member: the message fails at once (an AppError is never retried). */
function unsupported(what: string): never {
  throw new AppError('ENGINE_UNSUPPORTED', `This agent's engine cannot send ${what}.`);
}
