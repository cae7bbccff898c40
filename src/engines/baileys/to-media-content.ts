// An outbound file as Baileys sends it: the content object of sock.sendMessage for each kind.
import type { AnyMediaMessageContent } from 'baileys';
import type { OutboundMedia } from '../engine.js';

/** `mentions`: Baileys JIDs (only images and videos carry them). */
export function toMediaContent(media: OutboundMedia, mentions: string[]): AnyMediaMessageContent {
  const caption = media.caption ? { caption: media.caption } : {};
  const mentioned = mentions.length ? { mentions } : {};
  switch (media.kind) {
    case 'image':
      return { image: media.data, mimetype: media.mimeType, ...caption, ...mentioned };
    case 'video':
      return { video: media.data, mimetype: media.mimeType, ...caption, ...mentioned };
    case 'audio':
      // ptt: a voice note (the waveform bubble), which WhatsApp expects as Ogg/Opus.
      return { audio: media.data, mimetype: media.mimeType, ptt: media.voice === true };
    case 'sticker':
      return { sticker: media.data, mimetype: media.mimeType };
    case 'document':
      return {
        document: media.data,
        mimetype: media.mimeType,
        fileName: media.filename ?? 'document',
        ...caption,
      };
  }
}
