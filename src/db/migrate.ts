// Applies the SQL migrations at boot. An advisory lock makes two processes booting at once take turns.
import type { Database } from './client.js';
import { migrations as allMigrations, EMBEDDED_API_KEYS_SQL, type Migration } from './migrations/index.js';

/** Arbitrary, fixed: the advisory lock key that serializes migrations across processes. */
const MIGRATION_LOCK_KEY = 4_210_771_302;

export async function migrate(database: Database, migrations: Migration[] = allMigrations): Promise<string[]> {
  return database.withConnection(async (query) => {
    // Waiting for another process's migrations, or running a long one, is not a stalled statement: no timeout here.
    if (database.kind === 'postgres') await query('SET statement_timeout = 0');
    await query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      await query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
      const applied = new Set((await query('SELECT id FROM schema_migrations')).map((row) => String(row.id)));
      const done: string[] = [];
      for (const migration of migrations) {
        if (applied.has(migration.id)) continue;
        await query('BEGIN');
        try {
          await query(migration.sql);
          await query('INSERT INTO schema_migrations (id) VALUES ($1)', [migration.id]);
          await query('COMMIT');
        } catch (err) {
          await query('ROLLBACK');
          throw new Error(`migration ${migration.id} failed: ${err instanceof Error ? err.message : String(err)}`, {
            cause: err,
          });
        }
        done.push(migration.id);
      }
      if (database.kind === 'pglite') await query(EMBEDDED_API_KEYS_SQL);
      return done;
    } finally {
      await query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
      // Back to the connection's own timeout before it returns to the pool.
      if (database.kind === 'postgres') await query('RESET statement_timeout');
    }
  });
}
