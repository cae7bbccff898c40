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

export interface MessagingServiceOptions {
  outbox: Pick<Outbox, 'submit' | 'findIdempotent' | 'assertReady' | 'get'>;
  fetcher: Pick<MediaFetcher, 'fetch'>;
  previews: Pick<PreviewStore, 'save' | 'remove'>;
  defaultCountryCode: string;
  mediaMaxBytes: number;
}

export class MessagingService {
  constructor(private readonly options: MessagingServiceOptions) {}

  async sendText(agentId: string, input: SendTextInput, context: SubmitContext = {}): Promise<SubmitResult> {
    const toJid = normalizeRecipient(input.to, this.options.defaultCountryCode);
    const quotedMessageId = input.quotedMessageId ?? input.quoteId;
    const mentions = this.mentions(input.mentions);
    // Only a request that may be repeated needs telling apart from another one with the same key.
    const fingerprint = context.idempotencyKey
      ? hash({ kind: 'text', toJid, text: input.message, quotedMessageId, mentions })
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
    const toJid = normalizeRecipient(input.to, this.options.defaultCountryCode);
    if (input.url !== undefined) checkScheme(input.url); // a malformed request is 400 whatever the session's state
    const quotedMessageId = input.quotedMessageId ?? input.quoteId;
    const mentions = this.mentions(input.mentions);
    let fingerprint: string | undefined;
    // A retry is answered before the image is fetched or decoded again; a refused send costs no download.
    if (context.idempotencyKey) {
      const source = input.data !== undefined ? { dataSha256: hash(input.data) } : { url: input.url };
      fingerprint = hash({ kind: 'image', toJid, ...source, caption: input.caption, quotedMessageId, mentions });
      const earlier = await outbox.findIdempotent(agentId, context.idempotencyKey, fingerprint);
      if (earlier) return earlier;
    }
    await outbox.assertReady(agentId);
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
