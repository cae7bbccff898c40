// A stand-in for whatsapp-web.js's Client (same event names, method signatures and payloads), and the phone behind it.
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Location, MessageAck, MessageMedia, MessageSendOptions } from 'whatsapp-web.js';
import type { ContractInbound, ContractSent } from '../../engine.contract.js';
import type { WwebAckedMessage, WwebClient, WwebClientSettings, WwebMessage } from '../whatsapp-web.types.js';

/** What the library answers when WhatsApp cannot be reached (recorded on a machine with no network). */
export const OFFLINE_ERROR = 'net::ERR_NAME_NOT_RESOLVED at https://web.whatsapp.com/';

class FakeBrowser extends EventEmitter {
  connected = true;
  isConnected(): boolean {
    return this.connected;
  }
  close(): void {
    if (!this.connected) return;
    this.connected = false;
    this.emit('disconnected');
  }
}

/** Raw calls the adapter made, as whatsapp-web.js received them. */
export interface FakeCall {
  method: 'sendMessage' | 'sendStateTyping' | 'clearState' | 'sendSeen' | 'react';
  chatId: string;
  content?: string | MessageMedia | Location;
  options?: MessageSendOptions | undefined;
  /** react: the emoji, and the serialized id of the message reacted to. */
  emoji?: string;
  messageId?: string;
}

export class FakeWwebClient extends EventEmitter implements WwebClient {
  info: WwebClient['info'] = undefined;
  pupBrowser: FakeBrowser | null = null;
  pupPage: EventEmitter | null = null;
  destroyed = false;
  readonly calls: FakeCall[] = [];
  /** Numbers (digits) WhatsApp does not know: getNumberId answers null for them. */
  readonly notOnWhatsApp = new Set<string>();
  /** Serialized ids of the messages the page knows (sent or received): getMessageById finds only these. */
  private readonly known = new Set<string>();

  constructor(
    readonly settings: WwebClientSettings,
    private readonly failWith: string | null,
  ) {
    super();
  }

  get profileDir(): string {
    return path.join(this.settings.dataPath, `session-${this.settings.clientId}`);
  }

  /** Where WhatsApp Web keeps its keys: in the profile's storage, not at its top. */
  get loginFile(): string {
    return path.join(this.profileDir, 'Default', 'Local Storage', 'fake-login.json');
  }

  async initialize(): Promise<void> {
    // LocalAuth creates the profile before the browser starts, login or not.
    await mkdir(this.profileDir, { recursive: true });
    this.pupBrowser = new FakeBrowser();
    this.pupPage = new EventEmitter();
    if (this.failWith) throw new Error(this.failWith);
    const phone = await readLogin(this.loginFile);
    if (phone) {
      setImmediate(() => this.link(phone));
      return;
    }
    this.emit('qr', `2@${randomBytes(16).toString('base64')},fake-noise,fake-identity,fake-adv`);
  }

  async destroy(): Promise<void> {
    this.destroyed = true;
    this.pupBrowser?.close();
  }

  async logout(): Promise<void> {
    this.pupBrowser?.close();
    await rm(this.profileDir, { recursive: true, force: true });
  }

  async sendMessage(chatId: string, content: string | MessageMedia | Location, options?: MessageSendOptions) {
    this.assertOpen();
    this.calls.push({ method: 'sendMessage', chatId, content, options });
    const id = `3EB0${randomBytes(8).toString('hex').toUpperCase()}`;
    const serialized = `true_${chatId}_${id}`;
    this.known.add(serialized);
    return { id: { fromMe: true, remote: chatId, id, _serialized: serialized } };
  }

  /** As whatsapp-web.js: a Message whose react() sends the reaction; null for an id the page does not know. */
  async getMessageById(messageId: string) {
    this.assertOpen();
    if (!this.known.has(messageId)) return null;
    const chatId = messageId.split('_')[1] ?? '';
    return {
      react: async (emoji: string) => {
        this.assertOpen();
        this.calls.push({ method: 'react', chatId, emoji, messageId });
      },
    };
  }

  async sendSeen(chatId: string): Promise<boolean> {
    this.assertOpen();
    this.calls.push({ method: 'sendSeen', chatId });
    return true;
  }

  async getChatById(chatId: string) {
    this.assertOpen();
    return {
      sendStateTyping: async () => {
        this.calls.push({ method: 'sendStateTyping', chatId });
      },
      clearState: async () => {
        this.calls.push({ method: 'clearState', chatId });
        return true;
      },
    };
  }

  async requestPairingCode(_phoneNumber: string): Promise<string> {
    const code = 'ABCD1234';
    this.emit('code', code);
    return code;
  }

  async getNumberId(number: string) {
    this.assertOpen();
    if (this.notOnWhatsApp.has(number)) return null;
    return { server: 'c.us', user: number, _serialized: `${number}@c.us` };
  }

  async getContactLidAndPhone(userIds: string[]) {
    return userIds.map((pn) => ({ pn, lid: '99887766554433@lid' }));
  }

  // ---- the phone and the network -----------------------------------------------------------------------------------

  async scan(phone: string): Promise<void> {
    await mkdir(path.dirname(this.loginFile), { recursive: true });
    await writeFile(this.loginFile, JSON.stringify({ phone }));
    this.link(phone);
  }

  deliver(message: ContractInbound): void {
    // A sender who writes by LID: the message names the LID, the contact's id the number (getContactModel).
    const sender = message.fromLid ?? message.from;
    const chat = message.group ?? sender;
    const me = this.info?.wid?._serialized ?? '';
    const serialized = `false_${chat}_${message.id}${message.group ? `_${sender}` : ''}`;
    this.known.add(serialized);
    const { media, location } = message;
    // As whatsapp-web.js builds a Message: a voice note is `ptt`, its duration a string of seconds, the file's
    // metadata in `_data`, a location's coordinates as strings.
    const type = media ? (media.kind === 'audio' ? 'ptt' : media.kind) : location ? 'location' : 'chat';
    const wwebMessage: WwebMessage = {
      id: { fromMe: false, remote: chat, id: message.id, _serialized: serialized },
      from: chat,
      to: me,
      ...(message.group ? { author: sender } : {}),
      body: message.text,
      type: type as WwebMessage['type'],
      timestamp: message.timestampSeconds,
      fromMe: false,
      hasMedia: media !== undefined,
      mentionedIds: message.mentions ?? [],
      ...(media?.durationSeconds !== undefined ? { duration: String(media.durationSeconds) } : {}),
      ...(location
        ? {
            location: {
              latitude: String(location.latitude),
              longitude: String(location.longitude),
              name: location.name,
              description: location.name,
            },
          }
        : {}),
      rawData: {
        notifyName: message.pushName ?? '',
        ...(media
          ? { mimetype: media.mimeType, size: media.data.length, ...(media.filename ? { filename: media.filename } : {}) }
          : {}),
      },
      getChat: async () => ({ name: message.group ? 'Fake group' : (message.pushName ?? chat) }),
      getContact: async () => ({ pushname: message.pushName ?? '', id: { _serialized: message.from } }),
      // As Message.downloadMedia(): the file in base64 while the page still has it; undefined for a message without.
      downloadMedia: async () =>
        media
          ? { mimetype: media.mimeType, data: media.data.toString('base64'), filename: media.filename ?? null }
          : undefined,
    };
    this.emit('message', wwebMessage);
  }

  /**
   * WhatsApp's receipt for a message: whatsapp-web.js emits `message_ack` with the Message (its `ack` already the new
   * value) and the new MessageAck. `serialized` is the message's `id._serialized`; `fromMe` is false for a message
   * this account received.
   */
  ack(serialized: string, ack: MessageAck, fromMe = true): void {
    const [, remote = '', id = ''] = serialized.split('_');
    const message: WwebAckedMessage = { id: { fromMe, remote, id, _serialized: serialized }, fromMe, ack };
    this.emit('message_ack', message, ack);
  }

  /** As whatsapp-web.js reacts to the phone unlinking (LOGOUT) or to a state it does not accept (CONFLICT). */
  async drop(loggedOut: boolean): Promise<void> {
    if (loggedOut) {
      this.emit('disconnected', 'LOGOUT');
      await rm(this.profileDir, { recursive: true, force: true });
      return;
    }
    this.emit('change_state', 'CONFLICT');
    this.emit('disconnected', 'CONFLICT');
    void this.destroy();
  }

  private link(phone: string): void {
    if (this.destroyed) return;
    this.info = { wid: { server: 'c.us', user: phone, _serialized: `${phone}@c.us` } };
    this.emit('authenticated');
    this.emit('ready');
  }

  private assertOpen(): void {
    if (!this.pupBrowser?.connected) throw new Error('Protocol error: Target closed');
  }
}

/** The fake library for one test: it builds clients and remembers them by agent. */
export class FakeWweb {
  readonly clients = new Map<string, FakeWwebClient[]>();
  private readonly failures = new Set<string>();

  readonly createClient = (settings: WwebClientSettings): FakeWwebClient => {
    const fail = this.failures.delete(settings.clientId);
    const client = new FakeWwebClient(settings, fail ? OFFLINE_ERROR : null);
    this.clients.set(settings.clientId, [...(this.clients.get(settings.clientId) ?? []), client]);
    return client;
  };

  failNextStart(agentId: string): string {
    this.failures.add(agentId);
    return OFFLINE_ERROR;
  }

  latest(agentId: string): FakeWwebClient {
    const client = this.clients.get(agentId)?.at(-1);
    if (!client) throw new Error(`no client for ${agentId}`);
    return client;
  }

  /** Every client ever built for the agent was destroyed and its browser is gone. */
  released(agentId: string): boolean {
    return (this.clients.get(agentId) ?? []).every((c) => c.destroyed && !c.pupBrowser?.connected);
  }

  /** What the adapter asked the library to send, translated back to the contract's words. */
  sent(agentId: string): ContractSent[] {
    return (this.clients.get(agentId) ?? []).flatMap((client) => client.calls.map(toContractSent));
  }
}

function toContractSent(call: FakeCall): ContractSent {
  const to = call.chatId;
  if (call.method === 'sendStateTyping' || call.method === 'clearState') {
    return { to, kind: 'typing', typing: call.method === 'sendStateTyping' };
  }
  if (call.method === 'sendSeen') return { to, kind: 'read' };
  if (call.method === 'react') {
    return { to, kind: 'reaction', emoji: call.emoji ?? '', targetMessageId: call.messageId ?? '' };
  }
  const options = call.options ?? {};
  const extras = {
    ...(options.quotedMessageId ? { quotedMessageId: options.quotedMessageId } : {}),
    ...(options.mentions?.length ? { mentions: options.mentions } : {}),
  };
  const content = call.content;
  if (typeof content === 'string') {
    // As whatsapp-web.js does: a vCard string goes out as a contact card, named by its FN line.
    if (options.parseVCards !== false && content.startsWith('BEGIN:VCARD')) {
      const fn = content.split('\n').find((line) => line.startsWith('FN:')) ?? 'FN:';
      return { to, kind: 'contact', vcard: content, displayName: fn.slice(3), ...extras };
    }
    return { to, kind: 'text', text: content, ...extras };
  }
  if (content && 'latitude' in content) {
    return {
      to,
      kind: 'location',
      latitude: Number(content.latitude),
      longitude: Number(content.longitude),
      ...(content.name ? { name: content.name } : {}),
      ...(content.address ? { address: content.address } : {}),
      ...extras,
    };
  }
  const media = content;
  const file = { mimeType: media?.mimetype ?? '', bytes: media ? Buffer.from(media.data, 'base64').length : 0 };
  const caption = options.caption ? { caption: options.caption } : {};
  if (options.sendMediaAsDocument) {
    return { to, kind: 'document', ...file, ...(media?.filename ? { filename: media.filename } : {}), ...caption, ...extras };
  }
  if (options.sendMediaAsSticker) return { to, kind: 'sticker', ...file, ...extras };
  if (file.mimeType.startsWith('audio/')) {
    return { to, kind: 'audio', ...file, voice: options.sendAudioAsVoice === true, ...extras };
  }
  if (file.mimeType.startsWith('video/')) return { to, kind: 'video', ...file, ...caption, ...extras };
  return { to, kind: 'image', ...caption, ...file, ...extras };
}

async function readLogin(file: string): Promise<string | null> {
  try {
    return (JSON.parse(await readFile(file, 'utf8')) as { phone: string }).phone;
  } catch {
    return null;
  }
}
