// The inbound pipeline: store → filter → dedup → typing → AI → reply through the outbox, in order within each chat.
import { randomUUID } from 'node:crypto';
import type { AgentAiSettings, AgentConnection, AgentDirectory, ReplySender } from '../ai/agent-ports.js';
import type { AiAnswer, AiAttachment, AiCaller } from '../ai/ai-client.js';
import type { Clock, Timer } from '../clock.js';
import type { InboundMessage, InboundMessageType } from '../engines/engine.js';
import { type AppError, errorMessage, isAppError } from '../errors.js';
import { LazyLogger } from '../observability/lazy-logger.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { jidKind, jidUser, parseRecipient } from '../whatsapp/jid.js';
import { ChatQueue } from './chat-queue.js';
import type { ReportedDropReason } from './developer-report.js';
import { DeveloperReporter } from './developer-reporter.js';
import type { InboundOutcome, InboundRepository } from './inbound.repository.js';
import { filterInbound } from './inbound-filter.js';

const INBOUND_DEFAULT_PARAMETERS = { max_steps: 5 };

/** The scheduler's defaults: `AI_CONCURRENCY_PER_AGENT`, `AI_CONCURRENCY_MAX`, and the bounds on waiting messages. */
export const INBOUND_LIMITS = {
  perAgentConcurrency: 8,
  maxConcurrency: 1_000,
  maxPendingPerChat: 50,
  maxPendingPerAgent: 500,
  maxPending: 20_000,
};

/** One earlier message of the chat, as the AI request's `metadata.history` carries it. */
export interface AiHistoryEntry {
  direction: 'in' | 'out';
  text: string;
  /** ISO 8601. */
  timestamp: string;
}

/** Reads the chat history for the AI request (implemented over the message store, src/history/). */
export interface ChatHistoryReader {
  /** The last `limit` messages of the chat received or sent before `before`, but `excludeId`, oldest first. */
  recentForAi(
    agentId: string,
    chatJid: string,
    options: { excludeId: string; before: Date; limit: number },
  ): Promise<AiHistoryEntry[]>;
}

/** A person as the agent knows them: either address may be unknown (null). */
export interface KnownPerson {
  /** `<digits>@c.us` */
  phoneJid: string | null;
  /** `<id>@lid` */
  lid: string | null;
  pushName: string | null;
}

/** Who is behind an address: the LID and phone pairs the agent has learned (implemented by src/identity/). */
export interface PeopleDirectory {
  /** Learns the pair a message carries, if it carries one. */
  learnFrom(agentId: string, message: InboundMessage): void;
  /** From memory: undefined when only a look-up can say. */
  cached(agentId: string, jid: string): KnownPerson | undefined;
  find(agentId: string, jid: string): Promise<KnownPerson>;
}

/** `metadata.sender` of the AI request: the person's number (digits) and LID where known, and the JID as received. */
export interface AiSender {
  phone: string | null;
  lid: string | null;
  jid: string;
  pushName: string | null;
}

/** A message with its chat named by the person's phone JID whenever it is known, and who sent it. */
interface Resolved {
  message: InboundMessage;
  sender: AiSender;
}

/** Turns a message's file or location into the AI request's `attachments` (implemented by src/media-store/). */
export interface AttachmentCollector {
  /** Never throws: a file that cannot be had is an attachment marked unavailable. Empty for a plain text. */
  collect(agentId: string, message: InboundMessage, connection: AgentConnection): Promise<AiAttachment[]>;
}

/** A message's logger: bound to its agent, trace and id, built only when a line at an enabled level is written. */
type MessageLogger = Pick<Logger, 'debug' | 'info' | 'warn'>;

/** What answer() measured of the AI call, for the stored outcome: null when the AI was not called. */
interface AiTiming {
  latencyMs: number | null;
}

export interface InboundServiceOptions {
  directory: AgentDirectory;
  ai: AiCaller;
  replies: ReplySender;
  repository: Pick<InboundRepository, 'claim' | 'setOutcome' | 'record'>;
  /** The LID and phone pairs; absent: only what each message carries is known. */
  people?: PeopleDirectory | undefined;
  /** `AI_HISTORY_MESSAGES` earlier messages of the chat go to the AI as `metadata.history`; absent or 0: none. */
  history?: { reader: ChatHistoryReader; limit: number } | undefined;
  /** `AI_FORWARD_TYPES`: the message types the AI gets; text only when absent. */
  forwardTypes?: ReadonlySet<InboundMessageType> | undefined;
  /** Downloads files for the AI; without one, messages go to the AI without attachments. */
  attachments?: AttachmentCollector | undefined;
  metrics: Metrics;
  logger: Logger;
  /** `DEVELOPER_NUMBER`, as configured; AI failures and dropped messages are reported there when it is set. */
  developerNumber?: string | undefined;
  defaultCountryCode: string;
  /** Messages of one agent with the AI at once (`AI_CONCURRENCY_PER_AGENT`); one at a time within a chat. */
  perAgentConcurrency?: number | undefined;
  /** Messages with the AI at once across all agents (`AI_CONCURRENCY_MAX`). */
  maxConcurrency?: number | undefined;
  maxPendingPerChat?: number;
  maxPendingPerAgent?: number;
  maxPending?: number;
  clock: Clock;
  newTraceId?: () => string;
}

export class InboundService {
  private readonly queue: ChatQueue;
  /** null when no valid `DEVELOPER_NUMBER` is set. */
  private readonly reporter: DeveloperReporter | null;
  private readonly clock: Clock;
  private readonly newTraceId: () => string;
  private closing = false;
  /** Stores of messages that go to no claim, under way: onIdle and close wait for them. */
  private readonly records = new Set<Promise<void>>();
  /**
   * Per agent, the messages waiting for a look-up of who sent them, chained so that they enter their chats in the
   * order they came.
   */
  private readonly resolving = new Map<string, Promise<void>>();

  constructor(private readonly options: InboundServiceOptions) {
    this.queue = new ChatQueue({
      perAgentConcurrency: options.perAgentConcurrency ?? INBOUND_LIMITS.perAgentConcurrency,
      maxConcurrency: options.maxConcurrency ?? INBOUND_LIMITS.maxConcurrency,
      maxPendingPerChat: options.maxPendingPerChat ?? INBOUND_LIMITS.maxPendingPerChat,
      maxPendingPerAgent: options.maxPendingPerAgent ?? INBOUND_LIMITS.maxPendingPerAgent,
      maxPending: options.maxPending ?? INBOUND_LIMITS.maxPending,
    });
    this.clock = options.clock;
    this.newTraceId = options.newTraceId ?? randomUUID;
    const developerJid = options.developerNumber
      ? parseRecipient(options.developerNumber, options.defaultCountryCode)
      : null;
    if (options.developerNumber && !developerJid) {
      options.logger.warn({ event: 'inbound.developer_number_invalid' }, 'DEVELOPER_NUMBER is not a phone number');
    }
    this.reporter = developerJid
      ? new DeveloperReporter({
          developerJid,
          replies: options.replies,
          clock: options.clock,
          logger: options.logger,
          newTraceId: this.newTraceId,
        })
      : null;
  }

  /**
   * Entry point for every engine `message` event. Returns at once: the work is queued behind the chat's earlier
   * messages, so an engine's event loop is never held up by an AI call.
   */
  handle(agentId: string, message: InboundMessage): void {
    const traceId = this.newTraceId();
    const logger: MessageLogger = new LazyLogger(this.options.logger, { agentId, traceId, messageId: message.id });
    if (!this.options.directory.connection(agentId)) {
      this.count(agentId, 'dropped', logger, { reason: 'not_connected' });
      return;
    }
    this.options.people?.learnFrom(agentId, message);
    const resolved = this.resolve(agentId, message);
    if (!(resolved instanceof Promise) && !this.resolving.has(agentId)) {
      this.admit(agentId, resolved, traceId, logger);
      return;
    }
    // The look-up starts now (look-ups are batched); the message enters its chat after those that came before it.
    const previous = this.resolving.get(agentId) ?? Promise.resolve();
    const next = previous
      .then(async () => this.admit(agentId, await resolved, traceId, logger))
      .catch((err: unknown) => {
        logger.warn({ event: 'inbound.not_admitted', err: errorMessage(err) });
      });
    this.resolving.set(agentId, next);
    void next.then(() => {
      if (this.resolving.get(agentId) === next) this.resolving.delete(agentId);
    });
  }

  /**
   * The chat of a private message named by the person's phone JID when the agent knows it (from the message, or the
   * pairs learned before), so that their messages by LID and by number are one chat: one queue, one history, one
   * AI session. Synchronous when the message or the cache can say; a look-up otherwise.
   */
  private resolve(agentId: string, message: InboundMessage): Resolved | Promise<Resolved> {
    const kind = jidKind(message.chatJid);
    if (message.isGroup || (kind !== 'user' && kind !== 'lid')) {
      return { message, sender: senderOf(message, message.senderPhoneJid ?? null, message.senderLid ?? null) };
    }
    // The sender's addresses are the chat's too, unless the agent wrote it (from another device).
    const phoneJid = (message.fromMe ? null : message.senderPhoneJid) || (kind === 'user' ? message.chatJid : null);
    const lid = (message.fromMe ? null : message.senderLid) || (kind === 'lid' ? message.chatJid : null);
    const people = this.options.people;
    if ((phoneJid && lid) || !people) return canonical(message, { phoneJid, lid, pushName: null });
    // A chat named by its number is settled: its LID, if any, only completes the AI's metadata later.
    if (kind === 'user') {
      return canonical(message, {
        phoneJid,
        lid: people.cached(agentId, message.chatJid)?.lid ?? null,
        pushName: null,
      });
    }
    const known = people.cached(agentId, message.chatJid);
    if (known) return canonical(message, merge(known, phoneJid, lid));
    return people.find(agentId, message.chatJid).then((person) => canonical(message, merge(person, phoneJid, lid)));
  }

  /** A message whose chat is settled: stored, filtered, and queued behind its chat's earlier messages. */
  private admit(agentId: string, resolved: Resolved, traceId: string, logger: MessageLogger): void {
    const { message, sender } = resolved;
    const connection = this.options.directory.connection(agentId);
    if (!connection) {
      this.count(agentId, 'dropped', logger, { reason: 'not_connected' });
      return;
    }
    // Every message of a connected agent is stored: those the AI gets by their claim, the others here.
    if (this.closing) {
      this.record(agentId, message, 'dropped', logger);
      this.count(agentId, 'dropped', logger, { reason: 'shutting_down' });
      return;
    }
    const verdict = filterInbound(message, connection.identity, this.options.forwardTypes);
    if (!verdict.pass) {
      this.record(agentId, message, 'ignored', logger);
      this.count(agentId, 'ignored', logger, { reason: verdict.reason });
      return;
    }
    const task = (releaseSlot: () => void) => this.process(agentId, message, sender, traceId, logger, releaseSlot);
    const limit = this.queue.push(agentId, message.chatJid, task);
    if (limit) {
      // Stored as dropped, not claimed: WhatsApp's redelivery, if any, is answered then.
      this.record(agentId, message, 'dropped', logger);
      this.drop(agentId, message, traceId, logger, 'overloaded', { limit });
    }
  }

  /** Stores a message that gets no claim, in the background (batched); a failure costs its history line only. */
  private record(agentId: string, message: InboundMessage, outcome: 'ignored' | 'dropped', logger: MessageLogger) {
    const write: Promise<void> = this.options.repository
      .record(agentId, message, new Date(this.clock.now()), outcome)
      .catch((err: unknown) => {
        logger.warn({ event: 'inbound.not_stored', err: errorMessage(err) });
      })
      .finally(() => this.records.delete(write));
    this.records.add(write);
  }

  private async recordsSettled(): Promise<void> {
    while (this.records.size > 0) await Promise.all([...this.records]);
  }

  private async resolved(): Promise<void> {
    while (this.resolving.size > 0) await Promise.all([...this.resolving.values()]);
  }

  /** Resolves when every accepted message has been handled and every report under way has been sent. */
  async onIdle(): Promise<void> {
    await this.resolved();
    await this.queue.onIdle();
    await this.recordsSettled();
    await this.reporter?.idle();
  }

  /** Takes no new messages and waits for those under way (each is bounded by the AI timeout), at most `graceMs`. */
  async close(graceMs = Number.POSITIVE_INFINITY): Promise<void> {
    this.closing = true;
    let timer: Timer | undefined;
    // Not a background timer: shutdown awaits this grace.
    const grace = Number.isFinite(graceMs)
      ? new Promise<void>((resolve) => {
          timer = this.clock.setTimeout(resolve, graceMs);
        })
      : new Promise<void>(() => {});
    // The summaries still counting go out last, while the outbox is still up.
    const drained = this.resolved()
      .then(() => this.queue.onIdle())
      .then(() => this.recordsSettled())
      .then(() => this.reporter?.close());
    await Promise.race([drained, grace]);
    timer?.cancel();
  }

  private async process(
    agentId: string,
    message: InboundMessage,
    sender: AiSender,
    traceId: string,
    logger: MessageLogger,
    releaseSlot: () => void,
  ): Promise<void> {
    const { repository } = this.options;
    if (this.closing) {
      // Not claimed, so WhatsApp's redelivery after the restart is answered then.
      this.record(agentId, message, 'dropped', logger);
      this.count(agentId, 'dropped', logger, { reason: 'shutting_down' });
      return;
    }
    const at = new Date(this.clock.now());
    // The agent's settings (and the chat's history) are read while the claim is written: one database round trip
    // before the AI call, not two.
    const settings = this.options.directory.aiSettings(agentId).catch(() => null);
    const history = this.readHistory(agentId, message, at, logger);
    const completed = this.completeSender(agentId, sender);
    let claimed: boolean;
    try {
      claimed = await repository.claim(agentId, message, at);
    } catch (err) {
      // Without the dedup record a redelivery could be answered twice; not answering is the safer side.
      this.drop(agentId, message, traceId, logger, 'dedup_unavailable', { err: errorMessage(err) });
      return;
    }
    if (!claimed) {
      this.count(agentId, 'duplicate', logger);
      return;
    }
    // ai_error and dropped leave the claim open to WhatsApp's redelivery (InboundRepository.claim takes them over).
    const timing: AiTiming = { latencyMs: null };
    const outcome = await this.answer(
      agentId,
      message,
      await completed,
      traceId,
      logger,
      releaseSlot,
      await settings,
      await history,
      timing,
    );
    await repository.setOutcome(agentId, message.id, outcome, timing.latencyMs).catch((err: unknown) => {
      logger.warn({ event: 'inbound.outcome_not_saved', err: errorMessage(err) });
    });
  }

  /**
   * The sender's other address for the AI's metadata, looked up only for a message to be answered (and alongside its
   * claim): the LID of a number, a group member's number. The chat never waits for it (see resolve).
   */
  private async completeSender(agentId: string, sender: AiSender): Promise<AiSender> {
    const people = this.options.people;
    if (!people || (sender.phone && sender.lid)) return sender;
    const address = sender.lid ?? (sender.phone ? `${sender.phone}@c.us` : null);
    if (!address) return sender;
    const person = await people.find(agentId, address);
    return {
      ...sender,
      phone: sender.phone ?? (person.phoneJid ? jidUser(person.phoneJid) : null),
      lid: sender.lid ?? person.lid,
    };
  }

  private async answer(
    agentId: string,
    message: InboundMessage,
    sender: AiSender,
    traceId: string,
    logger: MessageLogger,
    releaseSlot: () => void,
    settings: AgentAiSettings | null,
    history: AiHistoryEntry[] | null,
    timing: AiTiming,
  ): Promise<InboundOutcome> {
    const { directory, ai, replies } = this.options;
    const connection = directory.connection(agentId);
    // The agent may have been deleted or disconnected while the message waited in its chat's queue.
    if (!settings) return this.count(agentId, 'dropped', logger, { reason: 'agent_not_found' });
    if (!connection) return this.count(agentId, 'dropped', logger, { reason: 'not_connected' });

    const setTyping = async (typing: boolean) => {
      try {
        await connection.setTyping?.(message.chatJid, typing);
      } catch (err) {
        logger.debug({ event: 'inbound.typing_failed', typing, err: errorMessage(err) });
      }
    };
    let answer: AiAnswer | undefined;
    let failure: unknown;
    await setTyping(true);
    // The same stopwatch as the AI client's latency (it measures a failure too, which throws without one).
    const started = performance.now();
    try {
      const attachments = (await this.options.attachments?.collect(agentId, message, connection)) ?? [];
      answer = await ai.execute({
        agentId,
        apiKey: settings.apiKey,
        endpointUrlRun: settings.endpointUrlRun,
        traceId,
        input: message.text,
        parameters: INBOUND_DEFAULT_PARAMETERS,
        // The AI keeps its memory per chat: the person in a private chat (their number whenever it is known, also
        // when they wrote by LID; else the LID, `<id>@lid`), the whole group in a group.
        sessionId: message.isGroup || jidKind(message.chatJid) !== 'user' ? message.chatJid : jidUser(message.chatJid),
        metadata: {
          whatsapp_name: message.pushName,
          chat_name: message.chatName,
          chat_jid: message.chatJid,
          sender_jid: message.senderJid,
          message_id: message.id,
          is_group: message.isGroup,
          agent_id: agentId,
          sender,
          ...(history ? { history } : {}),
        },
        attachments,
      });
    } catch (err) {
      failure = err;
    } finally {
      timing.latencyMs = Math.round(answer?.latencyMs ?? performance.now() - started);
      await setTyping(false);
    }
    // What is left waits on the outbox's rate limit, not on this process: other chats may use the slot meanwhile,
    // while this chat stays locked so its replies keep their order.
    releaseSlot();
    if (!answer) return this.aiFailed(agentId, message, traceId, logger, failure);

    const { reply, latencyMs } = answer;
    if (reply === null) return this.count(agentId, 'no_reply', logger, { latencyMs: Math.round(latencyMs) });
    try {
      const receipt = await replies.sendText(agentId, message.chatJid, reply, {
        quotedMessageId: message.isGroup ? message.id : undefined,
        traceId,
      });
      if (receipt.status === 'failed') return this.drop(agentId, message, traceId, logger, 'reply_failed');
    } catch (err) {
      return this.drop(agentId, message, traceId, logger, 'reply_not_queued', { err: errorMessage(err) });
    }
    return this.count(agentId, 'replied', logger, { latencyMs: Math.round(latencyMs), replyLength: reply.length });
  }

  /** The chat's last messages for the AI, when AI_HISTORY_MESSAGES asks for them; null when off or unreadable. */
  private async readHistory(
    agentId: string,
    message: InboundMessage,
    before: Date,
    logger: MessageLogger,
  ): Promise<AiHistoryEntry[] | null> {
    const history = this.options.history;
    if (!history || history.limit <= 0) return null;
    try {
      return await history.reader.recentForAi(agentId, message.chatJid, {
        excludeId: message.id,
        before,
        limit: history.limit,
      });
    } catch (err) {
      logger.warn({ event: 'inbound.history_unavailable', err: errorMessage(err) });
      return null;
    }
  }

  private aiFailed(
    agentId: string,
    message: InboundMessage,
    traceId: string,
    logger: MessageLogger,
    err: unknown,
  ): InboundOutcome {
    const code: AppError['code'] = isAppError(err) ? err.code : 'INTERNAL_ERROR';
    const reason = code === 'AI_TIMEOUT' ? 'TIMEOUT' : 'ERROR';
    const { metrics } = this.options;
    metrics.errors.inc({ code, ...metrics.agentLabel(agentId) });
    logger.warn({
      event: reason === 'TIMEOUT' ? 'inbound.ai.timeout' : 'inbound.ai.error',
      code,
      err: errorMessage(err),
    });
    // Not awaited: a report waits on the outbox, and onIdle/close wait for it instead of this chat.
    void this.reporter?.report({
      kind: 'ai_failure',
      reason,
      agentId,
      senderJid: message.senderJid,
      text: message.text,
      traceId,
    });
    return this.count(agentId, 'ai_error', logger);
  }

  /**
   * Counts a message the user will get no answer to, and reports it to the developer. The drops not reported here
   * (not connected, agent deleted, shutting down) are the operator's own doing or seen on the session itself.
   */
  private drop(
    agentId: string,
    message: InboundMessage,
    traceId: string,
    logger: MessageLogger,
    reason: ReportedDropReason,
    fields: Record<string, unknown> = {},
  ): InboundOutcome {
    this.count(agentId, 'dropped', logger, { reason, ...fields });
    if (this.reporter) {
      void this.reporter.report({
        kind: 'dropped',
        reason,
        agentId,
        senderJid: message.senderJid,
        text: message.text,
        traceId,
      });
    }
    return 'dropped';
  }

  private count(
    agentId: string,
    outcome: InboundOutcome,
    logger: MessageLogger,
    fields: Record<string, unknown> = {},
  ): InboundOutcome {
    const { metrics } = this.options;
    metrics.messagesReceived.inc({ outcome, ...metrics.agentLabel(agentId) });
    // Ignored messages are the bulk of group traffic: info would drown the log.
    const level = outcome === 'ignored' ? 'debug' : outcome === 'dropped' ? 'warn' : 'info';
    if (outcome !== 'ai_error') logger[level]({ event: `inbound.${outcome}`, ...fields });
    return outcome;
  }
}

/** The sender as the AI's metadata names them, from what the message (and the known pairs) say. */
function senderOf(message: InboundMessage, phoneJid: string | null, lid: string | null): AiSender {
  const kind = jidKind(message.senderJid);
  const phone = phoneJid ?? (kind === 'user' ? message.senderJid : null);
  return {
    phone: phone ? jidUser(phone) : null,
    lid: lid ?? (kind === 'lid' ? message.senderJid : null),
    jid: message.senderJid,
    pushName: message.pushName,
  };
}

/** What the message says of an address, completed by what the agent knows. */
function merge(known: KnownPerson, phoneJid: string | null, lid: string | null): KnownPerson {
  return { phoneJid: phoneJid ?? known.phoneJid, lid: lid ?? known.lid, pushName: known.pushName };
}

/** The private message with its chat (and, when the person wrote it, its sender) named by the phone JID if known. */
function canonical(message: InboundMessage, person: KnownPerson): Resolved {
  const chatJid = person.phoneJid ?? person.lid ?? message.chatJid;
  const senderJid = message.fromMe || message.senderJid !== message.chatJid ? message.senderJid : chatJid;
  const sender = message.fromMe
    ? senderOf(message, message.senderPhoneJid ?? null, message.senderLid ?? null)
    : senderOf(message, person.phoneJid, person.lid);
  return { message: chatJid === message.chatJid ? message : { ...message, chatJid, senderJid }, sender };
}
