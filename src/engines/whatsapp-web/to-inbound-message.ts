// Pure translation of whatsapp-web.js messages and ids into the port's types.
import type { InboundLocation, InboundMedia, InboundMessage, InboundMessageType } from '../engine.js';
import type { WwebMessageData } from './whatsapp-web.types.js';

/** whatsapp-web.js already uses `@c.us`; only a stray `@s.whatsapp.net` and a `:device` suffix need folding. */
export function toCanonicalJid(jid: string): string {
  const at = jid.indexOf('@');
  if (at < 0) return jid;
  const user = (jid.slice(0, at).split(':')[0] ?? '').trim();
  const server = jid.slice(at + 1);
  return `${user}@${server === 's.whatsapp.net' ? 'c.us' : server}`;
}

const TYPES: Record<string, InboundMessageType> = {
  chat: 'text',
  image: 'image',
  video: 'video',
  audio: 'audio',
  ptt: 'audio',
  document: 'document',
  sticker: 'sticker',
  location: 'location',
};

export interface MessageContext {
  /** The chat's name (a group's subject, a contact's saved or public name), looked up by the adapter. */
  chatName: string | null;
  /** The sender's public name from their contact, used when the message does not carry one. */
  contactPushName: string | null;
  /**
   * The sender's contact id (`contact.id._serialized`): whatsapp-web.js gives the phone JID there for a LID sender
   * whose number WhatsApp Web knows, so it is the sender's other address. Absent or null when unknown.
   */
  contactId?: string | null | undefined;
}

export function toInboundMessage(message: WwebMessageData, context: MessageContext): InboundMessage {
  const chatJid = toCanonicalJid(message.id.remote || (message.fromMe ? message.to : message.from));
  const isGroup = chatJid.endsWith('@g.us');
  const sender = message.author || message.from;
  const senderJid = sender ? toCanonicalJid(sender) : chatJid;
  // Not for our own messages: their contact is ours, not the chat's.
  const addresses = message.fromMe ? { phoneJid: null, lid: null } : addressesOf(senderJid, context.contactId);
  return {
    id: message.id._serialized,
    chatJid,
    senderJid,
    // A location's body is its map thumbnail in base64, not anything the sender wrote.
    text: message.type === 'location' ? '' : (message.body ?? ''),
    type: TYPES[message.type] ?? 'other',
    isGroup,
    mentions: (message.mentionedIds ?? []).map(mentionJid).filter((jid) => jid !== ''),
    fromMe: message.fromMe,
    timestamp: message.timestamp * 1000,
    pushName: notifyName(message.rawData) ?? context.contactPushName,
    chatName: context.chatName,
    quotedMessageId: rawString(message.rawData, 'quotedStanzaID'),
    media: message.hasMedia ? { ...mediaOf(message.rawData), durationSeconds: seconds(message.duration) } : null,
    location: message.type === 'location' ? locationOf(message.location) : null,
    senderPhoneJid: addresses.phoneJid,
    senderLid: addresses.lid,
  };
}

/** whatsapp-web.js gives a duration as a string of seconds (sometimes a number); absent for files without one. */
function seconds(value: unknown): number | null {
  const parsed = typeof value === 'string' ? Number(value) : value;
  return typeof parsed === 'number' && Number.isFinite(parsed) && parsed >= 0 ? parsed : null;
}

/** whatsapp-web.js's Location: coordinates as strings (or numbers), the place's name and address when one was picked. */
function locationOf(location: WwebMessageData['location']): InboundLocation | null {
  if (!location) return null;
  const latitude = Number(location.latitude);
  const longitude = Number(location.longitude);
  if (!Number.isFinite(latitude) || !Number.isFinite(longitude)) return null;
  return {
    latitude,
    longitude,
    name: location.name || location.description?.split('\n')[0] || null,
    address: location.address || null,
  };
}

/** The phone JID and the LID among a sender's JID and its contact id, canonical; null where neither is one. */
function addressesOf(
  senderJid: string,
  contactId: string | null | undefined,
): { phoneJid: string | null; lid: string | null } {
  const ids = [senderJid, contactId ? toCanonicalJid(contactId) : null];
  return {
    phoneJid: ids.find((jid) => jid?.endsWith('@c.us')) ?? null,
    lid: ids.find((jid) => jid?.endsWith('@lid')) ?? null,
  };
}

/** A string field of WhatsApp Web's raw message (`_data`), when it is there and not empty. */
function rawString(raw: object | undefined, key: string): string | null {
  const value: unknown = raw ? (raw as Record<string, unknown>)[key] : undefined;
  return typeof value === 'string' && value !== '' ? value : null;
}

/** The attachment's metadata from WhatsApp Web's raw message: `mimetype`, `size`, `filename`. */
function mediaOf(raw: object | undefined): InboundMedia {
  const size: unknown = raw ? (raw as Record<string, unknown>).size : undefined;
  return {
    mimeType: rawString(raw, 'mimetype'),
    size: typeof size === 'number' && Number.isFinite(size) ? size : null,
    filename: rawString(raw, 'filename'),
  };
}

/** Mentions arrive as strings per the typings, but some WhatsApp Web builds serialize them as Wid objects. */
function mentionJid(mention: unknown): string {
  if (typeof mention === 'string') return toCanonicalJid(mention);
  if (mention && typeof mention === 'object' && '_serialized' in mention && typeof mention._serialized === 'string') {
    return toCanonicalJid(mention._serialized);
  }
  return '';
}

/** The sender's push name as the message carried it (WhatsApp Web's `notifyName`). */
function notifyName(raw: object | undefined): string | null {
  if (raw && 'notifyName' in raw && typeof raw.notifyName === 'string' && raw.notifyName !== '') return raw.notifyName;
  return null;
}

/** The account's identity from `client.info.wid`, which is the phone JID, or the LID when WhatsApp hides the number. */
export function toIdentity(
  wid: { _serialized: string } | undefined,
  lid: string | null,
): { me: string; lid: string | null } {
  if (!wid) throw new Error('whatsapp-web: ready without client.info.wid');
  const own = toCanonicalJid(wid._serialized);
  if (own.endsWith('@lid')) return { me: own, lid: own };
  return { me: own, lid: lid ? toCanonicalJid(lid) : null };
}
