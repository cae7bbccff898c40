// The SQL of webhook_endpoints and webhook_deliveries. The deliveries of events are written by the database's
// triggers (migration 0008), in the transaction of the state they describe; this file reads them, claims the due
// ones, and writes each attempt's outcome.
import { randomBytes } from 'node:crypto';
import type { Database, Row } from '../db/client.js';
import { type PurgeOptions, type PurgeTarget, purgeInBatches } from '../db/retention.js';
import { AppError } from '../errors.js';
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

/** The consecutive `seq` a claim statement looks at: 8 per delivery wanted, within these bounds (see claim). */
const CLAIM_WINDOW = { min: 128, max: 1024 };

/**
 * The `seq` one claim looks at, at most, in windows: a backlog of deliveries that cannot go yet (an endpoint down or
 * disabled, a chat waiting for its retry) costs each claim this much whatever its size; the next claim goes on from
 * where this one stopped (see claim).
 */
const CLAIM_SCAN = 8 * CLAIM_WINDOW.max;

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

/** PostgreSQL's foreign_key_violation (SQLSTATE 23503), from node-postgres or PGlite. */
function isForeignKeyViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && err.code === '23503';
}

export class WebhooksRepository {
  /** Where the last claim stopped scanning a backlog that went on (a seq), or 0: the next claim goes on from there. */
  private resumeAfter = 0;

  constructor(private readonly database: Database) {}

  /**
   * `scope`: the agent, or null for admin-level endpoints. SESSION_NOT_FOUND when the agent is gone (deleted after the
   * caller looked it up: its endpoints go with it, by a foreign key, so none can outlive it).
   */
  async create(scope: string | null, input: CreateWebhook): Promise<Webhook & { secret: string }> {
    const secret = newSecret();
    const rows = await this.database
      .query(
        `INSERT INTO webhook_endpoints (id, agent_id, url, events, enabled, description, secret)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${ENDPOINT_COLUMNS}`,
        [newId('wh'), scope, input.url, input.events ?? null, input.enabled, input.description ?? null, secret],
      )
      .catch((err: unknown) => {
        throw isForeignKeyViolation(err) ? new AppError('SESSION_NOT_FOUND') : err;
      });
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

  /**
   * Makes a delivery due now again, whatever its state; its attempts are kept. One being attempted right now (claimed
   * until after `now`) is left as it is: a second request beside it could end after the chat's next delivery, out of
   * order, and turn a delivered one back to pending. Returns the delivery as it is then.
   */
  async retry(endpointId: string, deliveryId: string, now: Date): Promise<Delivery | undefined> {
    const rows = await this.database.query(
      `WITH retried AS (
         -- The condition is on the row itself, so that it is checked again on the row a concurrent claim locked.
         UPDATE webhook_deliveries d SET status = 'pending', next_attempt_at = NULL, give_up_at = NULL,
           claimed_until = NULL, updated_at = now()
         WHERE d.id = $1 AND d.endpoint_id = $2
           AND (d.status <> 'pending' OR d.claimed_until IS NULL OR d.claimed_until <= $3::timestamptz)
         RETURNING d.*
       )
       SELECT * FROM retried
       UNION ALL
       SELECT d.* FROM webhook_deliveries d
       WHERE d.id = $1 AND d.endpoint_id = $2 AND NOT EXISTS (SELECT 1 FROM retried)`,
      [deliveryId, endpointId, now.toISOString()],
    );
    if (rows[0] === undefined) return undefined;
    await this.notify();
    return toDelivery(rows[0]);
  }

  /**
   * Claims up to `limit` due deliveries until `claimedUntil`, skipping rows another member has locked or claimed:
   * only the oldest pending delivery of each (endpoint, agent, chat) is eligible, so a chat's events go out in order
   * (one agent's chat: two agents talking to one number do not wait for each other at an admin-level endpoint), and
   * one claimed is not claimed again before `claimedUntil` (longer than an attempt can take).
   *
   * The pending deliveries are looked at oldest first, in windows of consecutive `seq` (CLAIM_WINDOW) from the oldest
   * pending one, one window per statement, the next only when a window did not yield `limit`: with a backlog the
   * chats' first deliveries are among the oldest rows, so one window is usually enough, and a statement costs its
   * window, not the backlog. Its plan cannot come to depend on the table's statistics (stale while a backlog builds
   * up): the oldest pending row comes from an ordered index scan that stops at the first one (a plain index scan,
   * which marks the index entries of rows delivered meanwhile dead as it passes them), and a window is a range of the
   * same index. Endpoints are filtered by exclusion (busy or disabled), which no index can serve.
   *
   * A claim looks at CLAIM_SCAN seq at most: its first window from the oldest pending delivery (the chats' heads are
   * there, and retries come due there), the next ones from where the previous claim stopped, until the end of the
   * backlog, where the next claim starts over. A backlog that cannot go costs each claim a bounded scan, and what
   * can go behind it is reached within a few claims.
   */
  async claim(
    now: Date,
    claimedUntil: Date,
    limit: number,
    room: { perEndpoint: number; inFlight: ReadonlyMap<string, number> },
  ): Promise<ClaimedDelivery[]> {
    const claimed: Row[] = [];
    const used = new Map(room.inFlight);
    const window = Math.min(CLAIM_WINDOW.max, Math.max(CLAIM_WINDOW.min, 8 * limit));
    const windows = Math.ceil(CLAIM_SCAN / window);
    let after = 0;
    for (let scanned = 1; ; scanned++) {
      const busy = [...used].filter(([, n]) => n >= room.perEndpoint).map(([id]) => id);
      const rows = await this.database.query(
        `WITH oldest AS (
           SELECT seq, id FROM webhook_deliveries WHERE status = 'pending' AND seq > $5::bigint ORDER BY seq LIMIT 1
         ), window_rows AS MATERIALIZED (
           SELECT d.id, d.seq FROM webhook_deliveries d
           WHERE d.status = 'pending'
             AND d.seq >= (SELECT seq FROM oldest) AND d.seq < (SELECT seq FROM oldest) + $6::bigint
             AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= $1)
             AND (d.claimed_until IS NULL OR d.claimed_until <= $1)
             AND NOT (d.endpoint_id = ANY ($4::text[] || ARRAY(SELECT id FROM webhook_endpoints WHERE NOT enabled)))
         ), heads AS (
           SELECT c.id, c.seq, row_number() OVER (PARTITION BY d.endpoint_id ORDER BY c.seq) AS n,
             coalesce(u.n, 0) AS used
           FROM window_rows c JOIN webhook_deliveries d ON d.id = c.id
             LEFT JOIN unnest($7::text[], $8::int[]) AS u (endpoint_id, n) ON u.endpoint_id = d.endpoint_id
           WHERE NOT EXISTS (
             SELECT 1 FROM webhook_deliveries p
             WHERE p.endpoint_id = d.endpoint_id AND p.order_key = d.order_key
               AND p.agent_id IS NOT DISTINCT FROM d.agent_id AND p.status = 'pending' AND p.seq < d.seq)
         ), due AS (
           SELECT d.id FROM heads h JOIN webhook_deliveries d ON d.id = h.id
           WHERE h.n + h.used <= $9 AND d.status = 'pending' AND (d.claimed_until IS NULL OR d.claimed_until <= $1)
           ORDER BY h.seq
           LIMIT $3
           FOR UPDATE OF d SKIP LOCKED
         ), taken AS (
           UPDATE webhook_deliveries w SET claimed_until = $2
           FROM due, webhook_endpoints e
           WHERE w.id = due.id AND e.id = w.endpoint_id
           RETURNING w.id, w.event_id, w.endpoint_id, w.payload::text AS body, w.attempts, w.give_up_at, w.seq,
             e.url, e.secret, CASE WHEN e.previous_secret_until > $1 THEN e.previous_secret END AS previous_secret
         )
         SELECT taken.*, NULL::bigint AS window_end, NULL::int AS enabled FROM taken
         UNION ALL
         SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, (SELECT seq FROM oldest) + $6::bigint - 1,
           (SELECT count(*)::int FROM webhook_endpoints WHERE enabled)`,
        [
          now.toISOString(),
          claimedUntil.toISOString(),
          limit - claimed.length,
          busy,
          after,
          window,
          [...used.keys()],
          [...used.values()],
          room.perEndpoint,
        ],
        'webhook_claim',
      );
      for (const row of rows) {
        if (row.id == null) continue;
        claimed.push(row);
        used.set(String(row.endpoint_id), (used.get(String(row.endpoint_id)) ?? 0) + 1);
      }
      const summary = rows.find((row) => row.id == null);
      const full = [...used.values()].filter((n) => n >= room.perEndpoint).length;
      // No pending delivery after this window: the next claim scans from the oldest again.
      if (summary?.window_end == null) {
        this.resumeAfter = 0;
        break;
      }
      const end = Number(summary.window_end);
      // Enough, or every enabled endpoint at its limit; or this claim's scan is over: the next goes on from here
      // (also after a full claim from beyond the first window, so the scan keeps moving and reaches the end, where
      // it starts over: nothing between the first window and here waits for ever behind busy endpoints).
      const over = scanned >= windows;
      if (claimed.length >= limit || full >= Number(summary.enabled) || over) {
        if (scanned > 1) this.resumeAfter = end;
        break;
      }
      after = scanned === 1 ? Math.max(end, this.resumeAfter) : end;
    }
    return claimed
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

  /**
   * Expands up to `limit` committed events into their deliveries, oldest first (migration 0014). The number of events
   * taken; -1 when another member is expanding them.
   */
  async fanOut(limit: number): Promise<number> {
    const rows = await this.database.query(
      'SELECT wamt_webhook_fan_out($1::integer) AS taken',
      [limit],
      'webhook_fan_out',
    );
    return Number(rows[0]?.taken ?? 0);
  }

  /** Gives back deliveries claimed but not attempted (this member's per-endpoint limit, or a shutdown). */
  async unclaim(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.database.query(
      'UPDATE webhook_deliveries SET claimed_until = NULL WHERE id = ANY ($1::text[])',
      [ids],
      'webhook_unclaim',
    );
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
    const [disabled] = await this.recordAttempts([{ delivery, outcome, at: now }], windowMs);
    return disabled === true;
  }

  /**
   * Writes the outcomes of several attempts in one statement (and one more per failure that marks its endpoint
   * failing). Written with a relaxed commit: an outcome lost in a crash of the database server leaves its delivery
   * pending, and it is attempted again once its claim expires (at least once). Returns, per attempt, whether it
   * disabled its endpoint.
   */
  async recordAttempts(
    attempts: ReadonlyArray<{ delivery: ClaimedDelivery; outcome: AttemptOutcome; at: Date }>,
    windowMs: number,
  ): Promise<boolean[]> {
    if (attempts.length === 0) return [];
    // An endpoint that answered a success clears its failing mark; one that failed after its last success in the
    // batch is marked below.
    const lastSuccess = new Map<string, number>();
    for (const { delivery, outcome, at } of attempts) {
      if (outcome.kind !== 'delivered') continue;
      lastSuccess.set(delivery.endpointId, Math.max(lastSuccess.get(delivery.endpointId) ?? 0, at.getTime()));
    }
    await this.database.queryRelaxed(
      `WITH o AS (
         SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::int[], $6::text[],
           $7::timestamptz[]) AS o (id, status, next_attempt_at, give_up_at, last_status_code, last_error, at)
       ), recorded AS (
         UPDATE webhook_deliveries d SET status = o.status, attempts = d.attempts + 1, claimed_until = NULL,
           next_attempt_at = o.next_attempt_at, give_up_at = o.give_up_at, last_status_code = o.last_status_code,
           last_error = o.last_error, last_attempt_at = o.at, updated_at = now()
         FROM o WHERE d.id = o.id
         RETURNING d.id
       )
       UPDATE webhook_endpoints SET failing_since = NULL
       WHERE id = ANY ($8::text[]) AND failing_since IS NOT NULL`,
      [
        attempts.map(({ delivery }) => delivery.id),
        attempts.map(({ outcome }) => (outcome.kind === 'retry' ? 'pending' : outcome.kind)),
        attempts.map(({ outcome }) => (outcome.kind === 'retry' ? outcome.nextAttemptAt.toISOString() : null)),
        attempts.map(({ outcome }) => (outcome.kind === 'retry' ? outcome.giveUpAt.toISOString() : null)),
        attempts.map(({ outcome }) => outcome.statusCode),
        attempts.map(({ outcome }) => (outcome.kind === 'delivered' ? null : outcome.error.slice(0, 500))),
        attempts.map(({ at }) => at.toISOString()),
        [...lastSuccess.keys()],
      ],
      'webhook_record',
    );
    const disabled: boolean[] = [];
    for (const { delivery, outcome, at } of attempts) {
      const succeededLater = (lastSuccess.get(delivery.endpointId) ?? -1) >= at.getTime();
      if (outcome.kind === 'delivered' || succeededLater) {
        disabled.push(false);
        continue;
      }
      const rows = await this.database.query(
        `UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2),
           enabled = enabled AND COALESCE(failing_since, $2) > $3,
           disabled_at = CASE WHEN enabled AND COALESCE(failing_since, $2) <= $3 THEN $2 ELSE disabled_at END
         WHERE id = $1
         RETURNING disabled_at = $2 AS disabled_now`,
        [delivery.endpointId, at.toISOString(), new Date(at.getTime() - windowMs).toISOString()],
      );
      disabled.push(rows[0]?.disabled_now === true);
    }
    return disabled;
  }

  /** Deletes delivered and failed deliveries settled before `cutoff`, in batches; returns how many. */
  purgeSettledBefore(cutoff: Date, options?: PurgeOptions): Promise<number> {
    return purgeInBatches(this.database, SETTLED_DELIVERIES, cutoff, options);
  }

  private async notify(): Promise<void> {
    await this.database.query(`SELECT pg_notify('wamt_webhooks', '')`);
  }
}
