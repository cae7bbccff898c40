// The shared api_keys table: created empty when a database lacks it, never touched when it is there.
import { describe, expect, it } from 'vitest';
import { migrate } from '../src/db/migrate.js';
import { createTestApp } from './helpers/app.js';
import { createEmptyDatabase } from './helpers/database.js';

describe('the api_keys table at boot', () => {
  it('is created when missing, so POST /sessions works on a database that never had it', async () => {
    const db = await createEmptyDatabase();
    const t = await createTestApp({ database: db.database });
    try {
      const res = await t.app.inject({
        method: 'POST',
        url: '/sessions',
        headers: t.admin,
        payload: { userId: 'u1', agentId: 'standalone-bot', agentName: 'Bot', apikey: 'key-standalone-0123456789' },
      });
      expect(res.statusCode).toBe(200);
      const created = t.logs.filter((line) => line.event === 'db.api_keys_created');
      // Expected on the embedded database; a warning on PostgreSQL, where another service should have made it.
      expect(created.map((line) => line.level)).toEqual(db.url ? ['warn'] : []);
      const rows = await db.database.query('SELECT count(*)::int AS n FROM api_keys');
      expect(rows).toEqual([{ n: 0 }]);
    } finally {
      await t.close();
      await db.drop();
    }
  }, 60_000);

  it('is left as it is when present: no column, index or row changes', async () => {
    const db = await createEmptyDatabase();
    try {
      await db.database.query(`CREATE TABLE api_keys (
        id bigserial PRIMARY KEY, user_id integer NOT NULL, access_token text NOT NULL,
        is_active boolean NOT NULL DEFAULT true, updated_at timestamptz NOT NULL DEFAULT now(), scope text)`);
      await db.database.query(`INSERT INTO api_keys (user_id, access_token, scope) VALUES (7, 'tok-7', 'all')`);
      const shape = async () => ({
        columns: await db.database.query(
          `SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'api_keys' ORDER BY 1`,
        ),
        indexes: await db.database.query(`SELECT indexname FROM pg_indexes WHERE tablename = 'api_keys' ORDER BY 1`),
        rows: await db.database.query('SELECT user_id, access_token, scope FROM api_keys'),
      });
      const before = await shape();
      await migrate(db.database);
      expect(await shape()).toEqual(before);
    } finally {
      await db.drop();
    }
  }, 60_000);
});
