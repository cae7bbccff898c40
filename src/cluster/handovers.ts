// Runs the lease hooks: in order for each agent (its `acquired` before its `released`), a bounded number at once,
// never failing (a hook that throws is logged), and counted.
import type { Logger } from '../observability/logger.js';
import type { LeaseHooks } from './cluster.js';
import type { ClusterMetrics } from './cluster.metrics.js';

export type ReleaseReason = Parameters<LeaseHooks['released']>[1];

export class Handovers {
  private readonly chains = new Map<string, Promise<void>>();
  private readonly pending = new Set<Promise<void>>();
  private running = 0;
  private readonly queue: Array<() => void> = [];
  private acquiring = 0;

  constructor(
    private readonly hooks: LeaseHooks,
    private readonly concurrency: number,
    private readonly logger: Logger,
    private readonly metrics: ClusterMetrics,
  ) {}

  acquired(agentId: string, epoch: number): Promise<void> {
    this.metrics.clusterHandovers.inc({ reason: 'acquired' });
    this.acquiring += 1;
    return this.run(agentId, 'acquired', () => this.hooks.acquired(agentId, epoch)).finally(() => {
      this.acquiring -= 1;
    });
  }

  released(agentId: string, reason: ReleaseReason): Promise<void> {
    this.metrics.clusterHandovers.inc({ reason });
    return this.run(agentId, reason, () => this.hooks.released(agentId, reason));
  }

  /** `acquired` hooks not finished yet: leases taken that are not running yet. */
  get acquisitionsPending(): number {
    return this.acquiring;
  }

  /** Whether any hook is queued or running. */
  get busy(): boolean {
    return this.pending.size > 0;
  }

  /** Resolves once every hook called so far, and those they led to, has finished. */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  private run(agentId: string, what: string, hook: () => Promise<void>): Promise<void> {
    const previous = this.chains.get(agentId) ?? Promise.resolve();
    const task = previous
      .then(() => this.slot(hook))
      .catch((err: unknown) => {
        this.logger.error({ event: 'cluster.hook_failed', agentId, hook: what, err }, `lease hook ${what} failed`);
      });
    this.chains.set(agentId, task);
    this.pending.add(task);
    void task.then(() => {
      this.pending.delete(task);
      if (this.chains.get(agentId) === task) this.chains.delete(agentId);
    });
    return task;
  }

  private async slot(hook: () => Promise<void>): Promise<void> {
    // A finishing hook hands its slot straight to the next one waiting, so no newcomer slips in between.
    if (this.running >= this.concurrency) await new Promise<void>((resolve) => this.queue.push(resolve));
    else this.running += 1;
    try {
      await hook();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.running -= 1;
    }
  }
}
