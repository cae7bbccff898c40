// Request and response schemas of the /sessions endpoints.
import { z } from 'zod';
import { agentIdSchema, text } from '../http/schemas.js';
import { pacingSettingSchema, pacingViewSchema } from '../pacing/pacing.schemas.js';
import { ENGINE_NAMES } from '../whatsapp/engine-names.js';

export const createSessionBody = z
  .object({
    userId: z.union([text().trim().min(1).max(128), z.number().int()]).transform(String),
    agentId: agentIdSchema,
    agentName: text().trim().min(1).max(200),
    apikey: text().min(1).max(512).optional(),
    engine: z.enum(ENGINE_NAMES).optional(),
    pacing: pacingSettingSchema.optional(),
  })
  .meta({ example: { userId: 'user-42', agentId: 'support-bot', agentName: 'Support bot', pacing: 'human' } });
export type CreateSessionInput = z.output<typeof createSessionBody>;

/** PATCH /sessions/{agentId}: what may change on an agent after its creation. */
export const updateSessionBody = z
  .object({
    pacing: pacingSettingSchema.optional(),
  })
  .meta({
    example: {
      pacing: { minGapMs: 1_500, maxGapMs: 4_000, typingMsPerChar: 40, maxTypingMs: 6_000, newContactsPerDay: 20 },
    },
  });
export type UpdateSessionInput = z.output<typeof updateSessionBody>;

const booleanQuery = z
  .enum(['true', 'false', '1', '0'])
  .optional()
  .transform((v) => v === 'true' || v === '1');

export const createSessionQuery = z.object({ waitForQr: booleanQuery });

export const listSessionsQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  offset: z.coerce.number().int().min(0).default(0),
});

export const pairingCodeBody = z.object({
  phone: text().trim().min(1).max(32),
});

const qrImage = z.object({ contentType: z.literal('image/png'), base64: z.string() });

const liveStateSchema = z.object({
  isReady: z.boolean(),
  hasClient: z.boolean(),
  sessionState: z.string(),
  qr: qrImage.nullable(),
  qrUpdatedAt: z.string().nullable(),
  pairingCode: z.string().nullable(),
  me: z.string().nullable(),
  lastError: z.string().nullable(),
});

export const sessionStatusSchema = z.object({
  agentId: z.string(),
  agentName: z.string().nullable(),
  userId: z.string(),
  engine: z.enum(ENGINE_NAMES),
  status: z.string(),
  lastConnectedAt: z.string().nullable(),
  lastDisconnectedAt: z.string().nullable(),
  lastError: z.string().nullable(),
  endpointUrlRun: z.string().nullable(),
  weakApiKey: z.boolean().describe("The agent's key is shorter than 16 characters (the key itself is never shown)"),
  createdAt: z.string(),
  updatedAt: z.string(),
  owner: z
    .string()
    .nullable()
    .describe('The instance (INSTANCE_ID) that runs this session now; null while none does (its lease is moving)'),
  pacing: pacingViewSchema.describe('How the agent paces its sends: "off", "human", or its custom profile'),
  liveState: liveStateSchema,
});
export type SessionStatus = z.infer<typeof sessionStatusSchema>;

export const sessionListSchema = z.object({
  items: z.array(sessionStatusSchema),
  total: z.number().int(),
  limit: z.number().int(),
  offset: z.number().int(),
});

export const qrResultSchema = z.object({ agentId: z.string(), qr: qrImage, qrUpdatedAt: z.string() });
export const deleteResultSchema = z.object({ deleted: z.boolean(), alreadyRemoved: z.boolean().optional() });
export const pairingCodeResultSchema = z.object({ agentId: z.string(), code: z.string() });
