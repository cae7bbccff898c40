// One agent's whatsapp-web.js Client behind the port: lifecycle, event mapping, sends. Mapping itself is in to-*.ts.
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Logger } from '../../observability/logger.js';
import { jidUser } from '../../whatsapp/jid.js';
import type {
  EngineSession,
  EngineSessionEvents,
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
import { type ProfileSync, removeProfile } from './profile-sync.js';
import { errorMessage, exists, sendOptions, withTimeout } from './session-helpers.js';
import { killBrowsersOnProfile } from './stray-browsers.js';
import { toAck } from './to-ack.js';
import { toIdentity, toInboundMessage } from './to-inbound-message.js';
import { toMediaSendOptions, toSerializedId } from './to-send-options.js';
import { createLocation, createMessageMedia } from './whatsapp-web.client.js';
import type { WwebClient, WwebClientFactory, WwebContent, WwebMessage, WwebSendOptions } from './whatsapp-web.types.js';

/** Messages with a file kept for downloadMedia: the inbound pipeline downloads within seconds of their arrival. */
const RECENT_MEDIA_MESSAGES = 500;

export type WwebSessionState = 'idle' | 'starting' | 'qr' | 'authenticated' | 'connected' | 'disconnected' | 'stopped';

export interface WhatsappWebSessionOptions {
  agentId: string;
  authDir: string;
  logger: Logger;
  createClient: WwebClientFactory;
  /** Resolves the browser binary; rejects when there is none. */
  resolveChrome: () => Promise<string>;
  chromeArgs: readonly string[];
  /** How long destroy() and logout() may take before the adapter stops waiting and kills the browser. */
  closeTimeoutMs?: number;
  /** Keeps the login in the database too, so it resumes on another process; absent, the folder is the login. */
  profiles?: ProfileSync | undefined;
}

export class WhatsappWebSession extends EventEmitter<EngineSessionEvents> implements EngineSession {
  readonly agentId: string;
  state: WwebSessionState = 'idle';
  private client: WwebClient | undefined;
  /** Settles (never rejects) when a client's initialize() has finished, whichever way. */
  private readonly initialized = new WeakMap<WwebClient, Promise<unknown>>();
  private loginExistedAtStart = false;
  private authenticatedThisRun = false;
  private readonly watched = new WeakSet<object>();
  private readonly recipients = new KnownRecipients();
  /** The library's messages with a file, by id, for downloadMedia: the newest few hundred, never sent past the port. */
  private readonly withMedia = new Map<string, WwebMessage>();

  constructor(private readonly options: WhatsappWebSessionOptions) {
    super();
    this.agentId = options.agentId;
  }

  /** Where LocalAuth keeps this agent's login (and Chromium its profile). */
  get profileDir(): string {
    return path.join(this.options.authDir, `session-${this.agentId}`);
  }

  /**
   * Rejects only when no attempt can begin (no browser binary). Everything that fails once the client runs —
   * initialize(), the page, the browser — is reported as `disconnected` after the browser is gone.
   */
  async start(): Promise<void> {
    if (this.client || this.state === 'starting') return; // already running, or a start is on its way
    this.state = 'starting';
    let client: WwebClient;
    try {
      const executablePath = await this.options.resolveChrome();
      await this.options.profiles?.restore();
      this.loginExistedAtStart = await exists(this.profileDir);
      client = await this.options.createClient({
        dataPath: this.options.authDir,
        clientId: this.agentId,
        executablePath,
        args: [...this.options.chromeArgs],
      });
    } catch (error) {
      if (this.state === 'starting') this.state = 'idle';
      throw error;
    }
    if (this.state !== 'starting') return; // stopped meanwhile; nothing was launched yet
    this.authenticatedThisRun = false;
    this.client = client;
    this.listen(client);
    // Through a promise even if a client throws synchronously: every failure takes the same path.
    const outcome = Promise.resolve()
      .then(() => client.initialize())
      .then(
        () => null,
        (error: unknown) => ({ error }),
      );
    this.initialized.set(client, outcome);
    void outcome.then((failure) =>
      failure
        ? this.fail(client, `initialize failed: ${errorMessage(failure.error)}`, false)
        : this.watchBrowser(client),
    );
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.state = 'stopped';
    if (!client) return;
    await this.release(client);
    // With the browser closed its files are complete: the best copy to resume from, here or on another process.
    if (this.authenticatedThisRun) await this.options.profiles?.save();
  }

  async logout(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    const wasConnected = this.state === 'connected';
    this.state = 'stopped';
    if (client && wasConnected) {
      // Best effort: tell WhatsApp to unlink this device. Without a connection there is nobody to tell.
      await withTimeout(client.logout(), this.closeTimeoutMs).catch((error: unknown) =>
        this.options.logger.warn({ event: 'engine.logout.failed', err: errorMessage(error) }, 'logout failed'),
      );
    }
    if (client) await this.release(client);
    await this.options.profiles?.clear();
    await removeProfile(this.profileDir);
  }

  async sendText(to: string, text: string, options: SendOptions = {}): Promise<SentMessage> {
    return this.send(to, () => text, sendOptions(options));
  }

  async sendImage(to: string, image: OutboundImage, options: SendOptions = {}): Promise<SentMessage> {
    return this.sendMedia(to, { ...image, kind: 'image' }, options);
  }

  async sendMedia(to: string, media: OutboundMedia, options: SendOptions = {}): Promise<SentMessage> {
    // The file becomes base64 (as the page needs it) only once the recipient is known to be on WhatsApp.
    const file = () => createMessageMedia(media.mimeType, media.data.toString('base64'), media.filename ?? null);
    return this.send(to, file, { ...sendOptions(options), ...toMediaSendOptions(media) });
  }

  async sendLocation(to: string, location: OutboundLocation, options: SendOptions = {}): Promise<SentMessage> {
    return this.send(to, () => createLocation(location), sendOptions(options));
  }

  /** A string that is a vCard goes out as a contact card (parseVCards, whatsapp-web.js's default, said out loud). */
  async sendContact(to: string, contact: OutboundContact, options: SendOptions = {}): Promise<SentMessage> {
    return this.send(to, () => contact.vcard, { ...sendOptions(options), parseVCards: true });
  }

  /** A message to `to` on the connected client, once the recipient is known to be on WhatsApp; `content` comes then. */
  private async send(
    to: string,
    content: () => WwebContent | Promise<WwebContent>,
    options: WwebSendOptions,
  ): Promise<SentMessage> {
    const client = this.connectedClient();
    await this.checkRecipient(client, to);
    const sent = await client.sendMessage(to, await content(), options);
    return { id: sent.id._serialized };
  }

  async react(target: ReactionTarget, emoji: string): Promise<void> {
    const client = this.connectedClient();
    const message = await client.getMessageById(toSerializedId(target));
    if (!message) throw new Error(`whatsapp-web: no message ${target.waMessageId} to react to`);
    await message.react(emoji);
  }

  async markRead(chatJid: string): Promise<void> {
    await this.connectedClient().sendSeen(chatJid);
  }

  async setTyping(chatJid: string, typing: boolean): Promise<void> {
    const chat = await this.connectedClient().getChatById(chatJid);
    if (typing) await chat.sendStateTyping();
    else await chat.clearState();
  }

  async requestPairingCode(phone: string): Promise<string> {
    const client = this.client;
    if (!client || this.state !== 'qr') throw new Error(`whatsapp-web: cannot pair while ${this.state}`);
    // The code also arrives as the client's `code` event, which becomes our `pairing_code`.
    return client.requestPairingCode(phone.replace(/\D/g, ''), true);
  }

  /** getNumberId answers null for a number that is not on WhatsApp. */
  private checkRecipient(client: WwebClient, to: string): Promise<void> {
    return this.recipients.check(to, async () => (await client.getNumberId(jidUser(to))) !== null);
  }

  private listen(client: WwebClient): void {
    const current = () => this.client === client;
    client.on('qr', (qr) => {
      if (!current()) return;
      this.watchBrowser(client);
      this.state = 'qr';
      this.emit('qr', qr);
    });
    client.on('code', (code) => current() && this.emit('pairing_code', code));
    client.on('authenticated', () => {
      if (!current()) return;
      this.watchBrowser(client);
      this.authenticatedThisRun = true;
      this.state = 'authenticated';
      this.emit('authenticated');
    });
    client.on('ready', () => {
      if (!current()) return;
      void this.onReady(client);
    });
    client.on('auth_failure', (message) => {
      if (current()) void this.failAuth(client, String(message));
    });
    client.on('change_state', (state) => {
      if (current()) this.options.logger.debug({ event: 'engine.state', state }, 'whatsapp-web state changed');
    });
    client.on('disconnected', (reason) => {
      if (current()) void this.fail(client, String(reason), reason === 'LOGOUT');
    });
    client.on('message', (message) => {
      if (current()) void this.onMessage(message);
    });
    client.on('message_ack', (message, ack) => {
      const receipt = current() ? toAck(message, ack) : null;
      if (receipt) this.emit('ack', receipt);
    });
  }

  private async onReady(client: WwebClient): Promise<void> {
    this.watchBrowser(client);
    const wid = client.info?.wid;
    let lid: string | null = null;
    if (wid && !wid._serialized.endsWith('@lid')) {
      // The LID is looked up in the page; an account without one, or an older WhatsApp Web, is not an error.
      const found = await withTimeout(client.getContactLidAndPhone([wid._serialized]), 5_000).catch(() => []);
      lid = found[0]?.lid ?? null;
    }
    // Stored before `ready` is told: a session that is ready can move to another process at once.
    await this.options.profiles?.save();
    if (this.client !== client) return;
    try {
      const identity = toIdentity(wid, lid);
      this.state = 'connected';
      this.options.profiles?.keepSaving();
      this.emit('ready', identity);
    } catch (error) {
      await this.fail(client, errorMessage(error), false);
    }
  }

  async downloadMedia(messageId: string): Promise<MediaDownload> {
    const message = this.withMedia.get(messageId);
    if (!message) throw new Error('whatsapp-web: no recent message with a file has this id');
    const media = await message.downloadMedia();
    if (!media) throw new Error('whatsapp-web: the file is no longer available');
    return {
      stream: Readable.from([Buffer.from(media.data, 'base64')]),
      mimeType: media.mimetype || null,
      filename: media.filename || null,
    };
  }

  private rememberMedia(message: WwebMessage): void {
    const id = message.id._serialized;
    this.withMedia.delete(id);
    this.withMedia.set(id, message);
    if (this.withMedia.size > RECENT_MEDIA_MESSAGES) {
      const oldest = this.withMedia.keys().next().value;
      if (oldest !== undefined) this.withMedia.delete(oldest);
    }
  }

  private async onMessage(message: WwebMessage): Promise<void> {
    if (message.hasMedia) this.rememberMedia(message);
    // Names need a round trip into the page; a failure there must not lose the message.
    const [chat, contact] = await Promise.all([
      message.getChat().catch(() => null),
      message.getContact().catch(() => null),
    ]);
    try {
      this.emit(
        'message',
        toInboundMessage(message, {
          chatName: chat?.name || null,
          contactPushName: contact?.pushname || null,
          contactId: contact?.id?._serialized ?? null,
        }),
      );
    } catch (error) {
      this.options.logger.warn({ event: 'engine.message.unmapped', err: errorMessage(error) }, 'message dropped');
    }
  }

  /** Puppeteer's browser and page exist only once initialize() has launched them; watch them from then on. */
  private watchBrowser(client: WwebClient): void {
    const browser = client.pupBrowser;
    if (browser && !this.watched.has(browser)) {
      this.watched.add(browser);
      browser.once('disconnected', () => void this.fail(client, 'browser disconnected', false));
      if (!browser.isConnected()) void this.fail(client, 'browser disconnected', false);
    }
    const page = client.pupPage;
    if (page && !this.watched.has(page)) {
      this.watched.add(page);
      page.once('close', () => void this.fail(client, 'page closed', false));
      page.once('error', (error) => void this.fail(client, `page crashed: ${errorMessage(error)}`, false));
    }
  }

  /** The one exit for failures: release everything first, so a listener may start a new client at once. */
  private async fail(client: WwebClient, reason: string, loggedOut: boolean): Promise<void> {
    if (this.client !== client) return;
    this.client = undefined;
    this.state = 'disconnected';
    this.options.logger.warn({ event: 'engine.disconnected', reason, loggedOut }, 'whatsapp-web disconnected');
    await this.release(client);
    if (loggedOut) {
      await this.options.profiles
        ?.clear()
        .catch((error: unknown) =>
          this.options.logger.warn({ event: 'engine.login.clear_failed', err: errorMessage(error) }, 'login kept'),
        );
      await removeProfile(this.profileDir).catch(() => {});
    } else if (this.authenticatedThisRun) {
      await this.options.profiles?.save();
    }
    this.emit('disconnected', { reason, loggedOut });
  }

  /** A stored login WhatsApp refused: terminal, so it is reported once as auth_failure and not as a disconnect. */
  private async failAuth(client: WwebClient, message: string): Promise<void> {
    if (this.client !== client) return;
    this.client = undefined;
    this.state = 'disconnected';
    this.options.logger.warn({ event: 'engine.auth_failure' }, 'whatsapp-web refused the stored login');
    await this.release(client);
    this.emit('auth_failure', message);
  }

  /**
   * destroy(), then make sure: a launch still in flight finishes after destroy() and would leave Chromium running,
   * so wait for initialize() to settle, destroy again, and kill whatever still runs on the profile.
   */
  private async release(client: WwebClient): Promise<void> {
    this.options.profiles?.stopSaving();
    const initialized = this.initialized.get(client);
    await this.destroyQuietly(client);
    if (initialized) await withTimeout(initialized, this.closeTimeoutMs).catch(() => {});
    await this.destroyQuietly(client);
    client.removeAllListeners();
    const killed = await killBrowsersOnProfile(this.profileDir);
    if (killed.length > 0) {
      this.options.logger.warn({ event: 'engine.browser.killed', pids: killed }, 'killed a browser left running');
    }
    if (!this.loginExistedAtStart && !this.authenticatedThisRun) {
      // LocalAuth creates the profile at launch; without a login it is only a browser cache and would read as one.
      await removeProfile(this.profileDir).catch(() => {});
    }
  }

  private async destroyQuietly(client: WwebClient): Promise<void> {
    await withTimeout(client.destroy(), this.closeTimeoutMs).catch((error: unknown) =>
      this.options.logger.debug({ event: 'engine.destroy.failed', err: errorMessage(error) }, 'destroy failed'),
    );
  }

  private connectedClient(): WwebClient {
    if (!this.client || this.state !== 'connected') throw new Error(`whatsapp-web: not connected (${this.state})`);
    return this.client;
  }

  private get closeTimeoutMs(): number {
    return this.options.closeTimeoutMs ?? 10_000;
  }
}
