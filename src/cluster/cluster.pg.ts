// The cluster on PostgreSQL (docs/cluster.md): one tick every LEASE_TTL_MS / 3 heartbeats, renews this member's
// leases, and moves a bounded number of them towards the fair shares; the hooks run beside the ticks, never blocking
// a renewal.
import { randomUUID } from 'node:crypto';
import type { Clock, Timer } from '../clock.js';
import type { Database } from '../db/client.js';
import type { Logger } from '../observability/logger.js';
import type { Cluster, LeaseHooks } from './cluster.js';
import type { ClusterMetrics } from './cluster.metrics.js';
import { createClusterRepository } from './cluster.repository.js';
import { fairShares, planMoves, someoneShort } from './fair-share.js';
import { LeaseKeeper } from './lease-keeper.js';

export interface PgClusterOptions {
  database: Database;
  clock: Clock;
  logger: Logger;
  metrics: ClusterMetrics;
  instanceId: string;
  url: string | null;
  maxSessions: number | null;
  leaseTtlMs: number;
  /** Free leases one tick may take, less the `acquired` hooks still running (20). */
  maxAcquiresPerTick?: number;
  /** Leases one tick may give up to rebalance, less those still being given up (5): bounds the churn. */
  maxReleasesPerTick?: number;
  /** Hooks running at once (8). */
  handoverConcurrency?: number;
  /** Longest stop() waits for the `released` hooks before it leaves the rest to expire (5 s). */
  stopTimeoutMs?: number;
  /**
   * Tick as soon as something frees leases, not only at the period (true): another member announces a change
   * (leases let go, a member joined or left), a silent member's leases expire, or a tick took its limit while more
   * free leases wait. Tests that count ticks turn it off.
   */
  tickOnAnnounce?: boolean;
}

export interface PgCluster extends Cluster {
  /** One tick now (the timer calls the same); resolves when its statements are done, not its hooks. */
  tick(): Promise<void>;
  /** Resolves once no tick runs and every hook called so far has finished (`hooks: false`: once no tick runs). */
  idle(options?: { hooks?: boolean }): Promise<void>;
}

/**
 * Where a member says that leases were let go (a rebalance, a shutdown) or that it joined: the others tick at once
 * instead of at their next period, so that a session moves in about the time its start takes. Payload: the member.
 */
const CHANGE_CHANNEL = 'wamt_cluster';
/** The pause before a tick that took its limit of leases goes again for more. */
const CATCH_UP_PAUSE_MS = 100;

/** Renewals per TTL: three, so that one missed renewal loses nothing (see localValidityMs). */
export const renewIntervalMs = (ttlMs: number): number => Math.floor(ttlMs / 3);

export function createPgCluster(options: PgClusterOptions): PgCluster {
  const { clock, metrics, instanceId, maxSessions, leaseTtlMs: ttl } = options;
  const logger = options.logger.child({ instanceId });
  const repo = createClusterRepository(options.database);
  const registration = { instanceId, incarnation: randomUUID(), url: options.url, maxSessions, ttlMs: ttl };
  const periodMs = renewIntervalMs(ttl);
  /** Rows of gone members stay visible in GET /cluster this long. */
  const forgetAfterMs = Math.max(6 * ttl, 60_000);
  const maxAcquires = options.maxAcquiresPerTick ?? 20;
  const maxReleases = options.maxReleasesPerTick ?? 5;
  const eager = options.tickOnAnnounce ?? true;
  const keeper = new LeaseKeeper({
    clock,
    logger,
    metrics,
    ttlMs: ttl,
    release: async (leases) => {
      await repo.release(instanceId, leases);
      announce();
    },
  });
  const { held } = keeper;

  let phase: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  let joined = false;
  let failing = false;
  let timer: Timer | null = null;
  let ticking: Promise<void> | null = null;
  /** A change was announced while a tick ran, which may have read the table before it: tick once more. */
  let tickAgain = false;
  /** Set for the moment the leases of a member that stopped heartbeating expire: they are taken then. */
  let expiryTimer: Timer | null = null;
  /** Set while a tick that took as many leases as it may waits to go again (more free ones are waiting). */
  let catchUpTimer: Timer | null = null;
  let unlisten: (() => Promise<void>) | null = null;
  let stopping: Promise<void> | null = null;
  const claims = new Map<string, Promise<boolean>>();

  async function balance(): Promise<void> {
    await keeper.clearAbandoned();
    const state = await repo.state(instanceId, ttl, forgetAfterMs, Math.round(periodMs * 1.5));
    metrics.clusterMembers.set(state.members.length);
    for (const agentId of state.orphans) {
      const lease = held.get(agentId);
      if (lease && !lease.releasing) void keeper.giveUp(lease, 'deleted');
    }
    const shares = fairShares(state.sessions, state.members);
    const plan = planMoves({
      owned: held.owned(),
      share: shares.get(instanceId) ?? 0,
      maxSessions,
      free: state.free,
      othersShort: someoneShort(instanceId, shares, state.owned),
      maxAcquires: Math.max(0, maxAcquires - keeper.acquisitionsPending),
      maxReleases: Math.max(0, maxReleases - keeper.releasesPending),
    });
    for (const lease of keeper.movable(plan.release)) void keeper.giveUp(lease, 'rebalance');
    if (plan.acquire > 0) {
      const startedAt = clock.now();
      const taken = await repo.acquire(instanceId, ttl, plan.acquire);
      const adopted = taken.map((ref) => keeper.adopt(ref, startedAt));
      // As many as one tick may take, and more wait (a member died, or left): once these run, take the next ones,
      // rather than a period later. The per-tick bound still paces the starts; the short pause bounds the rate.
      const stillShort = (shares.get(instanceId) ?? 0) - held.owned() > 0 && state.free > taken.length;
      if (eager && taken.length === plan.acquire && stillShort && !catchUpTimer) {
        void Promise.all(adopted).then(() => {
          if (phase !== 'running') return;
          catchUpTimer = clock.setTimeout(
            () => {
              catchUpTimer = null;
              tickSoon();
            },
            CATCH_UP_PAUSE_MS,
            { background: true },
          );
        });
      }
    }
    // The leases of a member that stopped heartbeating (killed, partitioned) are taken the moment they expire.
    if (eager && state.staleExpiryMs !== null) {
      expiryTimer?.cancel();
      expiryTimer = clock.setTimeout(
        () => {
          expiryTimer = null;
          tickSoon();
        },
        Math.max(0, state.staleExpiryMs) + 20,
        { background: true },
      );
    }
  }

  /** A tick now, or right after the one running (which may have read the table too early). */
  function tickSoon(): void {
    if (phase !== 'running') return;
    if (ticking) tickAgain = true;
    else void tick();
  }

  async function runTick(): Promise<void> {
    held.expireDue();
    const sent = held.snapshot();
    const startedAt = clock.now();
    try {
      const beat = await repo.heartbeat(registration, sent);
      if (!beat.registered) {
        if (joined) {
          joined = false;
          logger.error(
            { event: 'cluster.instance_id_taken' },
            `another process took INSTANCE_ID ${instanceId}: this one gives up every lease; give each its own id`,
          );
          keeper.loseAll('instance_taken');
        }
        return;
      }
      if (!joined) {
        await repo.disown(instanceId);
        joined = true;
      }
      keeper.renewed(sent, beat.renewed, startedAt);
      if (phase === 'running') await balance();
      if (failing) logger.info({ event: 'cluster.tick_recovered' }, 'the cluster tick works again');
      failing = false;
    } catch (err) {
      logger[failing ? 'debug' : 'warn'](
        { event: 'cluster.tick_failed', err },
        'cluster tick failed: held leases stay usable until their local validity ends; retrying next tick',
      );
      failing = true;
    }
  }

  function tick(): Promise<void> {
    ticking ??= runTick().finally(() => {
      ticking = null;
      if (tickAgain && phase === 'running') {
        tickAgain = false;
        void tick();
      }
    });
    return ticking;
  }

  /** Tells the other members that leases are free to take (or shares changed); best effort, the ticks catch up. */
  function announce(): void {
    options.database
      .query('SELECT pg_notify($1, $2)', [CHANGE_CHANNEL, instanceId])
      .catch((err: unknown) => logger.debug({ event: 'cluster.announce_failed', err }));
  }

  function onAnnounced(from: string): void {
    if (from !== instanceId) tickSoon();
  }

  /** Registers this member; waits (up to a TTL and a tick) for a row of the same INSTANCE_ID to go stale. */
  async function join(): Promise<void> {
    const giveUpAt = clock.now() + ttl + periodMs;
    for (;;) {
      const beat = await repo.heartbeat(registration, []);
      if (beat.registered) break;
      if (clock.now() >= giveUpAt) {
        throw new Error(
          `INSTANCE_ID "${instanceId}" is in use by another live process of this cluster: give each process its own ` +
            'INSTANCE_ID (the default, host name and pid, is unique).',
        );
      }
      await new Promise<void>((resolve) => clock.setTimeout(resolve, periodMs));
      if (phase !== 'starting') return;
    }
    await repo.disown(instanceId);
    joined = true;
    logger.info({ event: 'cluster.joined', url: options.url, maxSessions, leaseTtlMs: ttl }, 'joined the cluster');
  }

  async function leave(): Promise<void> {
    await ticking;
    await Promise.allSettled([...claims.values()]);
    const rest = await keeper.releaseAll();
    await ticking; // a renewal that was under way while the hooks ran
    timer?.cancel();
    try {
      await repo.release(instanceId, rest);
      await repo.leave(instanceId, registration.incarnation);
      announce();
      logger.info({ event: 'cluster.left', released: rest.length }, 'left the cluster');
    } catch (err) {
      logger.warn(
        { event: 'cluster.leave_failed', err },
        'could not clear the leases: they expire within LEASE_TTL_MS',
      );
    }
  }

  const cluster: PgCluster = {
    instanceId,
    single: false,
    async start(hooks: LeaseHooks) {
      if (phase !== 'new') throw new Error('the cluster was already started');
      phase = 'starting';
      keeper.useHooks(hooks, options.handoverConcurrency ?? 8);
      await join();
      if (phase !== 'starting') return;
      if (eager) unlisten = await options.database.listen(CHANGE_CHANNEL, onAnnounced);
      phase = 'running';
      timer = clock.setInterval(() => void tick(), periodMs, { background: true });
      await tick();
      // The others make room for this member now rather than at their next tick.
      announce();
      await keeper.idle();
    },
    stop() {
      if (phase === 'new' || phase === 'stopped') {
        phase = 'stopped';
        return Promise.resolve();
      }
      stopping ??= (async () => {
        phase = 'stopping';
        let deadline: Timer | undefined;
        const timedOut = new Promise<'timeout'>((resolve) => {
          deadline = clock.setTimeout(() => resolve('timeout'), options.stopTimeoutMs ?? 5_000, { background: true });
        });
        const outcome = await Promise.race([leave().then(() => 'left' as const), timedOut]);
        deadline?.cancel();
        timer?.cancel();
        expiryTimer?.cancel();
        catchUpTimer?.cancel();
        await unlisten?.().catch(() => undefined);
        if (outcome === 'timeout') {
          logger.warn({ event: 'cluster.stop_timeout' }, 'stopping took too long: the leases left expire on their own');
        }
        phase = 'stopped';
      })();
      return stopping;
    },
    epochOf: (agentId) => held.epochOf(agentId),
    claim(agentId) {
      if (phase !== 'running' || !joined) return Promise.resolve(false);
      if (held.get(agentId)) return Promise.resolve(held.epochOf(agentId) !== null);
      let pending = claims.get(agentId);
      if (!pending) {
        pending = (async () => {
          const startedAt = clock.now();
          const epoch = await repo.claim(instanceId, ttl, agentId);
          if (epoch === null) return false;
          await keeper.adopt({ agentId, epoch }, startedAt);
          return held.epochOf(agentId) !== null;
        })().finally(() => claims.delete(agentId));
        claims.set(agentId, pending);
      }
      return pending;
    },
    ownerOf: (agentId) => repo.ownerOf(agentId),
    async forget(agentId) {
      const lease = held.get(agentId);
      try {
        if (lease) await keeper.releaseForDeletion(lease);
        await repo.forget(agentId);
      } finally {
        if (lease) held.delete(lease);
      }
    },
    async members() {
      const rows = await repo.members(ttl);
      return rows.map((row) => ({ ...row, self: row.instanceId === instanceId }));
    },
    tick,
    async idle({ hooks = true } = {}) {
      while (ticking || (hooks && keeper.busy)) {
        await ticking;
        if (hooks) await keeper.idle();
      }
    },
  };
  return cluster;
}
