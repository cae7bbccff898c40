// The sandbox engine: a simulated WhatsApp network in memory, for tests and demos. Logins persist in the database.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import { type Clock, systemClock, type Timer } from '../../clock.js';
import type { Database } from '../../db/client.js';
import {
  type AckStatus,
  type Engine,
  type EngineSession,
  type EngineSessionEvents,
  type InboundMessage,
  type MediaDownload,
  OUTBOUND_KINDS,
  type OutboundContact,
  type OutboundImage,
  type OutboundKind,
  type OutboundLocation,
  type OutboundMedia,
  type ReactionTarget,
  RecipientRejectedError,
  type SendOptions,
  type SentMessage,
} from '../engine.js';
import { databaseSandboxLogins, memorySandboxLogins, type SandboxLogins } from './sandbox-logins.js';

const SANDBOX_DEFAULT_PHONE = '6281100000000';
const MAX_SENT_PER_AGENT = 10_000;
/** Files of delivered messages a session keeps for downloadMedia, as real engines keep their recent messages. */
const MAX_MEDIA_PER_SESSION = 500;
const MESSAGE_ID_PREFIX = randomBytes(4).toString('hex').toUpperCase();
let messageCounter = 0;

export interface SandboxSentEntry {
  messageId: string;
  to: string;
  kind: SandboxSentKind;
  text?: string;
  caption?: string;
  mimeType?: string;
  bytes?: number;
  /** SHA-256 of a file's bytes (hex), so a test can check exactly what went out. */
  sha256?: string;
  filename?: string;
  voice?: boolean;
  latitude?: number;
  longitude?: number;
  name?: string;
  address?: string;
  vcard?: string;
  displayName?: string;
  emoji?: string;
  /** reaction: WhatsApp's id of the message reacted to. */
  targetMessageId?: string;
  quotedMessageId?: string;
  mentions?: string[];
  typing?: boolean;
  /**
   * The chat the message reached: `to`, or for a LID whose number the sandbox's network knows (a message delivered
   * from it with `phone`), that number's chat, as WhatsApp shows one person's messages in one chat.
   */
  chat: string;
  at: string;
}

/** Every kind a session sends is logged. */
export const SANDBOX_SENT_KINDS = OUTBOUND_KINDS;
export type SandboxSentKind = OutboundKind;

/** How an injected send failure looks: a network error, or WhatsApp refusing the recipient. */
export type SandboxFailure = 'network' | RecipientRejectedError['reason'];

export type SandboxState = 'idle' | 'starting' | 'qr' | 'connected' | 'disconnected' | 'stopped';

export interface SandboxEngineOptions {
  /**
   * Where scanned logins are kept (sandbox_logins), so that every process on the database resumes them. Without
   * one, they are kept in memory, for this engine only.
   */
  database?: Database;
  /** How often a waiting session shows a new QR code, as WhatsApp does. */
  qrRefreshMs?: number;
  /** The service's clock, for the sent log's times and the QR refresh; the system clock when used on its own. */
  clock?: Clock;
}

interface StoredLogin {
  phone: string;
}

/** The engine, and the control surface that plays the phone and the network for every sandbox session. */
export class SandboxEngine implements Engine {
  readonly name = 'sandbox' as const;
  private readonly sessions = new Map<string, SandboxSession>();
  /** Kept with the time as a Date: formatted only when a test reads the log, not on every send. */
  private readonly sentLog = new Map<string, Array<{ entry: Omit<SandboxSentEntry, 'at'>; at: Date }>>();
  /** The phone JID behind each LID the simulated network has seen a number for, oldest first. */
  private readonly phoneOfLid = new Map<string, string>();

  readonly clock: Clock;
  private readonly logins: SandboxLogins;

  constructor(private readonly options: SandboxEngineOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.logins = options.database ? databaseSandboxLogins(options.database) : memorySandboxLogins();
  }

  createSession(agentId: string): EngineSession {
    const session = new SandboxSession(agentId, this);
    this.sessions.set(agentId, session);
    return session;
  }

  async hasStoredLogin(agentId: string): Promise<boolean> {
    return (await this.readLogin(agentId)) !== null;
  }

  async clearStoredLogin(agentId: string): Promise<void> {
    await this.logins.delete(agentId);
  }

  async close(): Promise<void> {
    for (const session of this.sessions.values()) await session.stop();
    this.sessions.clear();
  }

  // ---- control surface -------------------------------------------------------------------------------------------

  /** The live session of an agent, if one was created and not replaced. */
  session(agentId: string): SandboxSession | undefined {
    return this.sessions.get(agentId);
  }

  /** Plays the phone scanning the current QR code (or typing the pairing code). */
  async scan(agentId: string, phone = SANDBOX_DEFAULT_PHONE): Promise<void> {
    const session = this.requireSession(agentId);
    if (session.state !== 'qr') throw new SandboxStateError(`the session is ${session.state}, not showing a QR code`);
    await this.logins.save(agentId, phone);
    session.connect(phone);
  }

  /**
   * Delivers a message to the agent as a real engine would. `file`: the bytes of its attachment, which the session's
   * downloadMedia then hands out; without them a download of the message fails, as one WhatsApp purged would.
   */
  deliver(agentId: string, message: Omit<InboundMessage, 'id'> & { id?: string }, file?: Buffer): string {
    const session = this.requireSession(agentId);
    if (session.state !== 'connected') throw new SandboxStateError(`the session is ${session.state}, not connected`);
    const id = message.id ?? `SBX${randomBytes(8).toString('hex').toUpperCase()}`;
    if (message.senderLid && message.senderPhoneJid) this.learnPhone(message.senderLid, message.senderPhoneJid);
    if (file)
      session.keepMedia(id, {
        data: file,
        mimeType: message.media?.mimeType ?? null,
        filename: message.media?.filename ?? null,
      });
    session.emit('message', { ...message, id });
    return id;
  }

  /** Drops the connection, as the network (loggedOut false) or the phone unlinking the device (true) would. */
  async disconnect(agentId: string, loggedOut: boolean): Promise<void> {
    const session = this.requireSession(agentId);
    if (loggedOut) await this.clearStoredLogin(agentId);
    session.drop(loggedOut ? 'LOGOUT' : 'NETWORK', loggedOut);
  }

  /**
   * Makes the next `count` sends of this agent fail: as a flaky network would (`network`), or as WhatsApp refusing
   * the recipient would (`not_on_whatsapp`, `blocked`).
   */
  failSends(agentId: string, count: number, reason: SandboxFailure = 'network'): void {
    const session = this.requireSession(agentId);
    session.failuresToInject = count;
    session.failureReason = reason;
  }

  /**
   * Plays WhatsApp reporting what became of a message the agent sent (`waMessageId`, as the sent log has it): the
   * session emits the receipt, stamped with the sandbox's clock. Returns false, and reports nothing, when the agent
   * sent no such message.
   */
  ack(agentId: string, waMessageId: string, status: AckStatus, error?: string): boolean {
    const session = this.requireSession(agentId);
    if (session.state !== 'connected') throw new SandboxStateError(`the session is ${session.state}, not connected`);
    const known = (this.sentLog.get(agentId) ?? []).some(
      ({ entry }) => entry.messageId === waMessageId && !NO_MESSAGE_KINDS.has(entry.kind),
    );
    if (!known) return false;
    session.emit('ack', {
      waMessageId,
      status,
      at: this.clock.now(),
      ...(status === 'error' ? { error: error ?? 'sandbox: the message could not be delivered' } : {}),
    });
    return true;
  }

  sent(agentId: string): SandboxSentEntry[] {
    return (this.sentLog.get(agentId) ?? [])
      .slice(-MAX_SENT_PER_AGENT)
      .map(({ entry, at }) => ({ ...entry, at: at.toISOString() }));
  }

  // ---- used by SandboxSession ------------------------------------------------------------------------------------

  record(agentId: string, sent: Omit<SandboxSentEntry, 'at' | 'chat'>): void {
    const entry = { ...sent, chat: this.phoneOfLid.get(sent.to) ?? sent.to };
    let log = this.sentLog.get(agentId);
    if (!log) {
      log = [];
      this.sentLog.set(agentId, log);
    }
    log.push({ entry, at: new Date(this.clock.now()) });
    // The oldest go a batch at a time: shift() on a full log would move all of it on every send.
    if (log.length >= 2 * MAX_SENT_PER_AGENT) log.splice(0, log.length - MAX_SENT_PER_AGENT);
  }

  private learnPhone(lid: string, phoneJid: string): void {
    this.phoneOfLid.delete(lid);
    this.phoneOfLid.set(lid, phoneJid);
    if (this.phoneOfLid.size > MAX_SENT_PER_AGENT) {
      const oldest = this.phoneOfLid.keys().next().value;
      if (oldest !== undefined) this.phoneOfLid.delete(oldest);
    }
  }

  get qrRefreshMs(): number {
    return this.options.qrRefreshMs ?? 20_000;
  }

  async readLogin(agentId: string): Promise<StoredLogin | null> {
    const phone = await this.logins.phone(agentId);
    return phone === null ? null : { phone };
  }

  /** The agent was deleted: what it sent goes too (an agent created again with its id starts with an empty log). */
  forgetAgent(agentId: string): void {
    this.sentLog.delete(agentId);
  }

  forget(session: SandboxSession): void {
    if (this.sessions.get(session.agentId) === session) this.sessions.delete(session.agentId);
  }

  private requireSession(agentId: string): SandboxSession {
    const session = this.sessions.get(agentId);
    if (!session || session.state === 'stopped') throw new SandboxStateError('the agent has no running session');
    return session;
  }
}

export class SandboxStateError extends Error {
  override name = 'SandboxStateError';
}

export class SandboxSession extends EventEmitter<EngineSessionEvents> implements EngineSession {
  state: SandboxState = 'idle';
  failuresToInject = 0;
  failureReason: SandboxFailure = 'network';
  private qrTimer: Timer | undefined;
  private phone: string | null = null;
  private readonly media = new Map<string, SandboxFile>();

  constructor(
    readonly agentId: string,
    private readonly engine: SandboxEngine,
  ) {
    super();
  }

  async start(): Promise<void> {
    this.state = 'starting';
    const login = await this.engine.readLogin(this.agentId);
    if (this.state !== 'starting') return; // stopped meanwhile
    if (login) {
      setImmediate(() => this.connect(login.phone));
      return;
    }
    this.state = 'qr';
    const showQr = () => this.emit('qr', `sandbox:${this.agentId}:${randomUUID()}`);
    setImmediate(showQr);
    this.qrTimer = this.engine.clock.setInterval(showQr, this.engine.qrRefreshMs, { background: true });
  }

  async stop(): Promise<void> {
    this.clearQrTimer();
    this.state = 'stopped';
    this.engine.forget(this);
  }

  async logout(): Promise<void> {
    await this.engine.clearStoredLogin(this.agentId);
    await this.stop();
  }

  async sendText(to: string, text: string, options: SendOptions = {}): Promise<SentMessage> {
    return this.sendEntry(to, { kind: 'text', text }, options);
  }

  async sendImage(to: string, image: OutboundImage, options: SendOptions = {}): Promise<SentMessage> {
    return this.sendMedia(to, { ...image, kind: 'image' }, options);
  }

  async sendMedia(to: string, media: OutboundMedia, options: SendOptions = {}): Promise<SentMessage> {
    return this.sendEntry(
      to,
      {
        kind: media.kind,
        mimeType: media.mimeType,
        bytes: media.data.length,
        sha256: createHash('sha256').update(media.data).digest('hex'),
        ...(media.caption ? { caption: media.caption } : {}),
        ...(media.kind === 'document' && media.filename ? { filename: media.filename } : {}),
        ...(media.kind === 'audio' ? { voice: media.voice === true } : {}),
      },
      options,
    );
  }

  async sendLocation(to: string, location: OutboundLocation, options: SendOptions = {}): Promise<SentMessage> {
    const { latitude, longitude, name, address } = location;
    const where = { latitude, longitude, ...(name ? { name } : {}), ...(address ? { address } : {}) };
    return this.sendEntry(to, { kind: 'location', ...where }, options);
  }

  async sendContact(to: string, contact: OutboundContact, options: SendOptions = {}): Promise<SentMessage> {
    return this.sendEntry(to, { kind: 'contact', vcard: contact.vcard, displayName: contact.displayName }, options);
  }

  /** A message sent: checked as WhatsApp would take it, logged with its new id and its options. */
  private sendEntry(
    to: string,
    entry: Omit<SandboxSentEntry, 'messageId' | 'to' | 'at' | 'chat'>,
    options: SendOptions,
  ): SentMessage {
    this.assertCanSend(to);
    const messageId = this.newMessageId();
    this.engine.record(this.agentId, { messageId, to, ...entry, ...sendExtras(options) });
    return { id: messageId };
  }

  async react(target: ReactionTarget, emoji: string): Promise<void> {
    this.assertCanSend(target.chatJid);
    this.engine.record(this.agentId, {
      messageId: this.newMessageId(),
      to: target.chatJid,
      kind: 'reaction',
      emoji,
      targetMessageId: target.waMessageId,
    });
  }

  async markRead(chatJid: string): Promise<void> {
    if (this.state !== 'connected') throw new Error('sandbox: not connected');
    this.engine.record(this.agentId, { messageId: this.newMessageId(), to: chatJid, kind: 'read' });
  }

  async setTyping(chatJid: string, typing: boolean): Promise<void> {
    if (this.state !== 'connected') throw new Error('sandbox: not connected');
    this.engine.record(this.agentId, { messageId: this.newMessageId(), to: chatJid, kind: 'typing', typing });
  }

  async requestPairingCode(_phone: string): Promise<string> {
    if (this.state !== 'qr') throw new Error(`sandbox: cannot pair while ${this.state}`);
    const code = randomBytes(4).toString('hex').toUpperCase();
    setImmediate(() => this.emit('pairing_code', code));
    return code;
  }

  async downloadMedia(messageId: string): Promise<MediaDownload> {
    if (this.state !== 'connected') throw new Error('sandbox: not connected');
    const file = this.media.get(messageId);
    if (!file) throw new Error('sandbox: the message has no file to download');
    return { stream: Readable.from([file.data]), mimeType: file.mimeType, filename: file.filename };
  }

  /** Keeps a delivered message's file for downloadMedia; the oldest goes past the bound. */
  keepMedia(messageId: string, file: SandboxFile): void {
    this.media.delete(messageId);
    this.media.set(messageId, file);
    if (this.media.size > MAX_MEDIA_PER_SESSION) {
      const oldest = this.media.keys().next().value;
      if (oldest !== undefined) this.media.delete(oldest);
    }
  }

  /** Called by the control surface: the phone scanned, or the stored login was resumed. */
  connect(phone: string): void {
    if (this.state === 'stopped') return;
    this.clearQrTimer();
    this.phone = phone;
    this.state = 'connected';
    this.emit('authenticated');
    this.emit('ready', { me: `${phone}@c.us`, lid: null });
  }

  drop(reason: string, loggedOut: boolean): void {
    this.clearQrTimer();
    this.state = 'disconnected';
    this.emit('disconnected', { reason, loggedOut });
  }

  private assertCanSend(to: string): void {
    if (this.state !== 'connected' || !this.phone) throw new Error('sandbox: not connected');
    if (this.failuresToInject > 0) {
      this.failuresToInject -= 1;
      if (this.failureReason !== 'network') throw new RecipientRejectedError(this.failureReason, to);
      throw new Error('sandbox: injected send failure');
    }
  }

  private newMessageId(): string {
    // Unique per process and cheap: a random prefix drawn once, then a counter.
    messageCounter += 1;
    return `true_${this.phone}@c.us_SBX${MESSAGE_ID_PREFIX}${messageCounter.toString(16).toUpperCase().padStart(8, '0')}`;
  }

  private clearQrTimer(): void {
    this.qrTimer?.cancel();
    this.qrTimer = undefined;
  }
}

interface SandboxFile {
  data: Buffer;
  mimeType: string | null;
  filename: string | null;
}

/** Entries that are no message of their own: WhatsApp reports no receipts for them. */
const NO_MESSAGE_KINDS = new Set<SandboxSentKind>(['typing', 'read', 'reaction']);

function sendExtras(options: SendOptions): Pick<SandboxSentEntry, 'quotedMessageId' | 'mentions'> {
  return {
    ...(options.quotedMessageId ? { quotedMessageId: options.quotedMessageId } : {}),
    ...(options.mentions?.length ? { mentions: options.mentions } : {}),
  };
}
