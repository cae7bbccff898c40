// The key sync's one query, against the shapes the shared api_keys table has in the wild: user_id as integer or uuid.
import { describe, expect, it } from 'vitest';
import { createAgentKeysRepository } from '../src/auth/agent-keys.repository.js';
import { createApiKeysRepository } from '../src/auth/api-keys.repository.js';
import { migrate } from '../src/db/migrate.js';
import { createEmptyDatabase } from './helpers/database.js';

const USER_UUID = 'ff2c9e4b-94fd-4120-9d95-cb4d9bac3a4c';

describe.each([
  ['integer', '42'],
  ['uuid', USER_UUID],
])('the key sync query, with api_keys.user_id as %s', (type, userId) => {
  it('reads every agent with the latest active key of its user, and whether a legacy key is in api_keys', async () => {
    const db = await createEmptyDatabase();
    try {
      await db.database.query(`CREATE TABLE api_keys (
        id bigserial PRIMARY KEY, user_id ${type} NOT NULL, access_token text NOT NULL,
        is_active boolean NOT NULL DEFAULT true, updated_at timestamptz)`);
      await migrate(db.database);
      const key = (token: string, active: boolean, at: string | null) =>
        db.database.query(
          `INSERT INTO api_keys (user_id, access_token, is_active, updated_at) VALUES ($1, $2, $3, $4)`,
          [userId, token, active, at],
        );
      await key('old', true, '2026-01-01T10:00:00Z');
      await key('newest-inactive', false, '2026-01-01T12:00:00Z');
      await key('latest', true, '2026-01-01T11:00:00Z');
      await key('undated', true, null);
      const agent = (agentId: string, user: string, apiKey: string | null, source: string | null) =>
        db.database.query(
          `INSERT INTO whatsapp_user (user_id, agent_id, api_key, api_key_source) VALUES ($1, $2, $3, $4)`,
          [user, agentId, apiKey, source],
        );
      await agent('shared', userId, 'old', 'api_keys');
      await agent('legacy-in', userId, 'newest-inactive', null);
      await agent('legacy-out', 'someone-else', 'given', null);
      await agent('no-key', 'someone-else', null, null);

      const rows = await createAgentKeysRepository(db.database).all();
      const byAgent = Object.fromEntries(rows.map((row) => [row.agentId, row]));
      expect(byAgent.shared).toEqual({
        agentId: 'shared',
        userId,
        apiKey: 'old',
        source: 'api_keys',
        latest: 'latest',
        currentInApiKeys: null,
      });
      expect(byAgent['legacy-in']).toMatchObject({ source: null, latest: 'latest', currentInApiKeys: true });
      expect(byAgent['legacy-out']).toMatchObject({ source: null, latest: null, currentInApiKeys: false });
      expect(byAgent['no-key']).toMatchObject({ apiKey: null, latest: null, currentInApiKeys: null });

      // The lazy look-up picks the same key (an undated one is not "latest").
      expect(await createApiKeysRepository(db.database.db).latestActiveKey(userId)).toBe('latest');

      // Saving follows the row only while it still holds the key that was read.
      const repo = createAgentKeysRepository(db.database);
      await repo.save('shared', 'latest', 'api_keys', 'not-what-the-row-holds');
      await repo.saveSource('legacy-in', 'api_keys', 'newest-inactive');
      const after = await db.database.query(
        `SELECT agent_id, api_key, api_key_source FROM whatsapp_user WHERE agent_id IN ('shared', 'legacy-in') ORDER BY 1`,
      );
      expect(after).toEqual([
        { agent_id: 'legacy-in', api_key: 'newest-inactive', api_key_source: 'api_keys' },
        { agent_id: 'shared', api_key: 'old', api_key_source: 'api_keys' },
      ]);
      await repo.save('shared', 'latest', 'api_keys', 'old');
      expect(await db.database.query(`SELECT api_key FROM whatsapp_user WHERE agent_id = 'shared'`)).toEqual([
        { api_key: 'latest' },
      ]);
    } finally {
      await db.drop();
    }
  }, 60_000);
});
