// Request and response schemas of the webhook endpoints; the types come from them.
import { z } from 'zod';
import { agentIdSchema, text } from '../http/schemas.js';

/** The events a webhook can take; `webhook.test` (the ping) goes to the one endpoint it is sent to only. */
export const WEBHOOK_EVENT_TYPES = [
  'message.received',
  'message.sent',
  'message.status',
  'message.failed',
  'session.status',
  'ai.failed',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

export const DELIVERY_STATUSES = ['pending', 'delivered', 'failed'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

const idSchema = text()
  .regex(/^[A-Za-z0-9_]{1,64}$/, 'must be an id this API returned')
  .describe('The id this API returned');

export const webhookParams = z.object({ agentId: agentIdSchema, id: idSchema });
export const adminWebhookParams = z.object({ id: idSchema });
export const deliveryParams = webhookParams.extend({ deliveryId: idSchema });
export const adminDeliveryParams = adminWebhookParams.extend({ deliveryId: idSchema });

const urlSchema = text()
  .max(2048)
  .pipe(z.url({ protocol: /^https?$/ }))
  .describe('Where the events are POSTed (http or https; private and loopback addresses are refused)');
const eventsSchema = z
  .array(z.enum(WEBHOOK_EVENT_TYPES))
  .min(1)
  .max(WEBHOOK_EVENT_TYPES.length)
  .nullable()
  .describe('The event types sent to this endpoint; null or absent: all of them');
const descriptionSchema = text().max(500).nullable();

export const createWebhookBody = z
  .object({
    url: urlSchema,
    events: eventsSchema.optional(),
    enabled: z.boolean().default(true),
    description: descriptionSchema.optional(),
  })
  .meta({
    example: {
      url: 'https://crm.example.com/hooks/whatsapp',
      events: ['message.received', 'message.status'],
      description: 'CRM inbox',
    },
  });

export const updateWebhookBody = z
  .object({
    url: urlSchema.optional(),
    events: eventsSchema.optional(),
    enabled: z.boolean().optional().describe('true also re-enables an endpoint disabled after failing too long'),
    description: descriptionSchema.optional(),
  })
  .refine((body) => Object.keys(body).length > 0, 'nothing to change')
  .meta({ example: { enabled: false } });

export const webhookSchema = z.object({
  id: z.string(),
  agentId: z.string().nullable().describe("null: an admin-level endpoint, which receives every agent's events"),
  url: z.string(),
  events: z.array(z.enum(WEBHOOK_EVENT_TYPES)).nullable(),
  enabled: z.boolean(),
  description: z.string().nullable(),
  disabledAt: z.string().nullable().describe('When it was disabled for failing through WEBHOOK_RETRY_HOURS'),
  createdAt: z.string(),
});

export const webhookWithSecretSchema = webhookSchema.extend({
  secret: z.string().describe('whsec_…: shown here only, never again'),
});

export const secretSchema = z.object({
  secret: z.string().describe('The new whsec_ secret; the previous one also signs until previousSecretExpiresAt'),
  previousSecretExpiresAt: z.string(),
});

export const webhookListSchema = z.object({ items: z.array(webhookSchema) });

export const deliverySchema = z.object({
  id: z.string(),
  eventId: z.string().describe('The webhook-id header: the same on every attempt'),
  type: z.string(),
  status: z.enum(DELIVERY_STATUSES),
  attempts: z.number().int(),
  nextAttemptAt: z.string().nullable(),
  lastStatusCode: z.number().int().nullable(),
  lastError: z.string().nullable(),
  lastAttemptAt: z.string().nullable(),
  createdAt: z.string(),
});

/** The largest seq PostgreSQL's bigint holds: a cursor past it cannot be one this endpoint returned. */
const MAX_BIGINT = 2n ** 63n - 1n;

export const deliveryPageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: text()
    .regex(/^\d{1,19}$/, 'must be a nextCursor this endpoint returned')
    // Checked whatever the regex found (zod runs both): only digits are read as a number.
    .refine(
      (value) => !/^\d+$/.test(value) || BigInt(value) <= MAX_BIGINT,
      'must be a nextCursor this endpoint returned',
    )
    .optional(),
  status: z.enum(DELIVERY_STATUSES).optional(),
});

export const deliveryListSchema = z.object({
  items: z.array(deliverySchema).describe('Newest first'),
  nextCursor: z.string().nullable(),
});

export type Webhook = z.infer<typeof webhookSchema>;
export type Delivery = z.infer<typeof deliverySchema>;
export type CreateWebhook = z.infer<typeof createWebhookBody>;
export type UpdateWebhook = z.infer<typeof updateWebhookBody>;
