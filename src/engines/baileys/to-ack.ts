// Pure translation of Baileys' `messages.update` (a message's new status) to the port's receipts.
import type { WAMessageUpdate } from 'baileys';
import type { AckStatus, MessageAck } from '../engine.js';
import { toSeconds } from './to-inbound-message.js';

/**
 * proto.WebMessageInfo.Status: ERROR 0, PENDING 1, SERVER_ACK 2, DELIVERY_ACK 3, READ 4, PLAYED 5. PENDING is a message
 * not sent yet: no receipt.
 */
const STATUSES: ReadonlyMap<number, AckStatus> = new Map([
  [0, 'error'],
  [2, 'server'],
  [3, 'delivered'],
  [4, 'read'],
  [5, 'played'],
]);

/**
 * The receipts among the updates: those of messages this account sent that carry a status. Other updates (edits,
 * another device of ours reading a received message, placeholder resends) are none. In a group, Baileys reports
 * receipts per participant as `message-receipt.update` instead, which are not read.
 */
export function toAcks(updates: readonly WAMessageUpdate[]): MessageAck[] {
  const acks: MessageAck[] = [];
  for (const { key, update } of updates) {
    const status = update.status == null ? undefined : STATUSES.get(update.status);
    if (!status || !key.fromMe || !key.id) continue;
    // A receipt carries WhatsApp's time of it (seconds); an error carries the server's code.
    const seconds = toSeconds(update.messageTimestamp);
    const code = update.messageStubParameters?.[0];
    acks.push({
      waMessageId: key.id,
      status,
      ...(status !== 'error' && seconds > 0 ? { at: seconds * 1000 } : {}),
      ...(status === 'error' ? { error: `WhatsApp refused the message${code ? ` (error ${code})` : ''}` } : {}),
    });
  }
  return acks;
}
