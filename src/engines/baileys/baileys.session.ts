// One agent's Baileys socket behind the port: lifecycle, event mapping, sends. Mapping itself is in to-*.ts.
import { EventEmitter } from 'node:events';
import type { AnyMessageContent, AuthenticationState, ConnectionState, proto, WAMessage, WAMessageKey } from 'baileys';
import type { Logger } from '../../observability/logger.js';
import type {
  EngineSession,
  EngineSessionEvents,
  IdentityPair,
  MediaDownload,
  OutboundContact,
  OutboundImage,
  OutboundLocation,
  OutboundMedia,
  ReactionTarget,
  SendOptions,
  SentMessage,
} from '../engine.js';
import { KnownRecipients } from '../known-recipients.js';
import type { BaileysAuthStore } from './auth-state.js';
import { loadedBaileys } from './baileys.runtime.js';
import type { BaileysMediaDownloader, BaileysSocket, BaileysSocketFactory } from './baileys.types.js';
import { RecentMessages } from './recent-messages.js';
import { toAcks } from './to-ack.js';
import { pairsFromContacts, pairsFromMappings } from './to-identity-pairs.js';
import {
  mediaOfMessage,
  toBaileysJid,
  toCanonicalJid,
  toCloseAction,
  toIdentity,
  toInboundMessage,
} from './to-inbound-message.js';
import { toMediaContent } from './to-media-content.js';

export type BaileysSessionState = 'idle' | 'starting' | 'qr' | 'connected' | 'disconnected' | 'stopped';

/** Restarts asked for by WhatsApp in a row (after pairing it asks once); more means something is wrong. */
const MAX_RESTARTS = 3;
const GROUP_NAME_TIMEOUT_MS = 3_000;
/** Unread message keys kept per chat, and chats kept, for markRead. */
const MAX_UNREAD_PER_CHAT = 50;
const MAX_UNREAD_CHATS = 1_000;

export interface BaileysSessionOptions {
  agentId: string;
  logger: Logger;
  /** Baileys' own log, already quieted. */
  libraryLogger: Logger;
  auth: BaileysAuthStore;
  createSocket: BaileysSocketFactory;
  /** Baileys' downloadMediaMessage (a fake in tests). */
  downloadMedia: BaileysMediaDownloader;
  /** Where the socket connects; WhatsApp's address when absent. */
  webSocketUrl?: string | undefined;
  connectTimeoutMs?: number | undefined;
}

export class BaileysSession extends EventEmitter<EngineSessionEvents> implements EngineSession {
  readonly agentId: string;
  state: BaileysSessionState = 'idle';
  private socket: BaileysSocket | undefined;
  private authState: AuthenticationState | undefined;
  private restarts = 0;
  private readonly recent = new RecentMessages(500);
  private readonly groupNames = new Map<string, string | null>();
  private readonly recipients = new KnownRecipients();
  /** Keys of the messages received in each chat (Baileys JID) since it was last marked read: markRead sends these. */
  private readonly unread = new Map<string, WAMessageKey[]>();
  /** Inbound messages are mapped one after another, so their order survives the group-name lookups. */
  private inbound: Promise<void> = Promise.resolve();

  constructor(private readonly options: BaileysSessionOptions) {
    super();
    this.agentId = options.agentId;
  }

  /** Rejects only when the stored auth cannot be read; connection failures arrive as `disconnected`. */
  async start(): Promise<void> {
    if (this.socket || this.state === 'starting') return; // already running, or a start is on its way
    this.state = 'starting';
    try {
      const state = await this.options.auth.load();
      if (this.state !== 'starting') return; // stopped meanwhile
      this.authState = state;
      this.restarts = 0;
      this.connect(); // Baileys throws here only for a configuration it refuses outright
    } catch (error) {
      if (this.state === 'starting') this.state = 'idle';
      throw error;
    }
  }

  async stop(): Promise<void> {
    this.state = 'stopped';
    await this.release();
  }

  async logout(): Promise<void> {
    const socket = this.socket;
    const wasConnected = this.state === 'connected';
    this.state = 'stopped';
    this.socket = undefined;
    if (socket && wasConnected) {
      // Best effort: tell WhatsApp to unlink this device. Without a connection there is nobody to tell.
      await withTimeout(socket.logout(), 5_000).catch((error: unknown) =>
        this.options.logger.warn({ event: 'engine.logout.failed', err: String(error) }, 'logout failed'),
      );
    }
    if (socket) await Promise.resolve(socket.end(undefined)).catch(() => {});
    await this.options.auth.clear();
  }

  async sendText(to: string, text: string, options: SendOptions = {}): Promise<SentMessage> {
    const mentions = options.mentions?.map(toBaileysJid);
    return this.send(to, { text, ...(mentions?.length ? { mentions } : {}) }, options);
  }

  async sendImage(to: string, image: OutboundImage, options: SendOptions = {}): Promise<SentMessage> {
    return this.sendMedia(to, { ...image, kind: 'image' }, options);
  }

  async sendMedia(to: string, media: OutboundMedia, options: SendOptions = {}): Promise<SentMessage> {
    const mentions = options.mentions?.map(toBaileysJid);
    return this.send(to, toMediaContent(media, mentions ?? []), options);
  }

  async sendLocation(to: string, location: OutboundLocation, options: SendOptions = {}): Promise<SentMessage> {
    const content = {
      location: {
        degreesLatitude: location.latitude,
        degreesLongitude: location.longitude,
        ...(location.name ? { name: location.name } : {}),
        ...(location.address ? { address: location.address } : {}),
      },
    };
    return this.send(to, content, options);
  }

  async downloadMedia(messageId: string): Promise<MediaDownload> {
    const socket = this.connectedSocket();
    const message = this.recent.get(messageId);
    const media = message ? mediaOfMessage(message) : null;
    if (!message || !media) throw new Error('baileys: no recent message with a file has this id');
    // An expired link on WhatsApp's servers is renewed by asking the sender's phone to upload the file again.
    const stream = await this.options.downloadMedia(
      message,
      'stream',
      {},
      { logger: this.options.libraryLogger, reuploadRequest: (m) => socket.updateMediaMessage(m) },
    );
    return { stream, mimeType: media.mimeType, filename: media.filename };
  }

  async sendContact(to: string, contact: OutboundContact, options: SendOptions = {}): Promise<SentMessage> {
    const content = {
      contacts: {
        displayName: contact.displayName,
        contacts: [{ displayName: contact.displayName, vcard: contact.vcard }],
      },
    };
    return this.send(to, content, options);
  }

  /** A message to `to`: on the connected socket, to a recipient WhatsApp has, quoting as `options` ask. */
  private async send(to: string, content: AnyMessageContent, options: SendOptions): Promise<SentMessage> {
    const socket = this.connectedSocket();
    await this.checkRecipient(socket, to);
    const jid = toBaileysJid(to);
    return this.sentId(await socket.sendMessage(jid, content, this.quote(jid, options)));
  }

  async react(target: ReactionTarget, emoji: string): Promise<void> {
    const socket = this.connectedSocket();
    const remoteJid = toBaileysJid(target.chatJid);
    const key: WAMessageKey = {
      remoteJid,
      id: target.waMessageId,
      fromMe: target.fromMe,
      ...(target.participant ? { participant: toBaileysJid(target.participant) } : {}),
    };
    await socket.sendMessage(remoteJid, { react: { text: emoji, key } });
  }

  /** Sends read receipts for the messages received in the chat since the last time (WhatsApp reads by message). */
  async markRead(chatJid: string): Promise<void> {
    const socket = this.connectedSocket();
    const remoteJid = toBaileysJid(chatJid);
    const keys = this.unread.get(remoteJid) ?? [];
    this.unread.delete(remoteJid);
    if (keys.length > 0) await socket.readMessages(keys);
  }

  async setTyping(chatJid: string, typing: boolean): Promise<void> {
    await this.connectedSocket().sendPresenceUpdate(typing ? 'composing' : 'paused', toBaileysJid(chatJid));
  }

  async requestPairingCode(phone: string): Promise<string> {
    const socket = this.socket;
    if (!socket || this.state !== 'qr') throw new Error(`baileys: cannot pair while ${this.state}`);
    const code = await socket.requestPairingCode(phone.replace(/\D/g, ''));
    this.emit('pairing_code', code);
    return code;
  }

  /**
   * onWhatsApp lists the numbers that are on WhatsApp: an empty list means this one is not; no answer means nothing
   * is known.
   */
  private checkRecipient(socket: BaileysSocket, to: string): Promise<void> {
    return this.recipients.check(to, async () => {
      const found = await socket.onWhatsApp(toBaileysJid(to));
      return found === undefined ? undefined : found.some((entry) => entry.exists);
    });
  }

  private connect(): void {
    if (!this.authState) throw new Error('baileys: no auth state loaded');
    const { creds, keys } = this.authState;
    const socket = this.options.createSocket(
      {
        // start() loaded Baileys through the auth store before any socket is built.
        auth: { creds, keys: loadedBaileys().makeCacheableSignalKeyStore(keys, this.options.libraryLogger) },
        logger: this.options.libraryLogger,
        // Keep the phone's notifications: this device is a bot, not a person reading.
        markOnlineOnConnect: false,
        syncFullHistory: false,
        getMessage: async (key: WAMessageKey) => this.recent.content(key.id),
        ...(this.options.webSocketUrl ? { waWebSocketUrl: this.options.webSocketUrl } : {}),
        ...(this.options.connectTimeoutMs ? { connectTimeoutMs: this.options.connectTimeoutMs } : {}),
      },
      this.agentId,
    );
    this.socket = socket;
    const current = () => this.socket === socket;
    socket.ev.on('connection.update', (update) => {
      // Whatever fails in handling it (the login store's database, say) ends as a reported disconnect: an event
      // handler's rejection would be unhandled, and end the process with every other agent's session.
      if (current()) {
        void this.onConnectionUpdate(socket, update).catch((error: unknown) =>
          this.fail(`connection update failed: ${String(error)}`, false),
        );
      }
    });
    socket.ev.on('creds.update', () => {
      // Saved even from a socket we left: pairing may finish while it closes, and the login must not be lost.
      void this.options.auth
        .saveCreds(creds)
        .catch((error: unknown) =>
          this.options.logger.error({ event: 'engine.auth.save_failed', err: String(error) }, 'could not save creds'),
        );
    });
    socket.ev.on('messages.upsert', ({ messages, type }) => {
      // 'append' is history and messages sent while we were away being synced, not something to answer now.
      if (!current() || type !== 'notify') return;
      for (const message of messages) this.enqueueInbound(socket, message);
    });
    socket.ev.on('messages.update', (updates) => {
      if (!current()) return;
      for (const ack of toAcks(updates)) this.emit('ack', ack);
    });
    // Which LID is which number: learned here as well as from messages, so a send by LID reaches the number's chat.
    const identities = (pairs: IdentityPair[]) => {
      if (current() && pairs.length > 0) this.emit('identities', pairs);
    };
    socket.ev.on('lid-mapping.update', (mapping) => identities(pairsFromMappings([mapping])));
    socket.ev.on('contacts.upsert', (contacts) => identities(pairsFromContacts(contacts)));
    socket.ev.on('contacts.update', (contacts) => identities(pairsFromContacts(contacts)));
    socket.ev.on('messaging-history.set', ({ lidPnMappings }) => identities(pairsFromMappings(lidPnMappings ?? [])));
  }

  private async onConnectionUpdate(socket: BaileysSocket, update: Partial<ConnectionState>): Promise<void> {
    if (update.qr) {
      this.state = 'qr';
      this.emit('qr', update.qr);
    }
    if (update.connection === 'open') {
      this.restarts = 0;
      try {
        const identity = toIdentity(socket.user);
        this.state = 'connected';
        this.emit('authenticated');
        this.emit('ready', identity);
      } catch (error) {
        await this.fail(String(error), false);
      }
      return;
    }
    if (update.connection !== 'close') return;
    const { action, reason } = toCloseAction(update.lastDisconnect?.error);
    if (action === 'restart' && this.restarts < MAX_RESTARTS) {
      // WhatsApp asks for a fresh socket right after pairing; that is part of connecting, not a disconnect.
      this.restarts += 1;
      this.socket = undefined;
      await socket.end(undefined);
      await this.options.auth.flush();
      if (this.state === 'stopped') return;
      try {
        this.connect();
      } catch (error) {
        await this.fail(`restart failed: ${String(error)}`, false);
      }
      return;
    }
    await this.fail(reason, action === 'logged_out');
  }

  /**
   * The one exit for failures: release the socket (and, when unlinked, the login) before reporting. Never rejects:
   * a login store that cannot be written now is logged, and the disconnect is reported all the same (an unlinked
   * login is deleted again by the logout that follows).
   */
  private async fail(reason: string, loggedOut: boolean): Promise<void> {
    this.state = 'disconnected';
    this.options.logger.warn({ event: 'engine.disconnected', reason, loggedOut }, 'baileys disconnected');
    try {
      await this.release();
      if (loggedOut) await this.options.auth.clear();
    } catch (error) {
      this.options.logger.error(
        { event: 'engine.auth.release_failed', loggedOut, err: String(error) },
        'could not release the login store',
      );
    }
    this.emit('disconnected', { reason, loggedOut });
  }

  private async release(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (socket) await Promise.resolve(socket.end(undefined)).catch(() => {});
    await this.options.auth.flush();
  }

  private enqueueInbound(socket: BaileysSocket, message: WAMessage): void {
    this.recent.remember(message);
    this.rememberUnread(message.key);
    this.inbound = this.inbound.then(async () => {
      try {
        const jid = message.key.remoteJid ?? '';
        const groupName = jid.endsWith('@g.us') ? await this.groupName(socket, jid) : null;
        const me = socket.user?.id ? toCanonicalJid(socket.user.id) : null;
        this.emit('message', toInboundMessage(message, { me, groupName }));
      } catch (error) {
        this.options.logger.warn({ event: 'engine.message.unmapped', err: String(error) }, 'message dropped');
      }
    });
  }

  private rememberUnread(key: WAMessageKey): void {
    if (key.fromMe || !key.remoteJid) return;
    const keys = this.unread.get(key.remoteJid) ?? [];
    keys.push(key);
    // A chat nobody reads keeps only its latest messages: reading those reads the chat.
    if (keys.length > MAX_UNREAD_PER_CHAT) keys.splice(0, keys.length - MAX_UNREAD_PER_CHAT);
    this.unread.set(key.remoteJid, keys);
    if (this.unread.size > MAX_UNREAD_CHATS) {
      const oldest = this.unread.keys().next().value;
      if (oldest !== undefined) this.unread.delete(oldest);
    }
  }

  /** Baileys does not put a group's subject on its messages; ask once per group, and never hold a message long. */
  private async groupName(socket: BaileysSocket, jid: string): Promise<string | null> {
    const known = this.groupNames.get(jid);
    if (known !== undefined) return known;
    const subject = await withTimeout(socket.groupMetadata(jid), GROUP_NAME_TIMEOUT_MS)
      .then((metadata) => metadata.subject || null)
      .catch(() => null);
    this.groupNames.set(jid, subject);
    return subject;
  }

  /** Baileys quotes a whole message; the one we received is used when we still have it, else a bare reference. */
  private quote(jid: string, options: SendOptions): { quoted?: WAMessage } {
    if (!options.quotedMessageId) return {};
    const quoted = this.recent.get(options.quotedMessageId) ?? {
      key: { remoteJid: jid, id: options.quotedMessageId, fromMe: false },
      message: { conversation: '' } satisfies proto.IMessage,
    };
    return { quoted };
  }

  private sentId(sent: WAMessage | undefined): SentMessage {
    if (!sent?.key.id) throw new Error('baileys: the message was not sent');
    this.recent.remember(sent);
    return { id: sent.key.id };
  }

  private connectedSocket(): BaileysSocket {
    if (!this.socket || this.state !== 'connected') throw new Error(`baileys: not connected (${this.state})`);
    return this.socket;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
