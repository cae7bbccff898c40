// /health/ready answers 503 until the service has started (agent keys loaded, sessions restored or leases taken):
// main.ts listens before it starts, and a load balancer must not send a member requests it would refuse meanwhile.
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { type Container, createContainer } from '../src/container.js';
import { createLogger } from '../src/observability/logger.js';
import { ADMIN_KEY, createTestDataDir, removeDir } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

describe('/health/ready while the service starts', () => {
  let db: TestDatabase;
  let dir: string;
  let container: Container;
  let app: App;

  beforeAll(async () => {
    db = await createTestDatabase();
    dir = await createTestDataDir();
    const config = loadConfig({
      NODE_ENV: 'test',
      DATA_DIR: dir,
      WA_ENGINE: 'sandbox',
      ADMIN_API_KEY: ADMIN_KEY,
      LOG_LEVEL: 'silent',
      INSTANCE_ID: 'readiness-member',
    });
    const logger = createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, done) => done() }) });
    container = await createContainer(config, { database: db.database, logger, collectProcessMetrics: false });
    app = await buildApp(container);
  });
  afterAll(async () => {
    await app?.close();
    await db?.drop();
    await removeDir(dir);
  });

  it('answers 503 "starting" until start() has finished, then 200', async () => {
    const before = await app.inject({ method: 'GET', url: '/health/ready' });
    expect(before.statusCode).toBe(503);
    expect(before.json()).toMatchObject({ status: 'starting', checks: { database: 'ok', draining: false } });
    // Liveness is not readiness: the process answers.
    expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);

    await container.start();
    const after = await app.inject({ method: 'GET', url: '/health/ready' });
    expect(after.statusCode).toBe(200);
    expect(after.json()).toMatchObject({ status: 'ok', checks: { database: 'ok', draining: false } });
  });
});
