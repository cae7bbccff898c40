// Several cluster members in one process on one PostgreSQL database, each on its own FakeClock, with hooks that
// record every handover. Time moves for the members (their clocks) and for the database at once: the database's
// clock cannot be moved, so its stored times move back instead, which is the same thing to every statement.
import { Writable } from 'node:stream';
import { expect } from 'vitest';
import { FakeClock } from '../../src/__fixtures__/fake-clock.js';
import type { LeaseHooks } from '../../src/cluster/cluster.js';
import { createPgCluster, type PgCluster, type PgClusterOptions } from '../../src/cluster/cluster.pg.js';
import type { Database } from '../../src/db/client.js';
import { createLogger } from '../../src/observability/logger.js';
import { createMetrics } from '../../src/observability/metrics.js';

export const TTL_MS = 10_000;
export const PERIOD_MS = Math.floor(TTL_MS / 3);

export type Handover =
  | { member: string; kind: 'acquired'; agentId: string; epoch: number }
  | {
      member: string;
      kind: 'released';
      agentId: string;
      reason: string;
      /** The lease row when the hook ran: a lease is given up in the table only after its hook. */
      row: { owner: string | null; epoch: number } | null;
    };

export interface Member {
  id: string;
  cluster: PgCluster;
  clock: FakeClock;
  metrics: ReturnType<typeof createMetrics>;
  /** False once the test let it die: its clock no longer moves. */
  alive: boolean;
  hooks: LeaseHooks;
  /** False while the test holds its hooks: time moves on without waiting for them. */
  awaitHooks: boolean;
}

export interface MemberOptions extends Partial<Omit<PgClusterOptions, 'clock' | 'logger' | 'metrics'>> {
  hooks?: Partial<LeaseHooks>;
}

export class ClusterHarness {
  readonly members: Member[] = [];
  readonly handovers: Handover[] = [];
  readonly logs: Record<string, unknown>[] = [];
  /** Fake time shared by the members' clocks (each member gets its own clock, set to this when it is added). */
  now = Date.UTC(2026, 0, 1);

  constructor(readonly database: Database) {}

  async addSessions(count: number, prefix = 'agent'): Promise<string[]> {
    const ids = Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(3, '0')}`);
    await this.database.query(
      // Created an hour ago: a row younger than a TTL without a lease is its creator's to claim first.
      `INSERT INTO whatsapp_user (user_id, agent_id, created_at)
       SELECT 'user', unnest($1::text[]), now() - interval '1 hour' ON CONFLICT DO NOTHING`,
      [ids],
    );
    return ids;
  }

  member(id: string, options: MemberOptions = {}): Member {
    const clock = new FakeClock(this.now);
    const metrics = createMetrics({ perAgent: false, collectProcessMetrics: false });
    const logger = createLogger({
      level: 'debug',
      destination: new Writable({
        write: (chunk: Buffer, _encoding, callback) => {
          for (const line of chunk.toString('utf8').split('\n')) if (line) this.logs.push(JSON.parse(line));
          callback();
        },
      }),
    });
    const { hooks, ...rest } = options;
    const cluster = createPgCluster({
      database: this.database,
      instanceId: id,
      url: `http://${id}.test`,
      maxSessions: null,
      leaseTtlMs: TTL_MS,
      // The tests move the clock one tick at a time and count the ticks: no tick outside them.
      tickOnAnnounce: false,
      ...rest,
      clock,
      logger,
      metrics,
    });
    const member: Member = {
      id,
      cluster,
      clock,
      metrics,
      alive: true,
      hooks: this.recordingHooks(id, hooks),
      awaitHooks: true,
    };
    this.members.push(member);
    return member;
  }

  async start(member: Member): Promise<void> {
    await member.cluster.start(member.hooks);
  }

  /** Moves time by `ms` for the database and for every live member, then waits until each has settled. */
  async advance(ms: number): Promise<void> {
    const back = `interval '${Math.round(ms)} milliseconds'`;
    await this.database.query(
      `UPDATE session_leases SET expires_at = expires_at - ${back};
       UPDATE cluster_members SET heartbeat_at = heartbeat_at - ${back}, started_at = started_at - ${back}`,
    );
    this.now += ms;
    const live = this.members.filter((m) => m.alive);
    await Promise.all(live.map((m) => m.clock.advance(ms)));
    await Promise.all(live.map((m) => m.cluster.idle({ hooks: m.awaitHooks })));
  }

  /** One tick of every live member, checking the invariants after it. */
  async step(count = 1): Promise<void> {
    for (let i = 0; i < count; i++) {
      await this.advance(PERIOD_MS);
      await this.checkOwnership();
    }
  }

  /** Leases each live member holds by its own clock. */
  owned(member: Member, agentIds: string[]): string[] {
    return agentIds.filter((agentId) => member.cluster.epochOf(agentId) !== null);
  }

  /**
   * Never two owners: no agent is held (valid by the holder's clock) by two members, and what a member holds, the
   * table says it holds, at the same epoch.
   */
  async checkOwnership(): Promise<void> {
    const rows = await this.database.query(
      'SELECT agent_id, owner, epoch::int AS epoch, expires_at > now() AS live FROM session_leases',
    );
    const table = new Map(rows.map((row) => [String(row.agent_id), row]));
    const holders = new Map<string, string>();
    for (const member of this.members) {
      for (const [agentId, row] of table) {
        const epoch = member.cluster.epochOf(agentId);
        if (epoch === null || !member.alive) continue;
        expect(holders.get(agentId), `${agentId} held by ${holders.get(agentId)} and ${member.id}`).toBeUndefined();
        holders.set(agentId, member.id);
        expect({ agentId, owner: row.owner, epoch: row.epoch, live: row.live }).toEqual({
          agentId,
          owner: member.id,
          epoch,
          live: true,
        });
      }
    }
  }

  /** For each agent, the epochs it was acquired with, in order: they must only go up. */
  expectEpochsIncrease(): void {
    const epochs = new Map<string, number[]>();
    for (const h of this.handovers) {
      if (h.kind !== 'acquired') continue;
      epochs.set(h.agentId, [...(epochs.get(h.agentId) ?? []), h.epoch]);
    }
    for (const [agentId, list] of epochs) {
      const sorted = [...list].sort((a, b) => a - b);
      expect({ agentId, list }).toEqual({ agentId, list: sorted });
      expect(new Set(list).size, `${agentId} acquired twice at one epoch: ${list}`).toBe(list.length);
    }
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.members.map((m) => m.cluster.stop()));
  }

  private recordingHooks(member: string, overrides: Partial<LeaseHooks> = {}): LeaseHooks {
    return {
      acquired: async (agentId, epoch) => {
        this.handovers.push({ member, kind: 'acquired', agentId, epoch });
        await overrides.acquired?.(agentId, epoch);
      },
      released: async (agentId, reason) => {
        const handover: Handover = { member, kind: 'released', agentId, reason, row: null };
        this.handovers.push(handover);
        const [row] = await this.database.query(
          'SELECT owner, epoch::int AS epoch FROM session_leases WHERE agent_id = $1',
          [agentId],
        );
        if (row) handover.row = { owner: row.owner === null ? null : String(row.owner), epoch: Number(row.epoch) };
        await overrides.released?.(agentId, reason);
      },
      ...(overrides.movable ? { movable: overrides.movable } : {}),
    };
  }
}
