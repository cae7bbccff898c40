// Request and response schemas of the chat history endpoints; the types come from them.
import { z } from 'zod';
import { agentIdSchema, text } from '../http/schemas.js';
import { OUTBOX_STATUSES } from '../outbox/outbox.js';

export const HISTORY_PAGE_DEFAULT = 50;
export const HISTORY_PAGE_MAX = 200;

export const pageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(HISTORY_PAGE_MAX).default(HISTORY_PAGE_DEFAULT),
  cursor: text()
    .min(1)
    .max(512)
    .optional()
    .describe('The nextCursor of the previous page; absent for the first (newest) page'),
});

export const chatParams = z.object({
  agentId: agentIdSchema,
  chatId: text()
    .min(1)
    .max(160)
    .describe('The chat: a JID (@c.us, @s.whatsapp.net, @g.us, @lid, @broadcast, @newsletter) or a phone number'),
});

export const MESSAGE_TYPES = [
  'text',
  'image',
  'video',
  'audio',
  'document',
  'sticker',
  'location',
  'contact',
  'other',
] as const;

const mediaSchema = z
  .object({ mimeType: z.string().nullable(), size: z.number().nullable(), filename: z.string().nullable() })
  .nullable()
  .describe("An attachment's metadata as WhatsApp reported it (the bytes are not kept); null without one");

const receiptTime = z.string().nullable();

const receiptsSchema = z
  .object({
    server: receiptTime.describe("When WhatsApp's server took the message (one grey tick)"),
    delivered: receiptTime.describe("When it reached the recipient's phone (two grey ticks)"),
    read: receiptTime.describe('When the recipient read it (two blue ticks)'),
    played: receiptTime.describe('When the recipient played it (voice and video messages)'),
    error: z.string().nullable().describe('What WhatsApp reported when it could not deliver the message'),
    errorAt: receiptTime.describe('When that error was reported'),
  })
  .nullable()
  .describe(
    "A message sent through this API: WhatsApp's receipts, as in GET /agents/{agentId}/messages/{messageId} (when " +
      'each first came, ISO 8601, null until it does); null for received messages and for those sent from the phone',
  );

export const historyItemSchema = z.object({
  id: z.string().describe("WhatsApp's id for a received message; our outbox id for one sent through this API"),
  waMessageId: z.string().nullable().describe("WhatsApp's id (a sent message has it once sent)"),
  direction: z
    .enum(['in', 'out'])
    .describe("out: sent by the agent, through this API or from the account's phone or other devices"),
  chatId: z.string(),
  from: z.string().nullable().describe('The sender JID (a group participant in groups); null when unknown'),
  type: z.enum(MESSAGE_TYPES),
  text: z.string().nullable().describe('The text of a text message'),
  caption: z.string().nullable().describe('The caption of a media message'),
  quotedMessageId: z.string().nullable(),
  media: mediaSchema,
  timestamp: z.string().describe('When the service received the message, or accepted it for sending (ISO 8601)'),
  status: z
    .enum(OUTBOX_STATUSES)
    .nullable()
    .describe('A message sent through this API: its outbox state; null for the others'),
  receipts: receiptsSchema,
  error: z.string().nullable().describe('A message sent through this API whose send failed: why; null otherwise'),
});

export const chatMessagesSchema = z.object({
  items: z.array(historyItemSchema).describe('Newest first'),
  nextCursor: z.string().nullable().describe('Pass as cursor for the next (older) page; null on the last page'),
});

export const chatSummarySchema = z.object({
  chatId: z.string(),
  chatName: z.string().nullable().describe('The group subject or contact name, as last seen on a received message'),
  isGroup: z.boolean(),
  lastMessageAt: z.string(),
  lastMessage: z.object({
    direction: z.enum(['in', 'out']),
    type: z.enum(MESSAGE_TYPES),
    preview: z.string().describe('Its text or caption, cut at 200 characters'),
  }),
  counts: z.object({ in: z.number().int(), out: z.number().int() }).describe('Messages kept, by direction'),
});

export const chatListSchema = z.object({
  items: z.array(chatSummarySchema).describe('The chat with the latest message first'),
  nextCursor: z.string().nullable(),
});

export type HistoryItem = z.infer<typeof historyItemSchema>;
export type ChatSummary = z.infer<typeof chatSummarySchema>;
export type MessageType = (typeof MESSAGE_TYPES)[number];
