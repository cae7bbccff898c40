// Schemas shared by every route: text, the agentId rule and the response envelopes.
import { z } from 'zod';

export const NOT_TEXT = 'must be text without NUL characters (\\u0000) or unpaired surrogates';

/**
 * True for a string that PostgreSQL can store as it is: a `text` column refuses NUL, and an unpaired surrogate is
 * not Unicode at all (it reaches the database, the AI backend or WhatsApp as U+FFFD, or as an error).
 */
export const isText = (value: string): boolean => value.isWellFormed() && !value.includes('\u0000');

/** Every string a request carries (body, path, query, header) is built from this, so bad text is a 400 naming it. */
export const text = () => z.string().refine(isText, NOT_TEXT);

/** The same rule whatsapp-web.js applies to LocalAuth client ids; it keeps agentId safe in paths. */
const AGENT_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const agentIdSchema = text().regex(AGENT_ID_PATTERN, 'must match ^[A-Za-z0-9_-]{1,64}$');
export const agentParams = z.object({ agentId: agentIdSchema });

const errorEnvelope = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    traceId: z.string(),
    details: z.record(z.string(), z.unknown()).optional().describe('Facts about some errors (NEW_CONTACT_LIMIT)'),
  }),
});

export const envelope = <T extends z.ZodType>(data: T) => z.object({ data, traceId: z.string() });

/**
 * The standard error responses, for the OpenAPI document. 503 is always among them: any route answers
 * DATABASE_UNAVAILABLE, with Retry-After, while the database cannot answer.
 */
export const errorResponses = (...statuses: number[]) =>
  Object.fromEntries([...statuses, 503].map((status) => [status, errorEnvelope])) as Record<
    number,
    typeof errorEnvelope
  >;

/** A JSON body that may be left out entirely: a missing body is read as `{}` (Fastify hands us null). */
export const optionalBody = <T extends z.ZodType>(schema: T) => z.preprocess((value) => value ?? {}, schema);
