// Builds the app with a fixed configuration and returns its OpenAPI document (every optional route enabled).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createContainer } from '../src/container.js';
import type { Database } from '../src/db/client.js';
import { createLogger } from '../src/observability/logger.js';

export async function buildOpenApiDocument(database: Database): Promise<unknown> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'wamt-openapi-'));
  try {
    const config = loadConfig({
      DATA_DIR: dataDir,
      WA_ENGINE: 'sandbox',
      SANDBOX_ENABLED: 'true',
      ADMIN_API_KEY: 'openapi-generation-key',
      LOG_LEVEL: 'silent',
    });
    const container = await createContainer(config, {
      database,
      logger: createLogger({ level: 'silent' }),
      collectProcessMetrics: false,
    });
    const app = await buildApp(container);
    try {
      return app.swagger();
    } finally {
      await app.close();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}
