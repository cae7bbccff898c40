// Wires authentication: the in-memory key store, its background sync against api_keys, the failure limits, the hooks.
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import type { Logger } from '../observability/logger.js';
import { AgentKeyStore } from './agent-keys.js';
import { createAgentKeysRepository } from './agent-keys.repository.js';
import type { ApiKeysRepository } from './api-keys.repository.js';
import { type Auth, createAuth } from './auth.hooks.js';
import { FailureLimiter } from './auth-failures.js';
import { createKeySync, type KeySync } from './key-sync.js';

export interface AuthModuleOptions {
  config: Pick<Config, 'sessionsAuth' | 'keySyncIntervalMs' | 'authFailuresPerMinute'>;
  database: Pick<Database, 'query' | 'listen'>;
  /** Other processes share the database (a cluster): key changes are announced to them. */
  shared: boolean;
  apiKeys: ApiKeysRepository;
  adminKey: string;
  clock: Clock;
  logger: Logger;
}

export interface AuthModule {
  keys: AgentKeyStore;
  auth: Auth;
  /** Started by the container before sessions are restored, stopped when it closes. */
  keySync: KeySync;
}

const FAILURE_WINDOW_MS = 60_000;

export function createAuthModule({
  config,
  database,
  apiKeys,
  adminKey,
  clock,
  logger,
  shared,
}: AuthModuleOptions): AuthModule {
  const repo = createAgentKeysRepository(database);
  const keys = new AgentKeyStore({
    apiKeys,
    saveApiKey: (agentId, apiKey) => repo.save(agentId, apiKey, 'api_keys'),
    syncIntervalMs: config.keySyncIntervalMs,
    clock,
    onSaveError: (agentId, err) =>
      logger.warn({ event: 'auth.key_save_failed', agentId, err }, 'could not save the adopted key; the sync retries'),
    onChange: () => keySync.announce(),
  });
  const limiter = () => new FailureLimiter({ clock, limit: config.authFailuresPerMinute, windowMs: FAILURE_WINDOW_MS });
  const auth = createAuth({
    adminKey,
    sessionsAuth: config.sessionsAuth,
    keys,
    failures: { byAddress: limiter(), byAgent: limiter() },
  });
  const keySync = createKeySync({
    store: keys,
    repo,
    clock,
    logger,
    intervalMs: config.keySyncIntervalMs,
    ...(shared ? { shared: database } : {}),
  });
  return { keys, auth, keySync };
}
