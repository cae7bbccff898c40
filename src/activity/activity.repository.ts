// An agent's messages per minute, for the dashboard's chart: sent, received and failed, and the AI's latency, read
// from the outbox and the inbound store in one statement, each through an index on (agent, time) (migration 0009).
import type { Clock } from '../clock.js';
import type { Database, Row } from '../db/client.js';
import type { Activity, ActivityBucket } from './activity.schemas.js';

const MINUTE_MS = 60_000;

/**
 * One row per kind and minute that has any: `i` is the minute's index from `$2` (the first minute's start), `$3` the
 * end of the last. Sent rows count by when they were sent; a sent row's updated_at is its sent_at (no later write
 * changes it: receipts leave it alone), so the bound on updated_at is a restatement that lets the settled rows' index
 * on (agent_id, updated_at) serve both sent and failed. Received rows are those not from the account itself; their
 * latency is that of the AI call each one caused (ordered-set aggregates skip the NULLs of messages never asked
 * about). The last row says whether the agent exists, in the same round trip.
 */
const ACTIVITY_SQL = `
  SELECT 'sent' AS kind, floor(extract(epoch FROM o.sent_at - $2::timestamptz) / 60)::int AS i, count(*)::int AS n,
    NULL::int AS lat_n, NULL::float8 AS lat_avg, NULL::int AS lat_p95
  FROM outbox_messages o
  WHERE o.agent_id = $1 AND o.status = 'sent' AND o.updated_at >= $2::timestamptz
    AND o.sent_at >= $2::timestamptz AND o.sent_at < $3::timestamptz
  GROUP BY 2
  UNION ALL
  SELECT 'failed', floor(extract(epoch FROM o.updated_at - $2::timestamptz) / 60)::int, count(*)::int,
    NULL, NULL, NULL
  FROM outbox_messages o
  WHERE o.agent_id = $1 AND o.status = 'failed' AND o.updated_at >= $2::timestamptz AND o.updated_at < $3::timestamptz
  GROUP BY 2
  UNION ALL
  SELECT 'received', floor(extract(epoch FROM m.received_at - $2::timestamptz) / 60)::int, count(*)::int,
    count(m.ai_latency_ms)::int, avg(m.ai_latency_ms)::float8,
    percentile_disc(0.95) WITHIN GROUP (ORDER BY m.ai_latency_ms)
  FROM inbound_messages m
  WHERE m.agent_id = $1 AND m.from_me IS NOT TRUE
    AND m.received_at >= $2::timestamptz AND m.received_at < $3::timestamptz
  GROUP BY 2
  UNION ALL
  SELECT 'agent', 0, 1, NULL, NULL, NULL FROM whatsapp_user WHERE agent_id = $1`;

const count = (value: unknown): number => (typeof value === 'number' ? value : Number(value ?? 0));

export class ActivityRepository {
  constructor(
    private readonly database: Database,
    private readonly clock: Clock,
  ) {}

  /** The last `minutes` minutes of the agent, the current one included, oldest first; null for an unknown agent. */
  async perMinute(agentId: string, minutes: number): Promise<Activity | null> {
    const end = (Math.floor(this.clock.now() / MINUTE_MS) + 1) * MINUTE_MS;
    const start = end - minutes * MINUTE_MS;
    const rows = await this.database.query(ACTIVITY_SQL, [
      agentId,
      new Date(start).toISOString(),
      new Date(end).toISOString(),
    ]);
    if (!rows.some((row) => row.kind === 'agent')) return null;
    const buckets: ActivityBucket[] = Array.from({ length: minutes }, (_, i) => ({
      minute: new Date(start + i * MINUTE_MS).toISOString(),
      sent: 0,
      received: 0,
      failed: 0,
      aiLatencyMs: null,
    }));
    for (const row of rows) addRow(buckets, row);
    return { agentId, from: new Date(start).toISOString(), to: new Date(end).toISOString(), buckets };
  }
}

function addRow(buckets: ActivityBucket[], row: Row): void {
  const bucket = buckets[count(row.i)];
  if (!bucket) return;
  const n = count(row.n);
  if (row.kind === 'sent') bucket.sent = n;
  else if (row.kind === 'failed') bucket.failed = n;
  else if (row.kind === 'received') {
    bucket.received = n;
    const measured = count(row.lat_n);
    bucket.aiLatencyMs =
      measured === 0
        ? null
        : { count: measured, avg: Math.round(count(row.lat_avg)), p95: Math.round(count(row.lat_p95)) };
  }
}
