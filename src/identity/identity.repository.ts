// The identities table: per agent, the phone number behind each LID the agent's WhatsApp account has learned.
import type { Database } from '../db/client.js';
import { PURGE_BATCH_SIZE, type PurgeTarget, purgeInBatches } from '../db/retention.js';

/** A stored pair: the LID (`<id>@lid`) and the phone number's digits. */
export interface StoredIdentity {
  lid: string;
  phone: string;
  pushName: string | null;
}

export interface IdentityWrite extends StoredIdentity {
  agentId: string;
  at: Date;
}

/** Find the pair of one address: by `lid` (`<id>@lid`) or by `phone` (digits); exactly one of them is set. */
export interface IdentityQuery {
  agentId: string;
  lid: string | null;
  phone: string | null;
}

/** Pairs not seen for the retention period go, as stored messages do. */
const STALE_IDENTITIES: PurgeTarget = {
  table: 'identities',
  key: 'agent_id, lid',
  olderThan: 'updated_at < $1',
};

export class IdentityRepository {
  constructor(
    private readonly database: Database,
    private readonly purgeBatchSize = PURGE_BATCH_SIZE,
  ) {}

  /** One INSERT … ON CONFLICT for many pairs; within the batch the last word on a LID wins. */
  async saveMany(items: readonly IdentityWrite[]): Promise<void> {
    const last = new Map<string, IdentityWrite>();
    for (const item of items) last.set(`${item.agentId}\u0000${item.lid}`, item);
    const rows = [...last.values()];
    if (rows.length === 0) return;
    // A name once known is kept when a later source (a mapping event) carries none.
    await this.database.queryRelaxed(
      `INSERT INTO identities AS i (agent_id, lid, phone, push_name, updated_at)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
       ON CONFLICT (agent_id, lid) DO UPDATE
         SET phone = EXCLUDED.phone, push_name = coalesce(EXCLUDED.push_name, i.push_name),
           updated_at = greatest(EXCLUDED.updated_at, i.updated_at)`,
      [
        rows.map((r) => r.agentId),
        rows.map((r) => r.lid),
        rows.map((r) => r.phone),
        rows.map((r) => r.pushName),
        rows.map((r) => r.at.toISOString()),
      ],
      'identities_save',
    );
  }

  /** One statement for many look-ups; null where the agent knows no pair (for a phone, its latest LID). */
  async findMany(queries: readonly IdentityQuery[]): Promise<Array<StoredIdentity | null>> {
    if (queries.length === 0) return [];
    const rows = await this.database.query(
      `SELECT v.n, x.lid, x.phone, x.push_name
       FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS v (agent_id, lid, phone, n)
       CROSS JOIN LATERAL (
         SELECT i.lid, i.phone, i.push_name FROM identities i
         WHERE i.agent_id = v.agent_id AND (i.lid = v.lid OR i.phone = v.phone)
         ORDER BY i.updated_at DESC LIMIT 1
       ) x`,
      [queries.map((q) => q.agentId), queries.map((q) => q.lid), queries.map((q) => q.phone)],
    );
    const found = new Map<number, StoredIdentity>();
    for (const row of rows) {
      found.set(Number(row.n), {
        lid: String(row.lid),
        phone: String(row.phone),
        pushName: row.push_name == null ? null : String(row.push_name),
      });
    }
    return queries.map((_, i) => found.get(i + 1) ?? null);
  }

  /** Deletes pairs last seen before `cutoff`, `purgeBatchSize` per statement; returns how many. */
  purgeBefore(cutoff: Date, signal?: AbortSignal): Promise<number> {
    return purgeInBatches(this.database, STALE_IDENTITIES, cutoff, { batchSize: this.purgeBatchSize, signal });
  }
}
