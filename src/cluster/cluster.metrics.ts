// The metrics the cluster writes: a narrow slice of the app's, so that tests can hand it their own registry.
import type { Metrics } from '../observability/metrics.js';

export type ClusterMetrics = Pick<
  Metrics,
  'clusterMembers' | 'clusterOwnedSessions' | 'clusterHandovers' | 'clusterLeaseLosses'
>;
