// The SQL of webhook_endpoints and webhook_deliveries. The deliveries of events are written by the database's
// triggers (migration 0008), in the transaction of the state they describe; this file reads them, claims the due
// ones, and writes each attempt's outcome.
import { randomBytes } from 'node:crypto';
import type { Database, Row } from '../db/client.js';
import { type PurgeTarget, purgeInBatches } from '../db/retention.js';
import type {
  CreateWebhook,
  Delivery,
  DeliveryStatus,
  UpdateWebhook,
  Webhook,
  WebhookEventType,
} from './webhooks.schemas.js';

/** A delivery claimed by this member: what one attempt needs. */
export interface ClaimedDelivery {
  id: string;
  eventId: string;
  endpointId: string;
  body: string;
  attempts: number;
  giveUpAt: Date | null;
  url: string;
  /** The secrets that sign it: the current one, and the previous one during its grace period. */
  secrets: string[];
}

export type AttemptOutcome =
  | { kind: 'delivered'; statusCode: number }
  /** Not retried: a 4xx other than 408/409/425/429, or the retry window is over. */
  | { kind: 'failed'; statusCode: number | null; error: string }
  | { kind: 'retry'; statusCode: number | null; error: string; nextAttemptAt: Date; giveUpAt: Date };

const newId = (prefix: string) => `${prefix}_${randomBytes(12).toString('hex')}`;
export const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

const iso = (value: unknown): string | null =>
  value == null ? null : (value instanceof Date ? value : new Date(String(value))).toISOString();
const isoOrEpoch = (value: unknown): string => iso(value) ?? new Date(0).toISOString();

const ENDPOINT_COLUMNS = 'id, agent_id, url, events, enabled, description, disabled_at, created_at';

function toWebhook(row: Row): Webhook {
  return {
    id: String(row.id),
    agentId: row.agent_id == null ? null : String(row.agent_id),
    url: String(row.url),
    events: row.events == null ? null : (row.events as WebhookEventType[]),
    enabled: Boolean(row.enabled),
    description: row.description == null ? null : String(row.description),
    disabledAt: iso(row.disabled_at),
    createdAt: isoOrEpoch(row.created_at),
  };
}

function toDelivery(row: Row): Delivery {
  return {
    id: String(row.id),
    eventId: String(row.event_id),
    type: String(row.type),
    status: String(row.status) as DeliveryStatus,
    attempts: Number(row.attempts),
    nextAttemptAt: String(row.status) === 'pending' ? iso(row.next_attempt_at) : null,
    lastStatusCode: row.last_status_code == null ? null : Number(row.last_status_code),
    lastError: row.last_error == null ? null : String(row.last_error),
    lastAttemptAt: iso(row.last_attempt_at),
    createdAt: isoOrEpoch(row.created_at),
  };
}

/** What the retention purge deletes: delivered and failed deliveries, by when they settled. */
const SETTLED_DELIVERIES: PurgeTarget = {
  table: 'webhook_deliveries',
  key: 'id',
  olderThan: `status IN ('delivered', 'failed') AND updated_at < $1`,
};

export class WebhooksRepository {
  constructor(private readonly database: Database) {}

  /** `scope`: the agent, or null for admin-level endpoints. */
  async create(scope: string | null, input: CreateWebhook): Promise<Webhook & { secret: string }> {
    const secret = newSecret();
    const rows = await this.database.query(
      `INSERT INTO webhook_endpoints (id, agent_id, url, events, enabled, description, secret)
       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${ENDPOINT_COLUMNS}`,
      [newId('wh'), scope, input.url, input.events ?? null, input.enabled, input.description ?? null, secret],
    );
    return { ...toWebhook(rows[0] as Row), secret };
  }

  async list(scope: string | null): Promise<Webhook[]> {
    const rows = await this.database.query(
      `SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE agent_id IS NOT DISTINCT FROM $1
       ORDER BY created_at, id`,
      [scope],
    );
    return rows.map(toWebhook);
  }

  async get(scope: string | null, id: string): Promise<Webhook | undefined> {
    const rows = await this.database.query(
      `SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1 AND agent_id IS NOT DISTINCT FROM $2`,
      [id, scope],
    );
    return rows[0] === undefined ? undefined : toWebhook(rows[0]);
  }

  async update(scope: string | null, id: string, patch: UpdateWebhook): Promise<Webhook | undefined> {
    const rows = await this.database.query(
      `UPDATE webhook_endpoints SET
         url = CASE WHEN $3 THEN $4 ELSE url END,
         events = CASE WHEN $5 THEN $6::text[] ELSE events END,
         enabled = COALESCE($7, enabled),
         disabled_at = CASE WHEN $7 THEN NULL ELSE disabled_at END,
         failing_since = CASE WHEN $7 THEN NULL ELSE failing_since END,
         description = CASE WHEN $8 THEN $9 ELSE description END,
         updated_at = now()
       WHERE id = $1 AND agent_id IS NOT DISTINCT FROM $2
       RETURNING ${ENDPOINT_COLUMNS}`,
      [
        id,
        scope,
        patch.url !== undefined,
        patch.url ?? null,
        patch.events !== undefined,
        patch.events ?? null,
        patch.enabled ?? null,
        patch.description !== undefined,
        patch.description ?? null,
      ],
    );
    return rows[0] === undefined ? undefined : toWebhook(rows[0]);
  }

  /** Deletes the endpoint and its deliveries; false when there was none. */
  async delete(scope: string | null, id: string): Promise<boolean> {
    const rows = await this.database.query(
      'DELETE FROM webhook_endpoints WHERE id = $1 AND agent_id IS NOT DISTINCT FROM $2 RETURNING id',
      [id, scope],
    );
    return rows.length > 0;
  }

  /** A new secret; the current one becomes the previous one, which also signs until `graceUntil`. */
  async rotateSecret(scope: string | null, id: string, graceUntil: Date): Promise<string | undefined> {
    const secret = newSecret();
    const rows = await this.database.query(
      `UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_until = $3, secret = $4,
         updated_at = now()
       WHERE id = $1 AND agent_id IS NOT DISTINCT FROM $2 RETURNING id`,
      [id, scope, graceUntil.toISOString(), secret],
    );
    return rows.length > 0 ? secret : undefined;
  }

  /** A `webhook.test` event for this endpoint alone (its own chat key, so it waits for nothing). */
  async enqueueTest(endpointId: string, agentId: string | null, at: Date): Promise<Delivery> {
    const eventId = newId('evt');
    const payload = { id: eventId, type: 'webhook.test', timestamp: at.toISOString(), agentId, data: {} };
    const rows = await this.database.query(
      `INSERT INTO webhook_deliveries (id, event_id, endpoint_id, agent_id, type, order_key, payload)
       VALUES ($1, $2, $3, $4, 'webhook.test', $5, $6::jsonb) RETURNING *`,
      [newId('whd'), eventId, endpointId, agentId, `test:${eventId}`, JSON.stringify(payload)],
    );
    await this.notify();
    return toDelivery(rows[0] as Row);
  }

  async deliveries(
    endpointId: string,
    options: { limit: number; before: string | null; status: DeliveryStatus | undefined },
  ): Promise<{ items: Delivery[]; nextCursor: string | null }> {
    const rows = await this.database.query(
      `SELECT * FROM webhook_deliveries
       WHERE endpoint_id = $1 AND ($2::bigint IS NULL OR seq < $2::bigint) AND ($3::text IS NULL OR status = $3)
       ORDER BY seq DESC LIMIT $4`,
      [endpointId, options.before, options.status ?? null, options.limit + 1],
    );
    const page = rows.slice(0, options.limit);
    const last = page.at(-1);
    return {
      items: page.map(toDelivery),
      nextCursor: rows.length > options.limit && last ? String(last.seq) : null,
    };
  }

  /** Makes a delivery due now again, whatever its state; its attempts are kept. */
  async retry(endpointId: string, deliveryId: string): Promise<Delivery | undefined> {
    const rows = await this.database.query(
      `UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = NULL, give_up_at = NULL,
         claimed_until = NULL, updated_at = now()
       WHERE id = $1 AND endpoint_id = $2 RETURNING *`,
      [deliveryId, endpointId],
    );
    if (rows[0] === undefined) return undefined;
    await this.notify();
    return toDelivery(rows[0]);
  }

  /**
   * Claims up to `limit` due deliveries until `claimedUntil`, skipping rows another member has locked or claimed:
   * only the oldest pending delivery of each (endpoint, chat) is eligible, so a chat's events go out in order, and
   * one claimed is not claimed again before `claimedUntil` (longer than an attempt can take).
   */
  async claim(now: Date, claimedUntil: Date, limit: number, busyEndpoints: string[]): Promise<ClaimedDelivery[]> {
    const rows = await this.database.query(
      `WITH due AS (
         SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
         WHERE d.status = 'pending' AND e.enabled
           AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= $1)
           AND (d.claimed_until IS NULL OR d.claimed_until <= $1)
           AND NOT (d.endpoint_id = ANY ($4::text[]))
           AND NOT EXISTS (
             SELECT 1 FROM webhook_deliveries p
             WHERE p.endpoint_id = d.endpoint_id AND p.order_key = d.order_key AND p.status = 'pending'
               AND p.seq < d.seq)
         ORDER BY d.seq
         LIMIT $3
         FOR UPDATE OF d SKIP LOCKED
       )
       UPDATE webhook_deliveries w SET claimed_until = $2
       FROM due, webhook_endpoints e
       WHERE w.id = due.id AND e.id = w.endpoint_id
       RETURNING w.id, w.event_id, w.endpoint_id, w.payload::text AS body, w.attempts, w.give_up_at, w.seq,
         e.url, e.secret, CASE WHEN e.previous_secret_until > $1 THEN e.previous_secret END AS previous_secret`,
      [now.toISOString(), claimedUntil.toISOString(), limit, busyEndpoints],
    );
    return rows
      .sort((a, b) => Number(a.seq) - Number(b.seq))
      .map((row) => ({
        id: String(row.id),
        eventId: String(row.event_id),
        endpointId: String(row.endpoint_id),
        body: String(row.body),
        attempts: Number(row.attempts),
        giveUpAt: row.give_up_at == null ? null : new Date(String(row.give_up_at)),
        url: String(row.url),
        secrets: [String(row.secret), ...(row.previous_secret == null ? [] : [String(row.previous_secret)])],
      }));
  }

  /** Gives back deliveries claimed but not attempted (this member's per-endpoint limit, or a shutdown). */
  async unclaim(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.database.query('UPDATE webhook_deliveries SET claimed_until = NULL WHERE id = ANY ($1::text[])', [ids]);
  }

  /**
   * Writes an attempt's outcome; a failure also marks the endpoint failing (since its first failure in a row), and
   * disables it once that is older than `window` ms. Returns true when this call disabled it.
   */
  async recordAttempt(
    delivery: ClaimedDelivery,
    outcome: AttemptOutcome,
    now: Date,
    windowMs: number,
  ): Promise<boolean> {
    const status = outcome.kind === 'retry' ? 'pending' : outcome.kind;
    await this.database.query(
      `UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, claimed_until = NULL,
         next_attempt_at = $3, give_up_at = $4, last_status_code = $5, last_error = $6, last_attempt_at = $7,
         updated_at = now()
       WHERE id = $1`,
      [
        delivery.id,
        status,
        outcome.kind === 'retry' ? outcome.nextAttemptAt.toISOString() : null,
        outcome.kind === 'retry' ? outcome.giveUpAt.toISOString() : null,
        outcome.statusCode,
        outcome.kind === 'delivered' ? null : outcome.error.slice(0, 500),
        now.toISOString(),
      ],
    );
    if (outcome.kind === 'delivered') {
      await this.database.query(
        'UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL',
        [delivery.endpointId],
      );
      return false;
    }
    const rows = await this.database.query(
      `UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2),
         enabled = enabled AND COALESCE(failing_since, $2) > $3,
         disabled_at = CASE WHEN enabled AND COALESCE(failing_since, $2) <= $3 THEN $2 ELSE disabled_at END
       WHERE id = $1
       RETURNING disabled_at = $2 AS disabled_now`,
      [delivery.endpointId, now.toISOString(), new Date(now.getTime() - windowMs).toISOString()],
    );
    return rows[0]?.disabled_now === true;
  }

  /** Deletes delivered and failed deliveries settled before `cutoff`, in batches; returns how many. */
  purgeSettledBefore(cutoff: Date, batchSize?: number): Promise<number> {
    return purgeInBatches(this.database, SETTLED_DELIVERIES, cutoff, batchSize);
  }

  private async notify(): Promise<void> {
    await this.database.query(`SELECT pg_notify('wamt_webhooks', '')`);
  }
}
