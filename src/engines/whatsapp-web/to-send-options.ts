// How whatsapp-web.js is told what a file or a reaction's target is: its send options per kind, its serialized ids.
import type { MessageSendOptions } from 'whatsapp-web.js';
import type { OutboundMedia, ReactionTarget } from '../engine.js';

/** The options of client.sendMessage that make a MessageMedia a document, a voice note or a sticker. */
export function toMediaSendOptions(media: OutboundMedia): MessageSendOptions {
  const caption = media.caption ? { caption: media.caption } : {};
  switch (media.kind) {
    case 'image':
    case 'video':
      return caption;
    case 'document':
      return { sendMediaAsDocument: true, ...caption };
    case 'audio':
      return media.voice ? { sendAudioAsVoice: true } : {};
    case 'sticker':
      return { sendMediaAsSticker: true };
  }
}

/**
 * whatsapp-web.js names a message `<fromMe>_<chat>_<id>[_<participant>]`; the ids this service keeps are already in
 * that form, and a bare id (from elsewhere) is put in it.
 */
export function toSerializedId(target: ReactionTarget): string {
  if (/^(true|false)_/.test(target.waMessageId)) return target.waMessageId;
  const participant = target.participant ? `_${target.participant}` : '';
  return `${target.fromMe}_${target.chatJid}_${target.waMessageId}${participant}`;
}
