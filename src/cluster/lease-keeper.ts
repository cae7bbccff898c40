// What a member does with the leases it holds, whatever the tick found: take one (its `acquired` hook), give one up
// (hook first, then the row), lose one (its `released` hook with 'lost'); every lease's local validity is kept here.
import type { Clock } from '../clock.js';
import type { Logger } from '../observability/logger.js';
import type { LeaseHooks } from './cluster.js';
import type { ClusterMetrics } from './cluster.metrics.js';
import type { HeldLeaseRef } from './cluster.repository.js';
import { Handovers } from './handovers.js';
import { type HeldLease, HeldLeases } from './held-leases.js';

/**
 * How long a lease counts as held, from the local time at which its renew (or acquire) statement began: TTL minus a
 * margin of TTL / 6. The database's expiry is at least TTL after that moment (its now() is read after the statement
 * left), so the member stops using a lease TTL / 6 before anyone else may take it: room for clock-rate drift, a send
 * that passed its check just before, and a stop that takes a moment. The margin is below TTL / 3 on purpose: with a
 * renewal every TTL / 3, a lease renewed at t stays valid until t + 5/6 TTL, past the renewal after next (t + 2/3
 * TTL), so one failed or skipped tick loses nothing as long as the next one answers within TTL / 6. A margin of TTL /
 * 3 would end validity exactly when the renewal after next begins: every single failed tick would drop every session.
 */
export const localValidityMs = (ttlMs: number): number => ttlMs - Math.ceil(ttlMs / 6);

export type LossCause = 'expired' | 'not_renewed' | 'instance_taken';

export interface LeaseKeeperOptions {
  clock: Clock;
  logger: Logger;
  metrics: ClusterMetrics;
  ttlMs: number;
  /** Clears the owner of these leases in the table, where this member still holds them at that epoch. */
  release(leases: HeldLeaseRef[]): Promise<void>;
}

export class LeaseKeeper {
  readonly held: HeldLeases;
  private handovers: Handovers | null = null;
  private movableByHooks: LeaseHooks['movable'];
  /** Leases given up (hooks done) whose row may still name this member: cleared at the next tick. */
  private readonly abandoned: HeldLeaseRef[] = [];
  /** Releases under way (hook, then the row). */
  private readonly moves = new Set<Promise<void>>();
  private readonly validForMs: number;

  constructor(private readonly options: LeaseKeeperOptions) {
    this.validForMs = localValidityMs(options.ttlMs);
    this.held = new HeldLeases(
      options.clock,
      (lease) => this.lost(lease, 'expired'),
      () => options.metrics.clusterOwnedSessions.set(this.held.size),
    );
  }

  /** From start() on, handovers call these hooks, at most `concurrency` at once. */
  useHooks(hooks: LeaseHooks, concurrency: number): void {
    this.handovers = new Handovers(hooks, concurrency, this.options.logger, this.options.metrics);
    this.movableByHooks = hooks.movable?.bind(hooks);
  }

  /**
   * Up to `count` leases a rebalance may give up, newest first: not being given up already, set up (their `acquired`
   * hook has finished), and movable by the hooks' say (a session being linked to a phone stays).
   */
  movable(count: number): HeldLease[] {
    const movable = this.movableByHooks;
    return this.held.newest(count, (lease) => lease.adopted && (movable?.(lease.agentId) ?? true));
  }

  get acquisitionsPending(): number {
    return this.handovers?.acquisitionsPending ?? 0;
  }

  /** Leases being given up (hook, then the row). */
  get releasesPending(): number {
    return this.moves.size;
  }

  get busy(): boolean {
    return this.moves.size > 0 || (this.handovers?.busy ?? false);
  }

  /** Resolves once every give-up and every hook under way has finished. */
  async idle(): Promise<void> {
    while (this.busy) {
      await Promise.all([...this.moves]);
      await this.handovers?.idle();
    }
  }

  /** This member now holds the lease: valid from `startedAt` (when its statement began); calls `acquired`. */
  adopt(ref: HeldLeaseRef, startedAt: number): Promise<void> {
    const existing = this.held.get(ref.agentId);
    if (existing && this.held.delete(existing)) this.lost(existing, 'not_renewed');
    const lease = this.held.add(ref.agentId, ref.epoch, startedAt + this.validForMs);
    this.options.logger.info({ event: 'cluster.acquired', agentId: ref.agentId, epoch: ref.epoch }, 'lease acquired');
    const setUp = this.handovers ? this.handovers.acquired(ref.agentId, ref.epoch) : Promise.resolve();
    return setUp.then(() => {
      lease.adopted = true;
    });
  }

  /** What a renew statement that began at `startedAt` answered for the leases `sent`. */
  renewed(sent: HeldLeaseRef[], answer: Set<string>, startedAt: number): void {
    this.held.extend(
      sent.filter((ref) => answer.has(ref.agentId)),
      startedAt + this.validForMs,
    );
    for (const ref of sent) {
      const lease = this.held.get(ref.agentId);
      if (!answer.has(ref.agentId) && lease?.epoch === ref.epoch && this.held.delete(lease)) {
        this.lost(lease, 'not_renewed');
      }
    }
    // A renewal that answered after its own validity ended extends nothing.
    this.held.expireDue();
  }

  /** Stops using the lease, runs the `released` hook, then clears the row (same epoch); renewed meanwhile. */
  giveUp(lease: HeldLease, reason: 'rebalance' | 'deleted'): Promise<void> {
    const { logger } = this.options;
    lease.releasing = true;
    logger.info({ event: 'cluster.released', agentId: lease.agentId, epoch: lease.epoch, reason }, 'lease released');
    const move = (async () => {
      await this.handovers?.released(lease.agentId, reason);
      if (this.held.get(lease.agentId) !== lease) return; // lost meanwhile
      const ref = { agentId: lease.agentId, epoch: lease.epoch };
      try {
        await this.options.release([ref]);
      } catch (err) {
        this.abandoned.push(ref);
        logger.warn({ event: 'cluster.release_failed', agentId: lease.agentId, err }, 'could not clear a lease');
      } finally {
        this.held.delete(lease);
      }
    })();
    this.moves.add(move);
    void move.finally(() => this.moves.delete(move));
    return move;
  }

  /** Calls `released` for the lease, when nothing else does; `forget` awaits it before it deletes the row. */
  releaseForDeletion(lease: HeldLease): Promise<void> {
    if (lease.releasing || !this.handovers) return Promise.resolve();
    lease.releasing = true;
    return this.handovers.released(lease.agentId, 'deleted');
  }

  /** Every lease goes, reported lost (another process took this member's INSTANCE_ID). */
  loseAll(cause: LossCause): void {
    for (const lease of this.held.clear()) this.lost(lease, cause);
  }

  /** Shutdown: `released` for every lease still held, awaited; returns the leases to clear in the table. */
  async releaseAll(): Promise<HeldLeaseRef[]> {
    for (const lease of this.held.all()) {
      if (lease.releasing) continue;
      lease.releasing = true;
      void this.handovers?.released(lease.agentId, 'shutdown');
    }
    await this.idle();
    const rest = this.held.clear().map(({ agentId, epoch }) => ({ agentId, epoch }));
    return [...rest, ...this.abandoned.splice(0)];
  }

  /** Clears the rows of leases given up earlier whose statement failed then; keeps them for later if it fails again. */
  async clearAbandoned(): Promise<void> {
    if (this.abandoned.length === 0) return;
    const refs = this.abandoned.splice(0);
    try {
      await this.options.release(refs);
    } catch (err) {
      this.abandoned.push(...refs);
      throw err;
    }
  }

  private lost(lease: HeldLease, cause: LossCause): void {
    // A lease being given up has its hook running already, and may just have been cleared in the table (which a
    // renewal then misses): it goes quietly; the release that follows checks the epoch.
    if (lease.releasing) return;
    this.options.metrics.clusterLeaseLosses.inc();
    this.options.logger.warn(
      { event: 'cluster.lease_lost', agentId: lease.agentId, epoch: lease.epoch, cause },
      'lease lost',
    );
    if (!this.handovers) return;
    void this.handovers.released(lease.agentId, 'lost').then(() => {
      // Another process that took this INSTANCE_ID owns the rows that name it now.
      if (cause !== 'instance_taken') this.abandoned.push({ agentId: lease.agentId, epoch: lease.epoch });
    });
  }
}
