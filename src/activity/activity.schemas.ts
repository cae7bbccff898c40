// Request and response schemas of GET /agents/{agentId}/activity; the types come from them.
import { z } from 'zod';

export const ACTIVITY_MINUTES_DEFAULT = 60;
/** A day: the most the dashboard or a caller needs, and a bound on the rows one request reads. */
export const ACTIVITY_MINUTES_MAX = 1440;

export const activityQuery = z.object({
  minutes: z.coerce
    .number()
    .int()
    .min(1)
    .max(ACTIVITY_MINUTES_MAX)
    .default(ACTIVITY_MINUTES_DEFAULT)
    .describe('How many minutes back, the current (unfinished) minute included'),
});

const latencySchema = z
  .object({
    count: z.number().int().describe('Messages of this minute the AI was asked about (answered or failed)'),
    avg: z.number().int().describe('Mean latency, in milliseconds (rounded)'),
    p95: z.number().int().describe('95th percentile (nearest rank: a latency that was observed), in milliseconds'),
  })
  .nullable()
  .describe('The AI latency of the messages received in this minute; null when the AI was asked about none');

export const activityBucketSchema = z.object({
  minute: z.string().describe('The start of the minute (ISO 8601, UTC)'),
  sent: z.number().int().describe('Messages sent through this API in this minute (by when WhatsApp took them)'),
  received: z.number().int().describe("Messages received in this minute (not the account's own)"),
  failed: z.number().int().describe('Messages sent through this API that failed for good in this minute'),
  aiLatencyMs: latencySchema,
});

export const activitySchema = z.object({
  agentId: z.string(),
  from: z.string().describe('The start of the first minute (ISO 8601)'),
  to: z.string().describe('The end of the last minute (ISO 8601): the next minute boundary after now'),
  buckets: z.array(activityBucketSchema).describe('One per minute, oldest first, empty minutes included'),
});

export type ActivityBucket = z.infer<typeof activityBucketSchema>;
export type Activity = z.infer<typeof activitySchema>;
