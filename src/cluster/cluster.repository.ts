// The SQL of cluster_members and session_leases. Every expiry is written and compared with the database's clock
// (now()), the one clock all members share; each statement is one round trip, named so it is planned once.
import type { Database, Row } from '../db/client.js';
import type { MemberCapacity } from './fair-share.js';

export interface MemberRegistration {
  instanceId: string;
  /** Random per process: tells this process's row from one a process with the same INSTANCE_ID left. */
  incarnation: string;
  url: string | null;
  maxSessions: number | null;
  ttlMs: number;
}

export interface HeldLeaseRef {
  agentId: string;
  epoch: number;
}

export interface HeartbeatResult {
  /** False when another live process has this INSTANCE_ID: nothing was written. */
  registered: boolean;
  /** The leases renewed: held by this member at the epoch given, and not expired. */
  renewed: Set<string>;
}

export interface ClusterState {
  /** Sessions (whatsapp_user rows). */
  sessions: number;
  /** Sessions without a live lease. */
  free: number;
  /** Members whose heartbeat is within the TTL. */
  members: MemberCapacity[];
  /** Live leases, by owner. */
  owned: Map<string, number>;
  /** Leases this member holds on agents whose row is gone. */
  orphans: string[];
  /**
   * Milliseconds until the first live lease of a member that missed its heartbeats (older than `staleMs`) expires:
   * when a dead member's sessions become free. Null when there is none.
   */
  staleExpiryMs: number | null;
}

export interface MemberRow {
  instanceId: string;
  url: string | null;
  maxSessions: number | null;
  heartbeatAgeMs: number;
  live: boolean;
  sessions: number;
}

const TTL = "($2::int * interval '1 millisecond')";

export function createClusterRepository(database: Database) {
  const { query } = database;
  return {
    /**
     * Heartbeat and renew in one statement, with one now(): a member whose heartbeat is stale has no lease left
     * either. A row of the same INSTANCE_ID from another process is taken over only once its heartbeat is stale.
     */
    async heartbeat(member: MemberRegistration, held: HeldLeaseRef[]): Promise<HeartbeatResult> {
      const [row] = await query(
        `WITH member AS (
           INSERT INTO cluster_members AS m (instance_id, incarnation, url, max_sessions, started_at, heartbeat_at)
           VALUES ($1, $3, $4, $5, now(), now())
           ON CONFLICT (instance_id) DO UPDATE
             SET incarnation = EXCLUDED.incarnation, url = EXCLUDED.url, max_sessions = EXCLUDED.max_sessions,
                 heartbeat_at = now(),
                 started_at = CASE WHEN m.incarnation = EXCLUDED.incarnation THEN m.started_at ELSE now() END
             WHERE m.incarnation = EXCLUDED.incarnation OR m.heartbeat_at <= now() - ${TTL}
           RETURNING 1
         ), renewed AS (
           UPDATE session_leases l SET expires_at = now() + ${TTL}
           FROM unnest($6::text[], $7::bigint[]) AS h(agent_id, epoch)
           WHERE EXISTS (SELECT 1 FROM member) AND l.agent_id = h.agent_id AND l.owner = $1
             AND l.epoch = h.epoch AND l.expires_at > now()
           RETURNING l.agent_id
         )
         SELECT EXISTS (SELECT 1 FROM member) AS registered,
                coalesce((SELECT array_agg(agent_id) FROM renewed), '{}') AS renewed`,
        [
          member.instanceId,
          member.ttlMs,
          member.incarnation,
          member.url,
          member.maxSessions,
          held.map((h) => h.agentId),
          held.map((h) => h.epoch),
        ],
        'cluster.heartbeat',
      );
      return { registered: row?.registered === true, renewed: new Set(texts(row?.renewed)) };
    },

    /** On joining: leases a previous process with this INSTANCE_ID still names (it is gone) become free. */
    async disown(instanceId: string): Promise<void> {
      await query(
        'UPDATE session_leases SET owner = NULL, expires_at = now() WHERE owner = $1',
        [instanceId],
        'cluster.disown',
      );
    },

    /**
     * What the fair shares are computed from. It also deletes the leases of deleted agents that nobody holds, and
     * the rows of members gone for longer than `forgetAfterMs`.
     */
    async state(instanceId: string, ttlMs: number, forgetAfterMs: number, staleMs: number): Promise<ClusterState> {
      const [row] = await query(
        `WITH swept AS (
           DELETE FROM session_leases l
           WHERE (l.owner IS NULL OR l.expires_at <= now())
             AND NOT EXISTS (SELECT 1 FROM whatsapp_user u WHERE u.agent_id = l.agent_id)
         ), gone AS (
           DELETE FROM cluster_members WHERE heartbeat_at <= now() - ($3::int * interval '1 millisecond')
         )
         SELECT
           (SELECT count(*)::int FROM whatsapp_user) AS sessions,
           (SELECT count(*)::int FROM whatsapp_user u WHERE NOT EXISTS (
              SELECT 1 FROM session_leases l
              WHERE l.agent_id = u.agent_id AND l.owner IS NOT NULL AND l.expires_at > now())) AS free,
           (SELECT coalesce(json_agg(json_build_object('instanceId', instance_id, 'maxSessions', max_sessions)
                                     ORDER BY instance_id), '[]'::json)
              FROM cluster_members WHERE heartbeat_at > now() - ${TTL}) AS members,
           (SELECT coalesce(json_object_agg(owner, n), '{}'::json) FROM (
              SELECT owner, count(*)::int AS n FROM session_leases
              WHERE owner IS NOT NULL AND expires_at > now() GROUP BY owner) AS counts) AS owned,
           (SELECT coalesce(array_agg(l.agent_id), '{}') FROM session_leases l
              WHERE l.owner = $1 AND NOT EXISTS (SELECT 1 FROM whatsapp_user u WHERE u.agent_id = l.agent_id))
              AS orphans,
           (SELECT extract(epoch FROM min(l.expires_at) - now())::float8 * 1000 FROM session_leases l
              JOIN cluster_members m ON m.instance_id = l.owner
              WHERE l.expires_at > now() AND m.heartbeat_at <= now() - ($4::int * interval '1 millisecond'))
              AS stale_expiry_ms`,
        [instanceId, ttlMs, forgetAfterMs, staleMs],
        'cluster.state',
      );
      return {
        sessions: Number(row?.sessions ?? 0),
        free: Number(row?.free ?? 0),
        members: ((row?.members ?? []) as MemberCapacity[]).map((m) => ({
          instanceId: m.instanceId,
          maxSessions: m.maxSessions === null ? null : Number(m.maxSessions),
        })),
        owned: new Map(Object.entries((row?.owned ?? {}) as Record<string, number>).map(([k, n]) => [k, Number(n)])),
        orphans: texts(row?.orphans),
        staleExpiryMs: row?.stale_expiry_ms == null ? null : Number(row.stale_expiry_ms),
      };
    },

    /**
     * Takes up to `limit` leases that are free (no row, no owner, or expired), in an order of this member's own so
     * that members taking at once mostly want different agents. Safe under concurrency: the conflict clause locks
     * the row and re-checks it at its latest version, so of two members racing for one lease only one gets it. An
     * agent created less than a TTL ago that has no lease row yet is left to the member creating it, which claims it
     * next (and starts its session); should that member die first, the agent is free once the TTL has passed.
     */
    async acquire(instanceId: string, ttlMs: number, limit: number): Promise<HeldLeaseRef[]> {
      const rows = await query(
        `WITH candidates AS (
           SELECT u.agent_id FROM whatsapp_user u
           LEFT JOIN session_leases l ON l.agent_id = u.agent_id
           WHERE CASE WHEN l.agent_id IS NULL THEN u.created_at <= now() - ${TTL}
                      ELSE l.owner IS NULL OR l.expires_at <= now() END
           ORDER BY md5(u.agent_id || $1)
           LIMIT $3
         )
         INSERT INTO session_leases AS l (agent_id, owner, epoch, expires_at)
         SELECT agent_id, $1, 1, now() + ${TTL} FROM candidates
         ON CONFLICT (agent_id) DO UPDATE
           SET owner = EXCLUDED.owner, epoch = l.epoch + 1, expires_at = EXCLUDED.expires_at
           WHERE l.owner IS NULL OR l.expires_at <= now()
         RETURNING l.agent_id, l.epoch`,
        [instanceId, ttlMs, limit],
        'cluster.acquire',
      );
      return rows.map(toRef);
    },

    /** Takes this one agent's lease if it is free and the agent exists; its epoch, or null. */
    async claim(instanceId: string, ttlMs: number, agentId: string): Promise<number | null> {
      const [row] = await query(
        `INSERT INTO session_leases AS l (agent_id, owner, epoch, expires_at)
         SELECT u.agent_id, $1, 1, now() + ${TTL} FROM whatsapp_user u WHERE u.agent_id = $3
         ON CONFLICT (agent_id) DO UPDATE
           SET owner = EXCLUDED.owner, epoch = l.epoch + 1, expires_at = EXCLUDED.expires_at
           WHERE l.owner IS NULL OR l.expires_at <= now()
         RETURNING l.epoch`,
        [instanceId, ttlMs, agentId],
        'cluster.claim',
      );
      return row ? Number(row.epoch) : null;
    },

    /** Gives leases up: the owner is cleared and the epoch kept, only where this member still holds that epoch. */
    async release(instanceId: string, leases: HeldLeaseRef[]): Promise<void> {
      if (leases.length === 0) return;
      await query(
        `UPDATE session_leases l SET owner = NULL, expires_at = now()
         FROM unnest($2::text[], $3::bigint[]) AS h(agent_id, epoch)
         WHERE l.agent_id = h.agent_id AND l.owner = $1 AND l.epoch = h.epoch`,
        [instanceId, leases.map((l) => l.agentId), leases.map((l) => l.epoch)],
        'cluster.release',
      );
    },

    /** The agent is deleted: its lease row goes, whoever holds it. */
    async forget(agentId: string): Promise<void> {
      await query('DELETE FROM session_leases WHERE agent_id = $1', [agentId], 'cluster.forget');
    },

    async leave(instanceId: string, incarnation: string): Promise<void> {
      await query(
        'DELETE FROM cluster_members WHERE instance_id = $1 AND incarnation = $2',
        [instanceId, incarnation],
        'cluster.leave',
      );
    },

    async ownerOf(agentId: string): Promise<{ instanceId: string; url: string | null } | null> {
      const [row] = await query(
        `SELECT l.owner, m.url FROM session_leases l LEFT JOIN cluster_members m ON m.instance_id = l.owner
         WHERE l.agent_id = $1 AND l.owner IS NOT NULL AND l.expires_at > now()`,
        [agentId],
        'cluster.owner',
      );
      return row ? { instanceId: String(row.owner), url: row.url === null ? null : String(row.url) } : null;
    },

    /** Every member row, gone ones included until they are forgotten, with the live leases each holds. */
    async members(ttlMs: number): Promise<MemberRow[]> {
      const rows = await query(
        `SELECT m.instance_id, m.url, m.max_sessions,
                greatest(0, floor(extract(epoch FROM now() - m.heartbeat_at) * 1000))::float8 AS heartbeat_age_ms,
                m.heartbeat_at > now() - ($1::int * interval '1 millisecond') AS live,
                (SELECT count(*)::int FROM session_leases l
                 WHERE l.owner = m.instance_id AND l.expires_at > now()) AS sessions
         FROM cluster_members m ORDER BY m.instance_id`,
        [ttlMs],
        'cluster.members',
      );
      return rows.map((row) => ({
        instanceId: String(row.instance_id),
        url: row.url === null ? null : String(row.url),
        maxSessions: row.max_sessions === null ? null : Number(row.max_sessions),
        heartbeatAgeMs: Number(row.heartbeat_age_ms),
        live: row.live === true,
        sessions: Number(row.sessions),
      }));
    },

    async countSessions(): Promise<number> {
      const [row] = await query('SELECT count(*)::int AS n FROM whatsapp_user', [], 'cluster.sessions');
      return Number(row?.n ?? 0);
    },
  };
}

export type ClusterRepository = ReturnType<typeof createClusterRepository>;

const toRef = (row: Row): HeldLeaseRef => ({ agentId: String(row.agent_id), epoch: Number(row.epoch) });

/** A text[] as pg returns it (an array); PGlite and pg both parse arrays of text. */
function texts(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}
