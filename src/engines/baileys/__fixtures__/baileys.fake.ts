// A stand-in for a Baileys 7 socket (its `ev` events, methods and payloads), and the phone and server behind it.
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import type {
  AnyMessageContent,
  AuthenticationCreds,
  BaileysEventMap,
  MiscMessageGenerationOptions,
  proto,
  UserFacingSocketConfig,
  WAMessage,
  WAMessageKey,
  WAMessageUpdate,
  WAPresence,
} from 'baileys';
import type { ContractInbound, ContractSent } from '../../engine.contract.js';
import type { BaileysEvents, BaileysMediaDownloader, BaileysSocket } from '../baileys.types.js';
import { toBaileysJid, toCanonicalJid } from '../to-inbound-message.js';

/** Baileys' errors are Booms: an Error with the HTTP-like status in `output.statusCode`. */
export function boom(message: string, statusCode: number): Error {
  return Object.assign(new Error(message), { isBoom: true, output: { statusCode } });
}

/** What Baileys reports when it cannot reach WhatsApp. */
export const OFFLINE_ERROR = 'WebSocket Error (getaddrinfo ENOTFOUND web.whatsapp.com)';

class FakeEvents implements BaileysEvents {
  private readonly emitter = new EventEmitter();
  on<T extends keyof BaileysEventMap>(event: T, listener: (arg: BaileysEventMap[T]) => void): void {
    this.emitter.on(event, listener);
  }
  emit<T extends keyof BaileysEventMap>(event: T, arg: BaileysEventMap[T]): boolean {
    return this.emitter.emit(event, arg);
  }
  removeAllListeners(event: keyof BaileysEventMap): void {
    this.emitter.removeAllListeners(event);
  }
}

export type FakeBaileysCall =
  | {
      method: 'sendMessage';
      jid: string;
      content: AnyMessageContent;
      options?: MiscMessageGenerationOptions | undefined;
    }
  | { method: 'sendPresenceUpdate'; type: WAPresence; jid?: string | undefined }
  | { method: 'readMessages'; keys: WAMessageKey[] };

export class FakeBaileysSocket implements BaileysSocket {
  readonly ev = new FakeEvents();
  readonly calls: FakeBaileysCall[] = [];
  /** Numbers (digits) WhatsApp does not know: onWhatsApp leaves them out. */
  readonly notOnWhatsApp = new Set<string>();
  /** Where each message this socket sent went, by its id. */
  private readonly sentTo = new Map<string, string>();
  ended = false;
  private readonly creds: AuthenticationCreds;

  constructor(
    readonly config: UserFacingSocketConfig,
    failWith: string | null,
    /** WhatsApp's media servers: encrypted files by their url (here, the plain bytes). */
    private readonly mediaServer: Map<string, Buffer> = new Map(),
  ) {
    this.creds = config.auth.creds;
    // As the real socket does: every creds update is merged into the state it was given, then others hear of it.
    this.ev.on('creds.update', (update) => Object.assign(this.creds, update));
    setImmediate(() => {
      if (this.ended) return;
      if (failWith) {
        void this.end(boom(failWith, 408));
        return;
      }
      this.ev.emit('connection.update', { connection: 'connecting' });
      if (this.creds.me && this.creds.account) this.ev.emit('connection.update', { connection: 'open' });
      else this.ev.emit('connection.update', { qr: `2@${randomBytes(16).toString('base64')},noise,identity,adv` });
    });
  }

  get user() {
    return this.creds.me;
  }

  async sendMessage(jid: string, content: AnyMessageContent, options?: MiscMessageGenerationOptions) {
    this.assertOpen();
    this.calls.push({ method: 'sendMessage', jid, content, options });
    const sent: WAMessage = {
      key: { remoteJid: jid, fromMe: true, id: `3EB0${randomBytes(8).toString('hex').toUpperCase()}` },
      messageTimestamp: Math.floor(Date.now() / 1000),
    };
    this.sentTo.set(sent.key.id ?? '', jid);
    return sent;
  }

  async sendPresenceUpdate(type: WAPresence, jid?: string): Promise<void> {
    this.assertOpen();
    this.calls.push({ method: 'sendPresenceUpdate', type, jid });
  }

  async readMessages(keys: WAMessageKey[]): Promise<void> {
    this.assertOpen();
    this.calls.push({ method: 'readMessages', keys });
  }

  async requestPairingCode(_phoneNumber: string): Promise<string> {
    return 'WXYZ5678';
  }

  async logout(msg?: string): Promise<void> {
    await this.end(boom(msg ?? 'Intentional Logout', 401));
  }

  async end(error: Error | undefined): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.ev.emit('connection.update', { connection: 'close', lastDisconnect: { error, date: new Date() } });
    this.ev.removeAllListeners('connection.update');
  }

  async onWhatsApp(...jids: string[]) {
    this.assertOpen();
    // As the real socket does: only the numbers that are on WhatsApp come back.
    return jids.filter((jid) => !this.notOnWhatsApp.has(jid.split('@')[0] ?? '')).map((jid) => ({ jid, exists: true }));
  }

  async groupMetadata(jid: string) {
    return { id: jid, subject: 'Tim Gudang' };
  }

  // ---- the phone and the server ------------------------------------------------------------------------------------

  /** As WhatsApp pairs a device: new creds, then a request to restart the socket (515). */
  scan(phone: string): void {
    this.ev.emit('creds.update', {
      me: { id: `${phone}:7@s.whatsapp.net`, lid: '99887766554433:7@lid', name: '~' },
      account: {
        details: new Uint8Array([8, 1, 16, 2]),
        accountSignatureKey: new Uint8Array(32).fill(3),
        accountSignature: new Uint8Array(64).fill(4),
        deviceSignature: new Uint8Array(64).fill(5),
      },
      platform: 'android',
    });
    this.ev.emit('connection.update', { isNewLogin: true });
    void this.end(boom('Stream Errored (restart required)', 515));
  }

  /** Files the phone on the other side still has, by message id: what it can upload again. */
  readonly phoneFiles = new Map<string, Buffer>();

  /** As the real socket: the sender's phone uploads the file again, and the message comes back with its new url. */
  async updateMediaMessage(message: WAMessage): Promise<WAMessage> {
    this.assertOpen();
    const id = message.key.id ?? '';
    const bytes = this.phoneFiles.get(id);
    if (!bytes) throw boom('Media re-upload failed: the phone no longer has the file', 404);
    const url = `https://mmg.whatsapp.net/v/t62.7117-24/${id}-reuploaded.enc`;
    this.mediaServer.set(url, bytes);
    const content = message.message ?? {};
    const renewed: proto.IMessage = { ...content };
    if (content.imageMessage) renewed.imageMessage = { ...content.imageMessage, url };
    if (content.audioMessage) renewed.audioMessage = { ...content.audioMessage, url };
    if (content.documentMessage) renewed.documentMessage = { ...content.documentMessage, url };
    return { ...message, message: renewed };
  }

  deliver(message: ContractInbound): void {
    const phone = toBaileysJid(message.from);
    // Addressed by LID, Baileys 7 puts the number in the key's `…Alt` field.
    const from = message.fromLid ?? phone;
    const alt = message.fromLid ? phone : undefined;
    const mentions = message.mentions?.map(toBaileysJid);
    const waMessage: WAMessage = {
      key: {
        remoteJid: message.group ?? from,
        fromMe: false,
        id: message.id,
        ...(message.group ? { participant: from } : {}),
        ...(alt ? (message.group ? { participantAlt: alt } : { remoteJidAlt: alt }) : {}),
        ...(message.fromLid ? { addressingMode: 'lid' } : {}),
      },
      message: this.contentOf(message, mentions),
      messageTimestamp: message.timestampSeconds,
      ...(message.pushName ? { pushName: message.pushName } : {}),
    };
    this.ev.emit('messages.upsert', { messages: [waMessage], type: 'notify' });
  }

  /** The proto content of a delivered message: text, a file (uploaded to the media server first), or a location. */
  private contentOf(message: ContractInbound, mentions: string[] | undefined): proto.IMessage {
    const { media, location } = message;
    if (location) {
      return {
        locationMessage: {
          degreesLatitude: location.latitude,
          degreesLongitude: location.longitude,
          name: location.name,
        },
      };
    }
    if (media) {
      const url = `https://mmg.whatsapp.net/v/t62.7117-24/${message.id}.enc`;
      this.mediaServer.set(url, media.data);
      this.phoneFiles.set(message.id, media.data);
      const file = {
        url,
        directPath: `/v/t62.7117-24/${message.id}.enc`,
        mediaKey: new Uint8Array(32).fill(9),
        mimetype: media.mimeType,
        fileLength: media.data.length,
      };
      if (media.kind === 'audio') {
        return { audioMessage: { ...file, ptt: true, seconds: media.durationSeconds ?? 0 } };
      }
      if (media.kind === 'image') return { imageMessage: { ...file, caption: message.text } };
      // A captioned document arrives wrapped, as WhatsApp sends it.
      const document = { ...file, fileName: media.filename ?? null, caption: message.text };
      return message.text
        ? { documentWithCaptionMessage: { message: { documentMessage: document } } }
        : { documentMessage: document };
    }
    return mentions?.length
      ? { extendedTextMessage: { text: message.text, contextInfo: { mentionedJid: mentions } } }
      : { conversation: message.text };
  }

  /**
   * WhatsApp's receipt for a message, as Baileys reports one: `messages.update` with the message's key and its new
   * status. A receipt (from the recipient, in a private chat) carries WhatsApp's time of it; an error (a bad ack from
   * the server) carries the server's error code instead. `fromMe` is false for a message this account received (read
   * on another of its devices).
   */
  ack(id: string, status: proto.WebMessageInfo.Status, { fromMe = true, at = 1_764_000_500 } = {}): void {
    const key = { remoteJid: this.sentTo.get(id) ?? '6289900000001@s.whatsapp.net', fromMe, id };
    const update: WAMessageUpdate['update'] =
      status === 0 ? { status, messageStubParameters: ['479'] } : { status, messageTimestamp: at };
    this.ev.emit('messages.update', [{ key, update }]);
  }

  drop(loggedOut: boolean): void {
    void this.end(loggedOut ? boom('Connection Failure', 401) : boom('Connection Closed', 428));
  }

  private assertOpen(): void {
    if (this.ended) throw boom('Connection Closed', 428);
  }
}

/** The fake library for one test: it builds sockets and remembers them by agent. */
export class FakeBaileys {
  readonly sockets = new Map<string, FakeBaileysSocket[]>();
  private readonly failures = new Set<string>();
  /** WhatsApp's media servers, shared by the sockets: files by url. */
  readonly mediaServer = new Map<string, Buffer>();

  readonly createSocket = (config: UserFacingSocketConfig, agentId: string): FakeBaileysSocket => {
    const socket = new FakeBaileysSocket(config, this.failures.delete(agentId) ? OFFLINE_ERROR : null, this.mediaServer);
    this.sockets.set(agentId, [...(this.sockets.get(agentId) ?? []), socket]);
    return socket;
  };

  failNextStart(agentId: string): string {
    this.failures.add(agentId);
    return OFFLINE_ERROR;
  }

  /**
   * Stands in for Baileys' downloadMediaMessage: the media content of the (unwrapped) message, its file fetched by url
   * from the media server; a file the server no longer has is asked for again through `ctx.reuploadRequest` once,
   * then fails with a 404 Boom, as the real one does.
   */
  readonly downloadMediaMessage: BaileysMediaDownloader = async (message, type, _options, ctx) => {
    if (type !== 'stream') throw new Error('the adapter downloads as a stream');
    const content = message.message?.documentWithCaptionMessage?.message ?? message.message;
    const file =
      content?.imageMessage ??
      content?.videoMessage ??
      content?.audioMessage ??
      content?.documentMessage ??
      content?.stickerMessage;
    if (!file) throw boom('not a media message', 400);
    let bytes = this.mediaServer.get(file.url ?? '');
    if (!bytes) {
      const renewed = await ctx.reuploadRequest(message);
      const again = renewed.message?.documentWithCaptionMessage?.message ?? renewed.message;
      const url = (again?.imageMessage ?? again?.audioMessage ?? again?.documentMessage)?.url ?? '';
      bytes = this.mediaServer.get(url);
    }
    if (!bytes) throw boom('Failed to fetch stream from https://mmg.whatsapp.net', 404);
    return Readable.from([bytes]);
  };

  latest(agentId: string): FakeBaileysSocket {
    const socket = this.sockets.get(agentId)?.at(-1);
    if (!socket) throw new Error(`no socket for ${agentId}`);
    return socket;
  }

  released(agentId: string): boolean {
    return (this.sockets.get(agentId) ?? []).every((socket) => socket.ended);
  }

  sent(agentId: string): ContractSent[] {
    return (this.sockets.get(agentId) ?? []).flatMap((socket) => socket.calls.map(toContractSent));
  }
}

function toContractSent(call: FakeBaileysCall): ContractSent {
  if (call.method === 'sendPresenceUpdate') {
    return { to: toCanonicalJid(call.jid ?? ''), kind: 'typing', typing: call.type === 'composing' };
  }
  if (call.method === 'readMessages') return { to: toCanonicalJid(call.keys[0]?.remoteJid ?? ''), kind: 'read' };
  const { content, options } = call;
  const to = toCanonicalJid(call.jid);
  const mentions = 'mentions' in content && content.mentions?.length ? content.mentions.map(toCanonicalJid) : [];
  const extras = {
    ...(options?.quoted?.key.id ? { quotedMessageId: options.quoted.key.id } : {}),
    ...(mentions.length ? { mentions } : {}),
  };
  const caption = 'caption' in content && content.caption ? { caption: content.caption } : {};
  const file = (data: unknown) => ({
    mimeType: ('mimetype' in content && content.mimetype) || '',
    bytes: Buffer.isBuffer(data) ? data.length : 0,
  });
  if ('text' in content) return { to, kind: 'text', text: content.text, ...extras };
  if ('image' in content) return { to, kind: 'image', ...caption, ...file(content.image), ...extras };
  if ('video' in content) return { to, kind: 'video', ...file(content.video), ...caption, ...extras };
  if ('audio' in content) return { to, kind: 'audio', ...file(content.audio), voice: content.ptt === true, ...extras };
  if ('sticker' in content) return { to, kind: 'sticker', ...file(content.sticker), ...extras };
  if ('document' in content) {
    return {
      to,
      kind: 'document',
      ...file(content.document),
      ...(content.fileName ? { filename: content.fileName } : {}),
      ...caption,
      ...extras,
    };
  }
  if ('location' in content) {
    const { degreesLatitude, degreesLongitude, name, address } = content.location;
    return {
      to,
      kind: 'location',
      latitude: Number(degreesLatitude),
      longitude: Number(degreesLongitude),
      ...(name ? { name } : {}),
      ...(address ? { address } : {}),
      ...extras,
    };
  }
  if ('contacts' in content) {
    const [card] = content.contacts.contacts;
    return {
      to,
      kind: 'contact',
      vcard: card?.vcard ?? '',
      displayName: content.contacts.displayName ?? '',
      ...extras,
    };
  }
  if ('react' in content) {
    return { to, kind: 'reaction', emoji: content.react.text ?? '', targetMessageId: content.react.key?.id ?? '' };
  }
  throw new Error('the adapter sent a kind of message the contract does not know');
}
