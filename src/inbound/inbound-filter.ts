// Decides which inbound messages deserve an AI answer. Pure: the message and the bot's identity in, a verdict out.
import type { EngineIdentity, InboundMessage, InboundMessageType } from '../engines/engine.js';
import { jidUser } from '../whatsapp/jid.js';

export type IgnoreReason = 'status' | 'broadcast' | 'channel' | 'from_me' | 'not_text' | 'empty' | 'not_mentioned';

export type FilterVerdict = { pass: true } | { pass: false; reason: IgnoreReason };

const ignore = (reason: IgnoreReason): FilterVerdict => ({ pass: false, reason });

/** Text only: what the service forwarded before media forwarding (AI_FORWARD_TYPES's default is wider). */
const TEXT_ONLY: ReadonlySet<InboundMessageType> = new Set(['text']);

/**
 * `forwardTypes`: AI_FORWARD_TYPES. A message of another type is ignored (`not_text`, the reason's historical name).
 * Text must not be blank; a file or a location may come without a caption.
 */
export function filterInbound(
  message: InboundMessage,
  identity: EngineIdentity,
  forwardTypes: ReadonlySet<InboundMessageType> = TEXT_ONLY,
): FilterVerdict {
  const chat = message.chatJid.toLowerCase();
  if (chat === 'status@broadcast') return ignore('status');
  if (chat.endsWith('@broadcast')) return ignore('broadcast');
  if (chat.endsWith('@newsletter')) return ignore('channel');
  if (message.fromMe) return ignore('from_me');
  if (!forwardTypes.has(message.type)) return ignore('not_text');
  if (message.type === 'text' && message.text.trim() === '') return ignore('empty');
  if (message.isGroup && !mentionsBot(message, identity)) return ignore('not_mentioned');
  return { pass: true };
}

/** A group message is for the bot when it tags the bot's JID or LID, or writes out the bot's number. */
function mentionsBot(message: InboundMessage, identity: EngineIdentity): boolean {
  // Compared by user part, so `@c.us`, `@s.whatsapp.net` and `:device` forms of the same account all match.
  const ids = [identity.me, identity.lid].filter((jid): jid is string => Boolean(jid)).map(jidUser);
  if (ids.length === 0) return false;
  if (message.mentions.some((jid) => ids.includes(jidUser(jid)))) return true;
  // Clients that do not attach mention metadata still put "@<number>" in the text.
  return ids.some((digits) => digits.length >= 5 && message.text.includes(digits));
}
