// Sending on an agent's behalf: validates and normalizes a text or image request, then hands it to the outbox.
import { createHash } from 'node:crypto';
import type { z } from 'zod';
import { AppError } from '../errors.js';
import type { Outbox, OutboxMessageView, SubmitContext, SubmitResult } from '../outbox/outbox.js';
import { normalizeRecipient } from '../whatsapp/jid.js';
import { decodeBase64Image, detectImage } from './media.js';
import { checkScheme, type MediaFetcher } from './media-fetch.js';
import type { sendMediaBody, sendMessageBody } from './messaging.schemas.js';
import type { PreviewStore } from './preview-store.js';

export type SendTextInput = z.infer<typeof sendMessageBody>;
export type SendImageInput = z.infer<typeof sendMediaBody>;

/** Where a send to a LID goes when the agent knows the person's number (implemented by src/identity/). */
export interface RecipientDirectory {
  /** The phone JID of a known LID, else the LID itself. */
  recipient(agentId: string, lid: string): Promise<string>;
}

export interface MessagingServiceOptions {
  outbox: Pick<Outbox, 'submit' | 'findIdempotent' | 'assertReady' | 'get'>;
  fetcher: Pick<MediaFetcher, 'fetch'>;
  previews: Pick<PreviewStore, 'save' | 'remove'>;
  defaultCountryCode: string;
  mediaMaxBytes: number;
  /** Absent: a LID is sent to as it is. */
  recipients?: RecipientDirectory | undefined;
}

export class MessagingService {
  constructor(private readonly options: MessagingServiceOptions) {}

  async sendText(agentId: string, input: SendTextInput, context: SubmitContext = {}): Promise<SubmitResult> {
    const given = normalizeRecipient(input.to, this.options.defaultCountryCode);
    const toJid = await this.recipient(agentId, given);
    const quotedMessageId = input.quotedMessageId ?? input.quoteId;
    const mentions = this.mentions(input.mentions);
    // Only a request that may be repeated needs telling apart from another one with the same key. By the address as
    // given: a retry is the same request even when the LID's number became known meanwhile.
    const fingerprint = context.idempotencyKey
      ? hash({ kind: 'text', toJid: given, text: input.message, quotedMessageId, mentions })
      : undefined;
    // `return await`: an async function returning a promise as is costs two more turns of the microtask queue.
    return await this.options.outbox.submit(
      agentId,
      { kind: 'text', toJid, payload: { text: input.message, quotedMessageId, mentions, fingerprint } },
      context,
    );
  }

  async sendImage(agentId: string, input: SendImageInput, context: SubmitContext = {}): Promise<SubmitResult> {
    const { outbox, mediaMaxBytes } = this.options;
    if ((input.data === undefined) === (input.url === undefined)) {
      throw new AppError('INVALID_PAYLOAD', 'body: exactly one of data or url is required');
    }
    const given = normalizeRecipient(input.to, this.options.defaultCountryCode);
    if (input.url !== undefined) checkScheme(input.url); // a malformed request is 400 whatever the session's state
    const quotedMessageId = input.quotedMessageId ?? input.quoteId;
    const mentions = this.mentions(input.mentions);
    let fingerprint: string | undefined;
    // A retry is answered before the image is fetched or decoded again; a refused send costs no download.
    if (context.idempotencyKey) {
      const source = input.data !== undefined ? { dataSha256: hash(input.data) } : { url: input.url };
      fingerprint = hash({ kind: 'image', toJid: given, ...source, caption: input.caption, quotedMessageId, mentions });
      const earlier = await outbox.findIdempotent(agentId, context.idempotencyKey, fingerprint);
      if (earlier) return earlier;
    }
    await outbox.assertReady(agentId);
    const toJid = await this.recipient(agentId, given);
    const bytes =
      input.data !== undefined
        ? decodeBase64Image(input.data, mediaMaxBytes)
        : await this.options.fetcher.fetch(input.url ?? '');
    const image = await detectImage(bytes);
    const previewPath =
      input.save_to_temp === false ? undefined : await this.options.previews.save(bytes, image.extension);
    const submitted = outbox.submit(
      agentId,
      {
        kind: 'image',
        toJid,
        media: bytes,
        payload: {
          caption: input.caption,
          filename: input.filename ?? `image.${image.extension}`,
          mimeType: image.mimeType,
          quotedMessageId,
          mentions,
          previewPath,
          fingerprint,
        },
      },
      context,
    );
    // A refused image (queue full, session gone meanwhile) leaves no preview behind.
    return previewPath ? submitted.catch((err: unknown) => this.discard(previewPath, err)) : submitted;
  }

  getMessage(agentId: string, messageId: string): Promise<OutboxMessageView> {
    return this.options.outbox.get(agentId, messageId);
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

function hash(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}
