// Builds the cluster the database calls for: leases on PostgreSQL, the cluster of one on PGlite.
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import type { Logger } from '../observability/logger.js';
import type { Cluster } from './cluster.js';
import type { ClusterMetrics } from './cluster.metrics.js';
import { createPgCluster } from './cluster.pg.js';
import { createClusterRepository } from './cluster.repository.js';
import { createSingleCluster } from './cluster.single.js';

export interface ClusterModuleDeps {
  config: Pick<Config, 'instanceId' | 'instanceUrl' | 'maxSessions' | 'leaseTtlMs' | 'shutdownTimeoutMs'>;
  database: Database;
  clock: Clock;
  logger: Logger;
  metrics: ClusterMetrics;
}

export function createCluster({ config, database, clock, logger, metrics }: ClusterModuleDeps): Cluster {
  const member = {
    instanceId: config.instanceId,
    url: config.instanceUrl ?? null,
    maxSessions: config.maxSessions ?? null,
  };
  if (database.kind === 'pglite') {
    const repo = createClusterRepository(database);
    return createSingleCluster({ ...member, countSessions: () => repo.countSessions(), metrics });
  }
  return createPgCluster({
    ...member,
    database,
    clock,
    logger,
    metrics,
    leaseTtlMs: config.leaseTtlMs,
    // Part of the shutdown budget; the engines, the outbox and the database close after the cluster.
    stopTimeoutMs: Math.round(config.shutdownTimeoutMs / 3),
  });
}
