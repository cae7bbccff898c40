// The leases this member holds, each valid until a time of the local clock; when that time passes, the lease is
// dropped here and reported, whether or not the database has answered since (docs/cluster.md, "Local validity").
import type { Clock, Timer } from '../clock.js';
import type { HeldLeaseRef } from './cluster.repository.js';

export interface HeldLease {
  readonly agentId: string;
  readonly epoch: number;
  /** Local clock time at which the lease stops counting as held. */
  validUntil: number;
  /** Being given up (its `released` hook runs): still renewed, no longer usable. */
  releasing: boolean;
  /** Its `acquired` hook has finished (a lease whose session is still being set up is not moved for a rebalance). */
  adopted: boolean;
}

export class HeldLeases {
  private readonly leases = new Map<string, HeldLease>();
  private timer: Timer | null = null;
  private timerAt = Number.POSITIVE_INFINITY;

  constructor(
    private readonly clock: Clock,
    /** Called for each lease whose validity has ended, after it was dropped. */
    private readonly onExpired: (lease: HeldLease) => void,
    /** Called after every change of the set (for the owned-sessions gauge). */
    private readonly onChange: () => void = () => {},
  ) {}

  /** The epoch while the lease is held, not being given up, and valid by the local clock; else null. O(1). */
  epochOf(agentId: string): number | null {
    const lease = this.leases.get(agentId);
    if (!lease || lease.releasing || this.clock.now() >= lease.validUntil) return null;
    return lease.epoch;
  }

  get(agentId: string): HeldLease | undefined {
    return this.leases.get(agentId);
  }

  add(agentId: string, epoch: number, validUntil: number): HeldLease {
    const lease: HeldLease = { agentId, epoch, validUntil, releasing: false, adopted: false };
    this.leases.set(agentId, lease);
    this.changed();
    return lease;
  }

  /** Drops the lease, if it is still this one. */
  delete(lease: HeldLease): boolean {
    if (this.leases.get(lease.agentId) !== lease) return false;
    this.leases.delete(lease.agentId);
    this.changed();
    return true;
  }

  /** Every lease, those being given up included: what a renewal sends. */
  snapshot(): HeldLeaseRef[] {
    return [...this.leases.values()].map(({ agentId, epoch }) => ({ agentId, epoch }));
  }

  all(): HeldLease[] {
    return [...this.leases.values()];
  }

  /** Leases held and not being given up. */
  owned(): number {
    let count = 0;
    for (const lease of this.leases.values()) if (!lease.releasing) count += 1;
    return count;
  }

  /** Leases in the order they were taken, newest first, that are not being given up (and pass `filter`). */
  newest(count: number, filter: (lease: HeldLease) => boolean = () => true): HeldLease[] {
    const all = [...this.leases.values()];
    const found: HeldLease[] = [];
    for (let i = all.length - 1; i >= 0 && found.length < count; i--) {
      const lease = all[i] as HeldLease;
      if (!lease.releasing && filter(lease)) found.push(lease);
    }
    return found;
  }

  /** Extends the validity of these leases (those still held at the same epoch) to `validUntil`. */
  extend(refs: HeldLeaseRef[], validUntil: number): void {
    for (const ref of refs) {
      const lease = this.leases.get(ref.agentId);
      if (lease && lease.epoch === ref.epoch && validUntil > lease.validUntil) lease.validUntil = validUntil;
    }
    this.changed();
  }

  /** Drops and reports every lease whose validity has ended. */
  expireDue(): void {
    const now = this.clock.now();
    const due = [...this.leases.values()].filter((lease) => lease.validUntil <= now);
    for (const lease of due) this.leases.delete(lease.agentId);
    if (due.length > 0) this.changed();
    for (const lease of due) this.onExpired(lease);
  }

  /** Drops every lease without reporting any; returns them. */
  clear(): HeldLease[] {
    const all = this.all();
    this.leases.clear();
    this.changed();
    return all;
  }

  get size(): number {
    return this.leases.size;
  }

  /** One timer, at the soonest end of validity. */
  private changed(): void {
    let soonest = Number.POSITIVE_INFINITY;
    for (const lease of this.leases.values()) soonest = Math.min(soonest, lease.validUntil);
    if (soonest !== this.timerAt) {
      this.timer?.cancel();
      this.timer = null;
      this.timerAt = soonest;
      if (Number.isFinite(soonest)) {
        this.timer = this.clock.setTimeout(
          () => {
            this.timer = null;
            this.timerAt = Number.POSITIVE_INFINITY;
            this.expireDue();
            this.changed();
          },
          Math.max(0, soonest - this.clock.now()),
          { background: true },
        );
      }
    }
    this.onChange();
  }
}
