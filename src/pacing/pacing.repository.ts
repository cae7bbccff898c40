// The pacing tables: each agent's setting (whatsapp_user.pacing), and the new contacts each agent wrote to in the
// last 24 h (pacing_contact_quota); plus the read that tells a new contact from a known one.
import type { Database } from '../db/client.js';

export const DAY_MS = 86_400_000;

export type AdmitOutcome = { admitted: true } | { admitted: false; oldest: number | null };

export class PacingRepository {
  constructor(private readonly database: Pick<Database, 'query'>) {}

  /** Every paced agent's stored setting. */
  async all(): Promise<Array<{ agentId: string; pacing: unknown }>> {
    const rows = await this.database.query('SELECT agent_id, pacing FROM whatsapp_user WHERE pacing IS NOT NULL');
    return rows.map((row) => ({ agentId: String(row.agent_id), pacing: row.pacing }));
  }

  /** The agent's stored setting (null: off), or undefined when the agent does not exist. */
  async find(agentId: string): Promise<unknown> {
    const rows = await this.database.query('SELECT pacing FROM whatsapp_user WHERE agent_id = $1', [agentId]);
    return rows[0] ? (rows[0].pacing ?? null) : undefined;
  }

  /**
   * Whether the agent has exchanged a message with the person at `jid`, under either of their addresses (a LID and
   * the number behind it, as the agent's identities pair them: someone who wrote first by LID, before their number
   * was known, is known by number too): sent them one (any state), received one in their chat, or already counted
   * them as a new contact. Each read is a few probes of indexes on (agent_id, chat).
   */
  async isKnownContact(agentId: string, jid: string): Promise<boolean> {
    const rows = await this.database.query(
      `WITH person AS (
         SELECT $2::text AS jid
         UNION SELECT i.phone || '@c.us' FROM identities i WHERE i.agent_id = $1 AND i.lid = $2
         UNION SELECT i.lid FROM identities i
           WHERE i.agent_id = $1 AND $2 LIKE '%@c.us' AND i.phone = split_part($2, '@', 1)
       )
       SELECT EXISTS (SELECT 1 FROM outbox_messages WHERE agent_id = $1 AND to_jid IN (SELECT jid FROM person))
           OR EXISTS (SELECT 1 FROM inbound_messages WHERE agent_id = $1 AND chat_jid IN (SELECT jid FROM person))
           OR EXISTS (SELECT 1 FROM pacing_contact_quota
                      WHERE agent_id = $1 AND contacts ?| ARRAY(SELECT jid FROM person)) AS known`,
      [agentId, jid],
    );
    return rows[0]?.known === true;
  }

  /**
   * Counts `jid` among the agent's new contacts at `now`, unless `limit` of them fall in the 24 h before: one statement
   * on the agent's one row. Two racing first messages take turns on its lock, and the second one's check reads the
   * row as the first one left it (an upsert re-reads the row it waited for), so the cap holds without a transaction or
   * any lock on other agents. A contact counted already is admitted again without counting twice. When refused,
   * `oldest` is when the oldest contact of the window was counted: the cap frees a place 24 h after it.
   */
  async admitNewContact(agentId: string, jid: string, now: number, limit: number): Promise<AdmitOutcome> {
    const rows = await this.database.query(
      `INSERT INTO pacing_contact_quota AS q (agent_id, contacts, updated_at)
       VALUES ($1, jsonb_build_object($2::text, $3::float8), to_timestamp($3::float8 / 1000))
       ON CONFLICT (agent_id) DO UPDATE
       SET contacts = (
             SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}'::jsonb)
             FROM jsonb_each(q.contacts) AS e WHERE (e.value)::float8 > $3::float8 - ${DAY_MS}
           ) || jsonb_build_object($2::text, coalesce(q.contacts -> $2::text, to_jsonb($3::float8))),
           updated_at = to_timestamp($3::float8 / 1000)
       WHERE q.contacts ? $2::text
          OR (SELECT count(*) FROM jsonb_each(q.contacts) AS e WHERE (e.value)::float8 > $3::float8 - ${DAY_MS}) < $4
       RETURNING agent_id`,
      [agentId, jid, now, limit],
    );
    if (rows.length > 0) return { admitted: true };
    const oldest = await this.database.query(
      `SELECT min((e.value)::float8) AS oldest
       FROM pacing_contact_quota AS q, jsonb_each(q.contacts) AS e
       WHERE q.agent_id = $1 AND (e.value)::float8 > $2::float8 - ${DAY_MS}`,
      [agentId, now],
    );
    const at = oldest[0]?.oldest;
    return { admitted: false, oldest: at == null ? null : Number(at) };
  }

  /** The agent was deleted: its count goes, so that a new agent of the same id starts afresh. */
  async forget(agentId: string): Promise<void> {
    await this.database.query('DELETE FROM pacing_contact_quota WHERE agent_id = $1', [agentId]);
  }
}
