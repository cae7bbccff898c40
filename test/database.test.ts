import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/db/client.js';
import { migrate } from '../src/db/migrate.js';
import { createEmptyDatabase, type TestDatabase } from './helpers/database.js';

describe('migrations', () => {
  let test: TestDatabase;
  beforeAll(async () => {
    test = await createEmptyDatabase();
  });
  afterAll(() => test.drop());

  it('upgrades a table left by the original service in place, keeping its rows', async () => {
    const { database } = test;
    await database.query(`CREATE TABLE whatsapp_user (
      user_id text NOT NULL, agent_id text NOT NULL, agent_name text, api_key text, endpoint_url_run text,
      status text, last_connected_at timestamptz, last_disconnected_at timestamptz,
      created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now(),
      PRIMARY KEY (user_id, agent_id))`);
    await database.query(
      `INSERT INTO whatsapp_user (user_id, agent_id, agent_name, api_key, status) VALUES ('u1', 'legacy-bot', 'Legacy', 'k1', 'connected')`,
    );
    const first = await migrate(database);
    expect(first.length).toBeGreaterThan(0);
    const rows = await database.query(
      'SELECT agent_id, agent_name, api_key, status, engine, wa_jid FROM whatsapp_user',
    );
    expect(rows).toEqual([
      { agent_id: 'legacy-bot', agent_name: 'Legacy', api_key: 'k1', status: 'connected', engine: null, wa_jid: null },
    ]);
    expect(await migrate(database)).toEqual([]);
  });

  it('lets two boots migrate at once without colliding', async () => {
    const other = await createEmptyDatabase();
    // On PostgreSQL the second boot is a second pool, as a second process would have.
    const second = other.url ? await openDatabase({ url: other.url, poolSize: 2 }) : other.database;
    try {
      const results = await Promise.all([migrate(other.database), migrate(second)]);
      const applied = results.flat().sort();
      expect(new Set(applied).size).toBe(applied.length);
      const tables = await other.database.query(`SELECT count(*)::int AS n FROM schema_migrations`);
      expect(tables[0]?.n).toBe(applied.length);
    } finally {
      if (second !== other.database) await second.close();
      await other.drop();
    }
  }, 60_000); // on PGlite each boot opens a WebAssembly Postgres: slow on a loaded 2-core machine
});

describe.runIf(process.env.TEST_DATABASE_URL)('PostgreSQL connections', () => {
  it('plans every run of a named statement for its own parameters, on every pooled connection', async () => {
    const test = await createEmptyDatabase();
    const database = await openDatabase({ url: test.url ?? '', poolSize: 3 });
    try {
      // Three at once, so that more than one pooled connection answers.
      const modes = await Promise.all(
        [1, 2, 3].map(() =>
          database.query(
            'SELECT current_setting($1) AS mode, pg_backend_pid() AS pid, pg_sleep(0.05)',
            ['plan_cache_mode'],
            'plan_mode',
          ),
        ),
      );
      expect(new Set(modes.map((rows) => rows[0]?.pid)).size).toBeGreaterThan(1);
      expect(modes.map((rows) => rows[0]?.mode)).toEqual(Array(3).fill('force_custom_plan'));
      // Durable commits by default; the relaxed connections (inbound dedup markers) do not wait for the disk.
      const setting = 'SELECT current_setting($1) AS value';
      expect((await database.query(setting, ['synchronous_commit']))[0]?.value).toBe('on');
      expect((await database.queryRelaxed(setting, ['synchronous_commit']))[0]?.value).toBe('off');
      expect((await database.queryRelaxed(setting, ['plan_cache_mode']))[0]?.value).toBe('force_custom_plan');
    } finally {
      await database.close();
      await test.drop();
    }
  });
});
