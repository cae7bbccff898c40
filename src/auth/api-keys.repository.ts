// Reads the shared api_keys table (managed by another service; never written here).
import { and, eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { apiKeys } from '../db/schema.js';

export interface ApiKeysRepository {
  /** The latest active access token of a user, or null. */
  latestActiveKey(userId: string): Promise<string | null>;
}

export function createApiKeysRepository(db: Db): ApiKeysRepository {
  return {
    async latestActiveKey(userId) {
      const rows = await db
        .select({ token: apiKeys.accessToken })
        .from(apiKeys)
        // user_id may be uuid or integer in the shared table: compare as text.
        .where(and(sql`${apiKeys.userId}::text = ${userId}`, eq(apiKeys.isActive, true)))
        // The same pick as the key sync's (agent-keys.repository.ts), or the two would take turns adopting two keys.
        .orderBy(sql`${apiKeys.updatedAt} DESC NULLS LAST`, sql`${apiKeys.accessToken} DESC`)
        .limit(1);
      return rows[0]?.token ?? null;
    },
  };
}
