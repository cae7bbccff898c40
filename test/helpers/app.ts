// Builds the whole app on a test database with the sandbox engine, as main.ts would, without a socket.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll } from 'vitest';
import { type App, buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { type Container, type ContainerOverrides, createContainer } from '../../src/container.js';
import type { Database } from '../../src/db/client.js';
import { createLogger } from '../../src/observability/logger.js';
import { createTestDatabase, type TestDatabase } from './database.js';

export const ADMIN_KEY = 'test-admin-key-0123456789';

export interface TestApp {
  app: App;
  container: Container;
  /** Everything the app logged, one parsed JSON object per line. */
  logs: Record<string, unknown>[];
  /** `Authorization` header with the admin key. */
  admin: { authorization: string };
  close(): Promise<void>;
}

export interface TestAppOptions {
  database: Database;
  env?: Record<string, string>;
  /** Reuse a data directory (stored logins survive a rebuild); a fresh one otherwise. */
  dataDir?: string;
  overrides?: Omit<ContainerOverrides, 'database' | 'logger'>;
}

export async function createTestDataDir(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), 'wamt-test-'));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export async function createTestApp({ database, env = {}, dataDir, overrides = {} }: TestAppOptions): Promise<TestApp> {
  const dir = dataDir ?? (await createTestDataDir());
  const config = loadConfig({
    NODE_ENV: 'test',
    DATA_DIR: dir,
    WA_ENGINE: 'sandbox',
    ADMIN_API_KEY: ADMIN_KEY,
    AI_BACKEND_URL: 'http://127.0.0.1:9',
    LOG_LEVEL: 'debug',
    // Tests of other behaviour send many wrong keys from one address; the failure limit has its own tests.
    AUTH_FAILURES_PER_MINUTE: '100000',
    // Several apps of one test process on one PostgreSQL database are several cluster members: each its own id.
    INSTANCE_ID: `test-${randomUUID()}`,
    ...env,
  });
  const logs: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line));
      callback();
    },
  });
  const logger = createLogger({ level: config.logLevel, destination });
  const container = await createContainer(config, {
    collectProcessMetrics: false,
    reconnectBackoff: { baseMs: 20, maxMs: 200 },
    ...overrides,
    database,
    logger,
  });
  const app = await buildApp(container);
  await container.start();
  return {
    app,
    container,
    logs,
    admin: { authorization: `Bearer ${ADMIN_KEY}` },
    async close() {
      await app.close();
      if (!dataDir) await removeDir(dir);
    },
  };
}

export interface TestAppFixture {
  /** The app, built in beforeAll. */
  readonly t: TestApp;
  /** Its database, created in beforeAll and dropped in afterAll. */
  readonly db: TestDatabase;
}

/** Registers beforeAll/afterAll that build an app on a fresh database and tear both down. */
export function useTestApp(options: Omit<TestAppOptions, 'database'> = {}): TestAppFixture {
  let db: TestDatabase | undefined;
  let t: TestApp | undefined;
  beforeAll(async () => {
    db = await createTestDatabase();
    t = await createTestApp({ ...options, database: db.database });
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });
  return {
    get t() {
      if (!t) throw new Error('the test app is built in beforeAll');
      return t;
    },
    get db() {
      if (!db) throw new Error('the test database is created in beforeAll');
      return db;
    },
  };
}
