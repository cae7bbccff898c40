// Pure translation between Baileys 7 (messages, JIDs, close reasons) and the port's types.
import type { proto, WAMessage } from 'baileys';
import type { InboundLocation, InboundMedia, InboundMessage, InboundMessageType } from '../engine.js';

/** Baileys addresses users as `<digits>@s.whatsapp.net` (with a `:device` part for own devices); the port uses `@c.us`. */
export function toCanonicalJid(jid: string): string {
  const at = jid.indexOf('@');
  if (at < 0) return jid;
  const user = jid.slice(0, at).split(':')[0] ?? '';
  const server = jid.slice(at + 1);
  return `${user}@${server === 's.whatsapp.net' ? 'c.us' : server}`;
}

/** The JID Baileys expects for a canonical one. */
export function toBaileysJid(jid: string): string {
  return jid.endsWith('@c.us') ? `${jid.slice(0, -'@c.us'.length)}@s.whatsapp.net` : jid;
}

/** Prefer the phone JID when WhatsApp addressed the message by LID and also told us the number. */
function preferPhone(jid: string | null | undefined, alt: string | null | undefined): string | null {
  if (!jid) return alt ? toCanonicalJid(alt) : null;
  if (jid.endsWith('@lid') && alt?.endsWith('@s.whatsapp.net')) return toCanonicalJid(alt);
  return toCanonicalJid(jid);
}

/**
 * A person's two addresses from a key's JID and its `…Alt` (Baileys 7 puts the other form there: the phone JID of a
 * LID-addressed message, the LID of a phone-addressed one), each canonical, or null where it is not given.
 */
export function addressesOf(
  jid: string | null | undefined,
  alt: string | null | undefined,
): { phoneJid: string | null; lid: string | null } {
  let phoneJid: string | null = null;
  let lid: string | null = null;
  for (const value of [jid, alt]) {
    if (!value) continue;
    const canonical = toCanonicalJid(value);
    if (canonical.endsWith('@c.us')) phoneJid ??= canonical;
    else if (canonical.endsWith('@lid')) lid ??= canonical;
  }
  return { phoneJid, lid };
}

type Content = proto.IMessage;

/** Wrappers that carry the real message inside them (disappearing, view-once, captioned documents). */
function unwrap(message: Content | null | undefined): Content | null {
  let current = message ?? null;
  for (let depth = 0; current && depth < 5; depth += 1) {
    const inner =
      current.ephemeralMessage?.message ??
      current.viewOnceMessage?.message ??
      current.viewOnceMessageV2?.message ??
      current.viewOnceMessageV2Extension?.message ??
      current.documentWithCaptionMessage?.message ??
      null;
    if (!inner) return current;
    current = inner;
  }
  return current;
}

function typeOf(content: Content | null): InboundMessageType {
  if (!content) return 'other';
  if (content.conversation != null || content.extendedTextMessage) return 'text';
  if (content.imageMessage) return 'image';
  if (content.videoMessage) return 'video';
  if (content.audioMessage) return 'audio';
  if (content.documentMessage) return 'document';
  if (content.stickerMessage) return 'sticker';
  if (content.locationMessage || content.liveLocationMessage) return 'location';
  return 'other';
}

function textOf(content: Content | null): string {
  if (!content) return '';
  return (
    content.conversation ??
    content.extendedTextMessage?.text ??
    content.imageMessage?.caption ??
    content.videoMessage?.caption ??
    content.documentMessage?.caption ??
    ''
  );
}

function contextInfoOf(content: Content | null): proto.IContextInfo | null {
  if (!content) return null;
  return (
    content.extendedTextMessage?.contextInfo ??
    content.imageMessage?.contextInfo ??
    content.videoMessage?.contextInfo ??
    content.audioMessage?.contextInfo ??
    content.documentMessage?.contextInfo ??
    content.stickerMessage?.contextInfo ??
    content.locationMessage?.contextInfo ??
    null
  );
}

/** The attachment's metadata: its type, size and (documents) file name; null for a message without a file. */
function mediaOf(content: Content | null): InboundMedia | null {
  if (!content) return null;
  const file =
    content.imageMessage ??
    content.videoMessage ??
    content.audioMessage ??
    content.documentMessage ??
    content.stickerMessage ??
    null;
  if (!file) return null;
  const length = file.fileLength;
  const size = length == null ? null : typeof length === 'number' ? length : Number(length.toString());
  const filename = content.documentMessage?.fileName ?? null;
  const seconds = content.audioMessage?.seconds ?? content.videoMessage?.seconds ?? null;
  return {
    mimeType: file.mimetype ?? null,
    size: Number.isFinite(size) ? size : null,
    filename: filename || null,
    durationSeconds: seconds ?? null,
  };
}

/** A pinned or live location: coordinates in degrees, and the place's name and address when one was picked. */
function locationOf(content: Content | null): InboundLocation | null {
  const pin = content?.locationMessage;
  const live = content?.liveLocationMessage;
  const latitude = pin?.degreesLatitude ?? live?.degreesLatitude;
  const longitude = pin?.degreesLongitude ?? live?.degreesLongitude;
  if (latitude == null || longitude == null) return null;
  return { latitude, longitude, name: pin?.name || null, address: pin?.address || null };
}

/** The file's metadata of a message the session kept (for downloadMedia); null when it carries none. */
export function mediaOfMessage(message: WAMessage): InboundMedia | null {
  return mediaOf(unwrap(message.message));
}

/** protobuf timestamps arrive as numbers, or as Long objects (`{ low, high }`) when decoded from the wire. */
export function toSeconds(value: WAMessage['messageTimestamp']): number {
  if (value == null) return 0;
  if (typeof value === 'number') return value;
  if (typeof value === 'string') return Number(value);
  return value.high * 2 ** 32 + (value.low >>> 0);
}

export interface MessageContext {
  /** Our own JID, canonical: the sender of our own messages in a private chat. */
  me: string | null;
  /** A group's subject, looked up by the adapter; null in private chats or when unknown. */
  groupName: string | null;
}

export function toInboundMessage(message: WAMessage, context: MessageContext): InboundMessage {
  const { key } = message;
  const chatJid = preferPhone(key.remoteJid, key.remoteJidAlt) ?? '';
  const isGroup = chatJid.endsWith('@g.us');
  const fromMe = key.fromMe ?? false;
  const participant = preferPhone(key.participant ?? message.participant, key.participantAlt);
  const senderJid = isGroup ? (participant ?? chatJid) : fromMe ? (context.me ?? chatJid) : chatJid;
  const content = unwrap(message.message);
  const pushName = message.pushName || null;
  // The sender's addresses: the chat's in a private chat, the participant's in a group. Not for our own messages,
  // whose `…Alt` may name our own account rather than the chat's.
  const addresses = fromMe
    ? { phoneJid: null, lid: null }
    : isGroup
      ? addressesOf(key.participant ?? message.participant, key.participantAlt)
      : addressesOf(key.remoteJid, key.remoteJidAlt);
  return {
    id: key.id ?? '',
    chatJid,
    senderJid,
    text: textOf(content),
    type: typeOf(content),
    isGroup,
    mentions: (contextInfoOf(content)?.mentionedJid ?? []).map(toCanonicalJid),
    fromMe,
    timestamp: toSeconds(message.messageTimestamp) * 1000,
    pushName,
    // A private chat is named after the person, as WhatsApp shows it; Baileys keeps no contact book for us.
    chatName: isGroup ? context.groupName : pushName,
    quotedMessageId: contextInfoOf(content)?.stanzaId || null,
    media: mediaOf(content),
    senderPhoneJid: addresses.phoneJid,
    senderLid: addresses.lid,
    location: locationOf(content),
  };
}

/** What to do about a closed connection, from the status code Baileys puts on its Boom error. */
export type CloseAction = 'restart' | 'logged_out' | 'reconnect';

const STATUS_LOGGED_OUT = 401;
const STATUS_RESTART_REQUIRED = 515;

export function toCloseAction(error: unknown): { action: CloseAction; statusCode: number | null; reason: string } {
  const statusCode = statusCodeOf(error);
  const message = error instanceof Error ? error.message : 'connection closed';
  const reason = statusCode === null ? message : `${message} (${statusCode})`;
  if (statusCode === STATUS_RESTART_REQUIRED) return { action: 'restart', statusCode, reason };
  if (statusCode === STATUS_LOGGED_OUT) return { action: 'logged_out', statusCode, reason };
  return { action: 'reconnect', statusCode, reason };
}

/** Boom errors keep the status in `output.statusCode`; plain errors have none. */
function statusCodeOf(error: unknown): number | null {
  if (!error || typeof error !== 'object' || !('output' in error)) return null;
  const output = error.output;
  if (!output || typeof output !== 'object' || !('statusCode' in output)) return null;
  return typeof output.statusCode === 'number' ? output.statusCode : null;
}

/** The account's identity from Baileys' `user` (`creds.me`): ids carry a device part that the port drops. */
export function toIdentity(user: { id: string; lid?: string | undefined } | undefined): {
  me: string;
  lid: string | null;
} {
  if (!user?.id) throw new Error('baileys: connection open without an account');
  return { me: toCanonicalJid(user.id), lid: user.lid ? toCanonicalJid(user.lid) : null };
}
