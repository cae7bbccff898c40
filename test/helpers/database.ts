// A fresh database per test file: a new PostgreSQL database when TEST_DATABASE_URL is set, else an in-memory PGlite.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { type Database, openDatabase } from '../../src/db/client.js';
import { migrate } from '../../src/db/migrate.js';
import { EMBEDDED_API_KEYS_SQL } from '../../src/db/migrations/index.js';

export interface TestDatabase {
  /** The open database, migrated; shared by every app the test file builds. */
  database: Database;
  /** The connection URL when running on PostgreSQL, for tests that boot from configuration. */
  url: string | undefined;
  drop(): Promise<void>;
}

export const usingPostgres = (): boolean => Boolean(process.env.TEST_DATABASE_URL);

/** Creates an empty database (no migrations), on PostgreSQL or PGlite. */
export async function createEmptyDatabase(): Promise<TestDatabase> {
  const adminUrl = process.env.TEST_DATABASE_URL;
  if (!adminUrl) {
    const database = await openDatabase({ memory: true });
    return { database, url: undefined, drop: () => database.close() };
  }
  const name = `wamt_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const database = await openDatabase({ url: url.toString(), poolSize: 5 });
  return {
    database,
    url: url.toString(),
    async drop() {
      await database.close();
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

/**
 * A migrated database with the shared api_keys table present, as the service finds it in production
 * (there, another service creates api_keys; PGlite creates it itself).
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  const test = await createEmptyDatabase();
  await test.database.query(EMBEDDED_API_KEYS_SQL);
  await migrate(test.database);
  return test;
}

export async function insertApiKey(
  database: Database,
  userId: string,
  accessToken: string,
  isActive = true,
  updatedAt = new Date(),
) {
  await database.query('INSERT INTO api_keys (user_id, access_token, is_active, updated_at) VALUES ($1, $2, $3, $4)', [
    userId,
    accessToken,
    isActive,
    updatedAt,
  ]);
}
