// The inbound pipeline's AttachmentCollector: a message's file goes into the media store and out as a signed link.
import type { AgentConnection } from '../ai/agent-ports.js';
import type { AiAttachment } from '../ai/ai-client.js';
import type { Clock } from '../clock.js';
import { type InboundMessage, isMediaKind } from '../engines/engine.js';
import type { AttachmentCollector } from '../inbound/inbound.service.js';
import type { MediaLinks } from './media-links.js';
import type { MediaStore } from './media-store.js';

export interface InboundAttachmentsOptions {
  store: MediaStore;
  links: MediaLinks;
  /** MEDIA_URL_TTL_SECONDS, in ms (never past the file's retention). */
  urlTtlMs: number;
  clock: Clock;
}

export function createInboundAttachments({
  store,
  links,
  urlTtlMs,
  clock,
}: InboundAttachmentsOptions): AttachmentCollector {
  return {
    async collect(agentId: string, message: InboundMessage, connection: AgentConnection): Promise<AiAttachment[]> {
      const caption = message.text === '' ? null : message.text;
      if (message.type === 'location' && message.location) {
        const { latitude, longitude, name, address } = message.location;
        return [
          {
            ...EMPTY,
            type: 'location',
            caption,
            available: true,
            latitude,
            longitude,
            name,
            address: address ?? null,
          },
        ];
      }
      if (!isMediaKind(message.type)) return [];
      const media = message.media ?? null;
      const described = {
        ...EMPTY,
        type: message.type,
        mimeType: media?.mimeType ?? null,
        size: media?.size ?? null,
        filename: media?.filename ?? null,
        caption,
        durationSeconds: media?.durationSeconds ?? null,
      };
      const download = connection.downloadMedia;
      const result = await store.save({
        agentId,
        messageId: message.id,
        kind: message.type,
        mimeType: described.mimeType,
        filename: described.filename,
        declaredSize: described.size,
        download: download ? () => download(message.id) : undefined,
      });
      if (!result.stored) return [{ ...described, available: false, unavailableReason: result.reason }];
      const { file } = result;
      const expiresAtMs = clock.now() + urlTtlMs;
      const url = links.url(file.id, expiresAtMs);
      return [
        {
          ...described,
          mimeType: file.mimeType,
          size: file.sizeBytes,
          filename: file.filename,
          url,
          expiresAt: url ? new Date(Math.floor(expiresAtMs / 1000) * 1000).toISOString() : null,
          available: true,
          sha256: file.sha256,
        },
      ];
    },
  };
}

const EMPTY = {
  mimeType: null,
  size: null,
  filename: null,
  caption: null,
  durationSeconds: null,
  url: null,
  expiresAt: null,
  available: false,
  unavailableReason: null,
  sha256: null,
} satisfies Omit<AiAttachment, 'type'>;
