// Request and response schemas of the agent messaging endpoints; the types come from them.
import { z } from 'zod';
import { agentIdSchema, text } from '../http/schemas.js';
import { OUTBOX_STATUSES } from '../outbox/outbox.js';

const quoteFields = {
  quotedMessageId: text().min(1).max(256).optional(),
  quoteId: text().min(1).max(256).optional().describe('Alias of quotedMessageId (seed)'),
  mentions: z.array(text().min(1).max(64)).max(256).optional(),
};

export const sendMessageBody = z.object({
  to: text()
    .min(1)
    .max(64)
    .describe(
      "Phone number (08…, +62…, 62…) or JID (@c.us, @s.whatsapp.net, @g.us, @lid). A LID whose number the agent has learned is sent to that number's chat",
    ),
  message: text().min(1).max(65_536),
  ...quoteFields,
});

export const sendMediaBody = z
  .object({
    to: text().min(1).max(64),
    data: text().min(1).optional().describe('Base64 image; a data: URI prefix is allowed'),
    url: text().min(1).max(2_048).optional().describe('http(s) URL of the image'),
    caption: text().max(4_096).optional(),
    filename: text().min(1).max(255).optional(),
    mimeType: text().max(100).optional().describe('Informative: the type is read from the bytes'),
    mimetype: text().max(100).optional().describe('Alias of mimeType (seed)'),
    save_to_temp: z.boolean().default(true),
    ...quoteFields,
  })
  .refine((body) => (body.data === undefined) !== (body.url === undefined), {
    message: 'exactly one of data or url is required',
    path: ['data'],
  });

export const idempotencyHeaders = z.object({
  'idempotency-key': text().min(1).max(256).optional(),
});

export const messageParams = z.object({ agentId: agentIdSchema, messageId: text().min(1).max(64) });

export const sendResultSchema = z.object({
  delivered: z.boolean(),
  messageId: z.string().describe('Our outbox id; GET /agents/{agentId}/messages/{messageId} reports its state'),
  status: z.enum(OUTBOX_STATUSES),
  waMessageId: z.string().nullable().describe("WhatsApp's id, once sent"),
});

export const sendMediaResultSchema = sendResultSchema.extend({
  previewPath: z.string().nullable(),
});

export const messageStateSchema = z.object({
  messageId: z.string(),
  agentId: z.string(),
  to: z.string(),
  kind: z.enum(['text', 'image']),
  status: z.enum(OUTBOX_STATUSES),
  waMessageId: z.string().nullable(),
  error: z.string().nullable(),
  attempts: z.number().int(),
  createdAt: z.string(),
  updatedAt: z.string(),
  sentAt: z.string().nullable(),
  receipts: z
    .object({
      server: z.string().nullable().describe("When WhatsApp's server took the message (one tick)"),
      delivered: z.string().nullable().describe("When it reached the recipient's phone (two ticks)"),
      read: z
        .string()
        .nullable()
        .describe('When the recipient read it (blue ticks); stays null for a recipient who turned read receipts off'),
      played: z.string().nullable().describe('When the recipient played it (voice and video messages)'),
      error: z.string().nullable().describe('What WhatsApp reported when it could not deliver the message'),
      errorAt: z.string().nullable().describe('When that error was reported'),
    })
    .describe(
      "WhatsApp's receipts, as the engine reported them: when each first came (ISO 8601), null until it does. A " +
        'receipt implies those before it (a message read was delivered), and a time is never changed once set. ' +
        'Written behind the send, like its outcome.',
    ),
  notBefore: z
    .string()
    .nullable()
    .describe("A paced agent's message (PATCH /sessions/{agentId} pacing): when it goes out, once planned; else null"),
});
