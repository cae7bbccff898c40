// Pure translation of whatsapp-web.js's `message_ack` event (the message, and its new MessageAck) to the port's receipt.
import type { MessageAck } from 'whatsapp-web.js';
import type { AckStatus, MessageAck as Receipt } from '../engine.js';
import type { WwebAckedMessage } from './whatsapp-web.types.js';

/**
 * whatsapp-web.js's MessageAck values (index.d.ts): ACK_ERROR -1, ACK_PENDING 0, ACK_SERVER 1, ACK_DEVICE 2,
 * ACK_READ 3, ACK_PLAYED 4. PENDING is a message not sent yet: no receipt.
 */
const STATUSES: ReadonlyMap<number, AckStatus> = new Map([
  [-1, 'error'],
  [1, 'server'],
  [2, 'delivered'],
  [3, 'read'],
  [4, 'played'],
]);

/** The receipt of a message this account sent; null for any other message, or an ack that is not one. */
export function toAck(message: WwebAckedMessage, ack: MessageAck): Receipt | null {
  const status = STATUSES.get(ack);
  if (!status || !message.id.fromMe) return null;
  return {
    waMessageId: message.id._serialized,
    status,
    ...(status === 'error' ? { error: 'WhatsApp Web reported ACK_ERROR for the message' } : {}),
  };
}
