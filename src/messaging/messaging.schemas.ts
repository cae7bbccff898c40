// Request and response schemas of the agent messaging endpoints; the types come from them.
import { z } from 'zod';
import { MEDIA_KINDS } from '../engines/engine.js';
import { agentIdSchema, text } from '../http/schemas.js';
import { OUTBOX_KINDS, OUTBOX_STATUSES } from '../outbox/outbox.js';

const quoteFields = {
  quotedMessageId: text().min(1).max(256).optional(),
  quoteId: text().min(1).max(256).optional().describe('Alias of quotedMessageId (seed)'),
  mentions: z.array(text().min(1).max(64)).max(256).optional(),
};

export const locationSchema = z
  .object({
    latitude: z.number().min(-90).max(90),
    longitude: z.number().min(-180).max(180),
    name: text().min(1).max(256).optional().describe("The place's name, shown under the map"),
    address: text().min(1).max(512).optional().describe("The place's address, shown under its name"),
  })
  .meta({ example: { latitude: -6.1754, longitude: 106.8272, name: 'Monas', address: 'Gambir, Jakarta Pusat' } });

export const contactSchema = z
  .object({
    vcard: text()
      .min(1)
      .max(16_384)
      .optional()
      .describe('A vCard (BEGIN:VCARD … END:VCARD) with an FN line; or give name and phone instead'),
    name: text().min(1).max(256).optional().describe('With phone: the card is built from them'),
    phone: text().min(1).max(64).optional().describe('With name: the number on the card (a WhatsApp link to it)'),
  })
  .meta({ example: { name: 'Budi Santoso', phone: '+62 812-3456-7890' } });

export const sendMessageBody = z
  .object({
    to: text()
      .min(1)
      .max(64)
      .describe(
        "Phone number (08…, +62…, 62…) or JID (@c.us, @s.whatsapp.net, @g.us, @lid). A LID whose number the agent has learned is sent to that number's chat",
      ),
    message: text().min(1).max(65_536).optional().describe('A text message; exactly one of message, location, contact'),
    location: locationSchema.optional().describe('A pinned location'),
    contact: contactSchema.optional().describe('A contact card'),
    ...quoteFields,
  })
  .meta({ example: { to: '6281234567890', message: 'Your order has shipped.' } });

/** A boolean as JSON gives it, or as a multipart form field ("true"/"false"). */
const flag = z.union([z.boolean(), z.enum(['true', 'false']).transform((value) => value === 'true')]);

export const sendMediaBody = z
  .object({
    to: text().min(1).max(64),
    type: z
      .enum(MEDIA_KINDS)
      .default('image')
      .describe(
        'What to send: image (JPEG, PNG, WebP, GIF), document (any type, with filename), audio (MP3, AAC/M4A, Ogg, AMR; ' +
          'Ogg/Opus with voice: true for a voice note), video (MP4), sticker (WebP). The bytes must match it.',
      ),
    data: text().min(1).optional().describe('Base64 of the file; a data: URI prefix is allowed'),
    url: text().min(1).max(2_048).optional().describe('http(s) URL of the file'),
    caption: text().max(4_096).optional().describe('image, video and document only'),
    filename: text().min(1).max(255).optional().describe("The name a document shows (default: the upload's name)"),
    voice: flag.optional().describe('audio: send as a voice note (Ogg/Opus)'),
    mimeType: text().max(100).optional().describe('Informative: the type is read from the bytes'),
    mimetype: text().max(100).optional().describe('Alias of mimeType (seed)'),
    save_to_temp: flag.default(true).describe('Images only: keep a preview copy in TEMP_DIR'),
    ...quoteFields,
  })
  .meta({
    example: {
      to: '6281234567890',
      type: 'document',
      url: 'https://example.com/files/invoice-2026-11.pdf',
      filename: 'invoice-2026-11.pdf',
      caption: 'Your invoice',
    },
  });

/**
 * The same send as a `multipart/form-data` upload (documentation only: the route reads the form into the body above,
 * which validates it): the fields as form fields, the file as one file part, streamed to disk.
 */
export const sendMediaForm = sendMediaBody
  .omit({ data: true, url: true })
  .extend({
    file: z
      .string()
      .meta({ format: 'binary' })
      .describe("The file, as the request's one file part (any part name); its filename is the document's default"),
  })
  .meta({
    example: { to: '6281234567890', type: 'audio', voice: true, file: '(the bytes of voice-note.ogg)' },
  });

export const reactionParams = z.object({
  agentId: agentIdSchema,
  messageId: text()
    .min(1)
    .max(256)
    .describe("Our outbox id of a message the agent sent, or WhatsApp's id of one it sent or received"),
});

export const reactionBody = z
  .object({
    emoji: text().max(32).describe('One emoji; "" takes the reaction back'),
    chatId: text()
      .min(1)
      .max(64)
      .optional()
      .describe('The chat, needed only for a WhatsApp id this service has no record of'),
  })
  .meta({ example: { emoji: '👍' } });

export const chatParams = z.object({
  agentId: agentIdSchema,
  chatId: text().min(1).max(64).describe('Phone number or JID of the chat'),
});

export const typingBody = z
  .object({
    on: z.boolean().default(true).describe('true shows "typing…", false clears it'),
  })
  .meta({ example: { on: true } });

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
  kind: z.enum(OUTBOX_KINDS),
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
