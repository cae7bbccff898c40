// Applies the SQL migrations at boot. An advisory lock makes two processes booting at once take turns.
import type { Logger } from '../observability/logger.js';
import type { Database, QueryFn } from './client.js';
import { migrations as allMigrations, EMBEDDED_API_KEYS_SQL, type Migration } from './migrations/index.js';

/** Arbitrary, fixed: the advisory lock key that serializes migrations across processes. */
const MIGRATION_LOCK_KEY = 4_210_771_302;

export interface MigrateOptions {
  migrations?: Migration[];
  /** Told when the shared api_keys table was missing on PostgreSQL and was created. */
  logger?: Pick<Logger, 'warn'>;
}

/** Applies what is not applied yet; returns the ids it applied. */
export async function migrate(
  database: Database,
  { migrations = allMigrations, logger }: MigrateOptions = {},
): Promise<string[]> {
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
      await ensureApiKeysTable(query, database.kind, logger);
      return done;
    } finally {
      await query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
      // Back to the connection's own timeout before it returns to the pool.
      if (database.kind === 'postgres') await query('RESET statement_timeout');
    }
  });
}

/**
 * api_keys belongs to another service, which normally creates it. A database without it (a standalone deployment, a
 * fresh server) gets it created empty, so key look-ups find nothing rather than fail; one that has it, whatever its
 * shape, is left as it is: no column, index or row is changed.
 */
async function ensureApiKeysTable(
  query: QueryFn,
  kind: Database['kind'],
  logger: Pick<Logger, 'warn'> | undefined,
): Promise<void> {
  const [found] = await query(`SELECT to_regclass('api_keys') IS NOT NULL AS present`);
  if (found?.present === true) return;
  await query(EMBEDDED_API_KEYS_SQL);
  // Expected on the embedded database; on PostgreSQL, the service that issues keys should have made it.
  if (kind === 'postgres') {
    logger?.warn(
      { event: 'db.api_keys_created' },
      'the shared api_keys table was missing: created it empty. Agents use the apikey given to POST /sessions until ' +
        'the service that issues keys fills it.',
    );
  }
}
