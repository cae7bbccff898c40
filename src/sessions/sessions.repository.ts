// whatsapp_user rows: the persisted side of a session.
import { asc, count, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { type SessionStatusValue, whatsappUser } from '../db/schema.js';

export type SessionRow = typeof whatsappUser.$inferSelect;
export type NewSessionRow = typeof whatsappUser.$inferInsert;
export type SessionPatch = Partial<
  Pick<
    SessionRow,
    | 'agentName'
    | 'apiKey'
    | 'endpointUrlRun'
    | 'lastConnectedAt'
    | 'lastDisconnectedAt'
    | 'engine'
    | 'waJid'
    | 'lastError'
    | 'apiKeySource'
    | 'pacing'
  >
> & { status?: SessionStatusValue };

export interface SessionsRepository {
  find(agentId: string): Promise<SessionRow | null>;
  /** Null when the agent exists already: a concurrent create inserted it first. */
  insert(row: NewSessionRow): Promise<SessionRow | null>;
  update(agentId: string, patch: SessionPatch): Promise<void>;
  delete(agentId: string): Promise<boolean>;
  page(limit: number, offset: number): Promise<{ rows: SessionRow[]; total: number }>;
  all(): Promise<SessionRow[]>;
}

export function createSessionsRepository(db: Db): SessionsRepository {
  // Read for every inbound message (the agent's key and endpoint): built once, a prepared statement on PostgreSQL.
  const findByAgent = db
    .select()
    .from(whatsappUser)
    .where(eq(whatsappUser.agentId, sql.placeholder('agentId')))
    .limit(1)
    .prepare('sessions_find');
  return {
    async find(agentId) {
      const rows = await findByAgent.execute({ agentId });
      return rows[0] ?? null;
    },
    async insert(row) {
      // Any unique key (agent_id, or the seed's (user_id, agent_id)) taken means another create won the race.
      const [inserted] = await db.insert(whatsappUser).values(row).onConflictDoNothing().returning();
      return inserted ?? null;
    },
    async update(agentId, patch) {
      await db
        .update(whatsappUser)
        .set({ ...patch, updatedAt: new Date() })
        .where(eq(whatsappUser.agentId, agentId));
    },
    async delete(agentId) {
      const deleted = await db
        .delete(whatsappUser)
        .where(eq(whatsappUser.agentId, agentId))
        .returning({ agentId: whatsappUser.agentId });
      return deleted.length > 0;
    },
    async page(limit, offset) {
      const [rows, totals] = await Promise.all([
        db
          .select()
          .from(whatsappUser)
          .orderBy(asc(whatsappUser.createdAt), asc(whatsappUser.agentId))
          .limit(limit)
          .offset(offset),
        db.select({ total: count() }).from(whatsappUser),
      ]);
      return { rows, total: totals[0]?.total ?? 0 };
    },
    all: () => db.select().from(whatsappUser).orderBy(asc(whatsappUser.createdAt)),
  };
}
