// A private text message as an engine delivers it, for tests and benchmarks that bypass the sandbox's HTTP surface.
import type { InboundMessage } from '../../src/engines/engine.js';

export function privateText(id: string, chatJid: string, text: string): InboundMessage {
  return {
    id,
    chatJid,
    senderJid: chatJid,
    text,
    type: 'text',
    isGroup: false,
    mentions: [],
    fromMe: false,
    timestamp: Date.now(),
    pushName: null,
    chatName: null,
  };
}
