// Sending on an agent's behalf: validates and normalizes a text or image request, then hands it to the outbox.
import { createHash, randomUUID } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { z } from 'zod';
import type { MediaKind } from '../engines/engine.js';
import { AppError, isAppError } from '../errors.js';
import type { Outbox, OutboxMessageView, OutboxPayload, SubmitContext, SubmitResult } from '../outbox/outbox.js';
import type { OutboxMediaSource } from '../outbox/outbox.repository.js';
import { normalizeRecipient } from '../whatsapp/jid.js';
import { decodeBase64Image, detectMedia, type MediaLimits, readHead, safeFilename } from './media.js';
import { checkScheme, type MediaFetcher } from './media-fetch.js';
import type { reactionBody, sendMediaBody, sendMessageBody } from './messaging.schemas.js';
import { DOWNLOAD_PREFIX, type PreviewStore } from './preview-store.js';

export type SendTextInput = z.infer<typeof sendMessageBody>;
export type SendMediaInput = z.output<typeof sendMediaBody>;
export type ReactionInput = z.infer<typeof reactionBody>;

/** A file the route streamed to disk from a multipart upload; the route removes it once the request is answered. */
export interface UploadedFile {
  path: string;
  size: number;
  /** The name the client gave the file part. */
  filename: string | null;
  /** SHA-256 of the bytes (hex), computed while they streamed: an Idempotency-Key's fingerprint. */
  sha256: string;
}

/** Where a send to a LID goes when the agent knows the person's number (implemented by src/identity/). */
export interface RecipientDirectory {
  /** The phone JID of a known LID, else the LID itself. */
  recipient(agentId: string, lid: string): Promise<string>;
}

export interface MessagingServiceOptions {
  outbox: Pick<Outbox, 'submit' | 'findIdempotent' | 'assertReady' | 'get' | 'findMessageRef'>;
  fetcher: Pick<MediaFetcher, 'fetch' | 'fetchToFile'>;
  previews: Pick<PreviewStore, 'save' | 'remove'>;
  defaultCountryCode: string;
  mediaMaxBytes: number;
  /** Absent: a LID is sent to as it is. */
  recipients?: RecipientDirectory | undefined;
  /** The largest file of each kind (images: mediaMaxBytes). */
  mediaLimits?: MediaLimits | undefined;
  /** Where a file downloaded from a URL waits while its row commits (removed after). */
  tempDir: string;
}

export class MessagingService {
  constructor(private readonly options: MessagingServiceOptions) {}

  async sendText(agentId: string, input: SendTextInput, context: SubmitContext = {}): Promise<SubmitResult> {
    const bodies = [input.message, input.location, input.contact].filter((v) => v !== undefined).length;
    if (bodies !== 1) throw new AppError('INVALID_PAYLOAD', 'body: exactly one of message, location or contact');
    const given = normalizeRecipient(input.to, this.options.defaultCountryCode);
    const toJid = await this.recipient(agentId, given);
    const quotedMessageId = input.quotedMessageId ?? input.quoteId;
    const mentions = this.mentions(input.mentions);
    if (input.location) {
      const location = toLocation(input.location);
      const fingerprint = fingerprintOf(context, { kind: 'location', toJid: given, location, quotedMessageId });
      return await this.options.outbox.submit(
        agentId,
        { kind: 'location', toJid, payload: { location, quotedMessageId, fingerprint } },
        context,
      );
    }
    if (input.contact) {
      const contact = toContact(input.contact, this.options.defaultCountryCode);
      const fingerprint = fingerprintOf(context, { kind: 'contact', toJid: given, contact, quotedMessageId });
      return await this.options.outbox.submit(
        agentId,
        { kind: 'contact', toJid, payload: { contact, quotedMessageId, fingerprint } },
        context,
      );
    }
    if (input.message === undefined) throw new AppError('INVALID_PAYLOAD', 'body.message is required');
    // By the address as given: a retry is the same request even when the LID's number became known meanwhile.
    const text = input.message;
    const fingerprint = fingerprintOf(context, { kind: 'text', toJid: given, text, quotedMessageId, mentions });
    // `return await`: an async function returning a promise as is costs two more turns of the microtask queue.
    return await this.options.outbox.submit(
      agentId,
      { kind: 'text', toJid, payload: { text, quotedMessageId, mentions, fingerprint } },
      context,
    );
  }

  /**
   * Sends a file of any kind, from base64, a URL, or an upload on disk (exactly one). The type is read from the bytes;
   * each kind has its size limit. Images keep their preview copy (save_to_temp).
   */
  async sendMedia(
    agentId: string,
    input: SendMediaInput,
    context: SubmitContext = {},
    upload?: UploadedFile,
  ): Promise<SubmitResult> {
    const { outbox, mediaMaxBytes } = this.options;
    const sources = [input.data, input.url, upload].filter((v) => v !== undefined).length;
    if (sources !== 1) {
      throw new AppError('INVALID_PAYLOAD', 'body: exactly one of data, url or a file upload is required');
    }
    const kind = input.type;
    const maxBytes = kind === 'image' ? mediaMaxBytes : (this.options.mediaLimits?.[kind] ?? mediaMaxBytes);
    const given = normalizeRecipient(input.to, this.options.defaultCountryCode);
    if (input.url !== undefined) checkScheme(input.url); // a malformed request is 400 whatever the session's state
    if (input.voice && kind !== 'audio') throw new AppError('INVALID_PAYLOAD', 'voice: only for type audio');
    if (input.caption && (kind === 'audio' || kind === 'sticker')) {
      throw new AppError('INVALID_PAYLOAD', `caption: a ${kind} message carries no caption`);
    }
    if (upload && upload.size > maxBytes) throw new AppError('MEDIA_TOO_LARGE', tooLarge(kind, maxBytes));
    const quotedMessageId = input.quotedMessageId ?? input.quoteId;
    const mentions = this.mentions(input.mentions);
    let fingerprint: string | undefined;
    // A retry is answered before the file is fetched or decoded again; a refused send costs no download.
    if (context.idempotencyKey) {
      const source =
        input.data !== undefined
          ? { dataSha256: hash(input.data) }
          : upload
            ? { uploadSha256: upload.sha256 }
            : { url: input.url };
      const what = kind === 'image' ? { kind } : { kind, filename: input.filename, voice: input.voice };
      fingerprint = hash({ ...what, toJid: given, ...source, caption: input.caption, quotedMessageId, mentions });
      const earlier = await outbox.findIdempotent(agentId, context.idempotencyKey, fingerprint);
      if (earlier) return earlier;
    }
    await outbox.assertReady(agentId);
    const toJid = await this.recipient(agentId, given);
    let downloaded: string | undefined;
    try {
      let media: OutboxMediaSource;
      let head: Buffer;
      if (input.data !== undefined) {
        media = decodeBase64(input.data, maxBytes, kind);
        head = media;
      } else if (upload) {
        media = { path: upload.path, size: upload.size };
        head = await readHead(upload.path);
      } else {
        downloaded = path.join(this.options.tempDir, `${DOWNLOAD_PREFIX}${randomUUID()}`);
        const size = await this.options.fetcher.fetchToFile(input.url ?? '', downloaded, maxBytes);
        media = { path: downloaded, size };
        head = await readHead(downloaded);
      }
      if ((Buffer.isBuffer(media) ? media.length : media.size) === 0) {
        throw new AppError('INVALID_PAYLOAD', 'the file is empty');
      }
      const detected = await detectMedia(kind, head, {
        voice: input.voice,
        declaredType: input.mimeType ?? input.mimetype,
      });
      // An image (10 MB at most) is read into memory: its preview is written from it.
      if (kind === 'image' && !Buffer.isBuffer(media)) media = await readFile(media.path);
      const size = Buffer.isBuffer(media) ? media.length : media.size;
      const previewPath =
        kind !== 'image' || input.save_to_temp === false || !Buffer.isBuffer(media)
          ? undefined
          : await this.options.previews.save(media, detected.extension);
      const filename =
        safeFilename(input.filename) ?? safeFilename(upload?.filename ?? undefined) ?? `${kind}.${detected.extension}`;
      const submitted = outbox.submit(
        agentId,
        {
          kind,
          toJid,
          media,
          payload: {
            caption: input.caption,
            filename,
            mimeType: detected.mimeType,
            size,
            ...(kind === 'audio' ? { voice: input.voice === true } : {}),
            quotedMessageId,
            mentions,
            previewPath,
            fingerprint,
          },
        },
        context,
      );
      // A refused image (queue full, session gone meanwhile) leaves no preview behind.
      return await (previewPath ? submitted.catch((err: unknown) => this.discard(previewPath, err)) : submitted);
    } finally {
      // Committed (its chunks are in the table) or refused: the download is of no more use either way.
      if (downloaded) await rm(downloaded, { force: true });
    }
  }

  /** A reaction to a message the agent sent or received, through the outbox (after what was queued before it). */
  async react(agentId: string, messageId: string, input: ReactionInput, context: SubmitContext = {}) {
    const emoji = input.emoji;
    if (emoji !== '' && !EMOJI.test(emoji)) throw new AppError('INVALID_PAYLOAD', 'emoji: one emoji, or "" to remove');
    const found = await this.options.outbox.findMessageRef(agentId, messageId);
    let target: NonNullable<OutboxPayload['reaction']>;
    if (found) {
      if (!found.waMessageId) {
        throw new AppError('MESSAGE_NOT_SENT', 'The message is not sent yet: there is nothing to react to.');
      }
      target = {
        emoji,
        chatJid: found.chatJid,
        waMessageId: found.waMessageId,
        fromMe: found.fromMe,
        ...(found.participant ? { participant: found.participant } : {}),
      };
    } else if (input.chatId) {
      const chatJid = await this.chat(agentId, input.chatId);
      target = { emoji, chatJid, waMessageId: messageId, fromMe: false };
    } else {
      throw new AppError('MESSAGE_NOT_FOUND', 'No message with this id is known for this agent; give its chatId.');
    }
    const fingerprint = fingerprintOf(context, { kind: 'reaction', target });
    return await this.options.outbox.submit(
      agentId,
      { kind: 'reaction', toJid: target.chatJid, payload: { reaction: target, fingerprint } },
      context,
    );
  }

  /** Marks a chat's received messages read, in order with the agent's sends (through the outbox). */
  async markRead(agentId: string, chatId: string, context: SubmitContext = {}) {
    const toJid = await this.chat(agentId, chatId);
    const fingerprint = fingerprintOf(context, { kind: 'read', toJid });
    return await this.options.outbox.submit(agentId, { kind: 'read', toJid, payload: { fingerprint } }, context);
  }

  /** Shows or clears "typing…" in a chat, in order with the agent's sends (through the outbox). */
  async setTyping(agentId: string, chatId: string, on: boolean, context: SubmitContext = {}) {
    const toJid = await this.chat(agentId, chatId);
    const fingerprint = fingerprintOf(context, { kind: 'typing', toJid, on });
    return await this.options.outbox.submit(
      agentId,
      { kind: 'typing', toJid, payload: { typing: on, fingerprint } },
      context,
    );
  }

  getMessage(agentId: string, messageId: string): Promise<OutboxMessageView> {
    return this.options.outbox.get(agentId, messageId);
  }

  /** The chat a `chatId` of a request names, as recipient() sends to it. */
  private chat(agentId: string, chatId: string): string | Promise<string> {
    return this.recipient(agentId, normalizeRecipient(chatId, this.options.defaultCountryCode, 'chatId'));
  }

  /** A LID whose number the agent knows is sent to that number, so that both forms of one person reach one chat. */
  private recipient(agentId: string, jid: string): string | Promise<string> {
    const { recipients } = this.options;
    return recipients && jid.endsWith('@lid') ? recipients.recipient(agentId, jid) : jid;
  }

  private async discard(previewPath: string, err: unknown): Promise<never> {
    await this.options.previews.remove(previewPath).catch(() => {});
    throw err;
  }

  private mentions(mentions: string[] | undefined): string[] | undefined {
    if (!mentions?.length) return undefined;
    return mentions.map((m, i) => normalizeRecipient(m, this.options.defaultCountryCode, `mentions[${i}]`));
  }
}

/** One emoji (with its modifiers, joiners and flags), as WhatsApp takes for a reaction. */
const EMOJI =
  /^(?:\p{Extended_Pictographic}|\p{Regional_Indicator}|\p{Emoji_Modifier}|\p{Emoji_Component}|\u200d|\ufe0f)+$/u;

function tooLarge(kind: MediaKind, maxBytes: number): string {
  return `The ${kind} is larger than the limit (${Math.floor(maxBytes / 1024 / 1024) || 1} MB for its kind).`;
}

function decodeBase64(data: string, maxBytes: number, kind: MediaKind): Buffer {
  try {
    return decodeBase64Image(data, maxBytes);
  } catch (err) {
    if (isAppError(err) && err.code === 'MEDIA_TOO_LARGE')
      throw new AppError('MEDIA_TOO_LARGE', tooLarge(kind, maxBytes));
    throw err;
  }
}

function toLocation(input: NonNullable<SendTextInput['location']>): NonNullable<OutboxPayload['location']> {
  return {
    latitude: input.latitude,
    longitude: input.longitude,
    ...(input.name ? { name: input.name } : {}),
    ...(input.address ? { address: input.address } : {}),
  };
}

/**
 * A contact card: the caller's vCard, checked (BEGIN/END, VERSION, an FN), or one built from name and phone (with the
 * waid WhatsApp uses to offer "Message"/"Add").
 */
export function toContact(
  input: NonNullable<SendTextInput['contact']>,
  defaultCountryCode: string,
): NonNullable<OutboxPayload['contact']> {
  if (input.vcard !== undefined) {
    if (input.name !== undefined || input.phone !== undefined) {
      throw new AppError('INVALID_PAYLOAD', 'contact: either vcard, or name and phone');
    }
    const vcard = input.vcard.replace(/\r?\n/g, '\n').trim();
    const lines = vcard.split('\n');
    const fn = lines.find((line) => /^FN[;:]/i.test(line));
    const displayName = fn?.slice(fn.indexOf(':') + 1).trim();
    if (!/^BEGIN:VCARD$/i.test(lines[0] ?? '') || !/^END:VCARD$/i.test(lines.at(-1) ?? '') || !displayName) {
      throw new AppError('INVALID_PAYLOAD', 'contact.vcard: a vCard from BEGIN:VCARD to END:VCARD with an FN line');
    }
    if (!lines.some((line) => /^VERSION:/i.test(line))) {
      throw new AppError('INVALID_PAYLOAD', 'contact.vcard: the vCard has no VERSION line');
    }
    return { vcard, displayName };
  }
  if (input.name === undefined || input.phone === undefined) {
    throw new AppError('INVALID_PAYLOAD', 'contact: either vcard, or name and phone');
  }
  const jid = normalizeRecipient(input.phone, defaultCountryCode, 'contact.phone');
  if (!jid.endsWith('@c.us')) throw new AppError('INVALID_PAYLOAD', 'contact.phone: a phone number');
  const digits = jid.slice(0, -'@c.us'.length);
  const name = input.name.replace(/[\r\n]/g, ' ').replace(/([,;\\])/g, '\\$1');
  const vcard = [
    'BEGIN:VCARD',
    'VERSION:3.0',
    `FN:${name}`,
    `TEL;type=CELL;waid=${digits}:+${digits}`,
    'END:VCARD',
  ].join('\n');
  return { vcard, displayName: input.name.replace(/[\r\n]/g, ' ') };
}

/**
 * What tells a request apart from another one given the same Idempotency-Key: only a request that carries a key may be
 * repeated, and only then is it hashed.
 */
function fingerprintOf(context: SubmitContext, request: object): string | undefined {
  return context.idempotencyKey ? hash(request) : undefined;
}

function hash(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}
