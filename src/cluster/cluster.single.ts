// The cluster of one (PGlite): this process owns every session, with epoch 0, and nothing ever moves. It calls no
// hook: the sessions service restores sessions at boot and stops them at shutdown as it always has.
import type { Cluster, MemberView } from './cluster.js';
import type { ClusterMetrics } from './cluster.metrics.js';

export interface SingleClusterOptions {
  instanceId: string;
  url: string | null;
  maxSessions: number | null;
  /** Sessions that exist: all of them are this member's. */
  countSessions(): Promise<number>;
  metrics?: Pick<ClusterMetrics, 'clusterMembers'>;
}

export function createSingleCluster(options: SingleClusterOptions): Cluster {
  const { instanceId, url, maxSessions, countSessions } = options;
  return {
    instanceId,
    single: true,
    async start() {
      options.metrics?.clusterMembers.set(1);
    },
    async stop() {},
    epochOf: () => 0,
    claim: async () => true,
    ownerOf: async () => ({ instanceId, url }),
    async forget() {},
    async members(): Promise<MemberView[]> {
      const sessions = await countSessions();
      return [{ instanceId, url, maxSessions, heartbeatAgeMs: 0, live: true, sessions, self: true }];
    },
  };
}
