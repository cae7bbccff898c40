// Session leases among several members on one PostgreSQL database (docs/cluster.md): fair shares, bounded moves, no
// flapping, handover on stop, on death and on a database that fails one member; never two owners at once.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fairShares } from '../src/cluster/fair-share.js';
import { ClusterHarness, PERIOD_MS, TTL_MS } from './helpers/cluster.js';
import { createTestDatabase, type TestDatabase, usingPostgres } from './helpers/database.js';
import { faultyDatabase } from './helpers/faulty-database.js';

describe.skipIf(!usingPostgres())('cluster leases (PostgreSQL)', () => {
  let db: TestDatabase;
  let h: ClusterHarness;

  beforeEach(async () => {
    db = await createTestDatabase();
    h = new ClusterHarness(db.database);
  });
  afterEach(async () => {
    await h.stopAll();
    await db.drop();
  });

  /** Moves time a tick at a time until `start` settles (at most 10 ticks): 'started', or the error's message. */
  async function advanceUntil(start: Promise<void>): Promise<string> {
    let outcome: string | undefined;
    const settled = start.then(
      () => {
        outcome = 'started';
      },
      (err: Error) => {
        outcome = err.message;
      },
    );
    for (let i = 0; i < 10 && outcome === undefined; i++) await h.advance(PERIOD_MS);
    await settled;
    return outcome ?? 'pending';
  }

  /**
   * Ticks until the cluster is still: every session held, and every live member within one of its share (and of
   * `target`), at most `limit` ticks; returns how many it took.
   */
  async function settle(agents: string[], target: number, limit = 30): Promise<number> {
    for (let tick = 1; tick <= limit; tick++) {
      await h.step();
      const live = h.members.filter((m) => m.alive);
      const shares = fairShares(
        agents.length,
        live.map((m) => ({ instanceId: m.id, maxSessions: null })),
      );
      const counts = live.map((m) => [h.owned(m, agents).length, shares.get(m.id) ?? 0] as const);
      const all = counts.reduce((sum, [count]) => sum + count, 0) === agents.length;
      if (all && counts.every(([count, share]) => Math.abs(count - share) <= 1 && Math.abs(count - target) <= 1)) {
        return tick;
      }
    }
    throw new Error(`no balance after ${limit} ticks`);
  }

  it('converges to fair shares with bounded moves per tick, then stays still', async () => {
    const agents = await h.addSessions(60);
    const moves = { maxAcquiresPerTick: 10, maxReleasesPerTick: 3 };
    const members = [h.member('m1', moves), h.member('m2', moves), h.member('m3', moves)];
    for (const member of members) await h.start(member);
    await h.checkOwnership();

    for (let tick = 0; tick < 30; tick++) {
      const before = h.handovers.length;
      await h.step();
      for (const member of members) {
        const mine = h.handovers.slice(before).filter((x) => x.member === member.id);
        expect(mine.filter((x) => x.kind === 'acquired').length).toBeLessThanOrEqual(10);
        expect(mine.filter((x) => x.kind === 'released').length).toBeLessThanOrEqual(3);
      }
    }
    const counts = members.map((m) => h.owned(m, agents).length);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(60);
    for (const count of counts) expect(Math.abs(count - 20)).toBeLessThanOrEqual(1);

    // Balanced: nothing moves any more.
    const before = h.handovers.length;
    await h.step(10);
    expect(h.handovers.slice(before)).toEqual([]);
    h.expectEpochsIncrease();
    // Rebalanced leases were given up in the table only after their hook, by the member still named there.
    for (const x of h.handovers) {
      if (x.kind === 'released') expect(x.row?.owner).toBe(x.member);
    }
    const view = await members[0]?.cluster.members();
    expect(view?.map((m) => [m.instanceId, m.live, m.self, m.sessions])).toEqual(
      members.map((m, i) => [m.id, true, i === 0, h.owned(m, agents).length]),
    );
  });

  it('a new member takes its share from the others, a few leases per tick', async () => {
    const agents = await h.addSessions(40);
    const m1 = h.member('m1');
    const m2 = h.member('m2');
    await h.start(m1);
    await h.start(m2);
    await settle(agents, 20);
    const m3 = h.member('m3');
    await h.start(m3);
    const from = h.handovers.length;
    const ticks = await settle(agents, 14);
    expect(ticks).toBeGreaterThan(1); // given up 5 per tick per member, not at once
    const released = h.handovers.slice(from).filter((x) => x.kind === 'released');
    expect(released.every((x) => x.kind === 'released' && x.reason === 'rebalance')).toBe(true);
    expect(released.filter((x) => x.member === 'm1').length).toBeLessThanOrEqual(5 * ticks);
    expect(h.owned(m3, agents).length).toBeGreaterThanOrEqual(13);
    h.expectEpochsIncrease();
  });

  it('four members starting at once never hold one lease together, and share the sessions out', async () => {
    const agents = await h.addSessions(100);
    const members = ['m1', 'm2', 'm3', 'm4'].map((id) => h.member(id));
    await Promise.all(members.map((m) => h.start(m)));
    await h.checkOwnership();
    await settle(agents, 25);
    const before = h.handovers.length;
    await h.step(5);
    expect(h.handovers.length).toBe(before);
    expect(members.map((m) => h.owned(m, agents).length).reduce((a, b) => a + b, 0)).toBe(100);
    h.expectEpochsIncrease();
  });

  it('a lease being given up stays renewed, and out of use, until its hook has finished; then it moves', async () => {
    const agents = await h.addSessions(20);
    let finish: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const slow = h.member('m1', {
      hooks: { released: (_agentId, reason) => (reason === 'rebalance' ? held : Promise.resolve()) },
    });
    try {
      await h.start(slow);
      const m2 = h.member('m2');
      await h.start(m2);
      slow.awaitHooks = false;
      await h.step(); // m1, at 20 for a share of 10, gives 5 up: their hooks hang
      const giving = h.handovers.filter((x) => x.member === 'm1' && x.kind === 'released').map((x) => x.agentId);
      expect(giving).toHaveLength(5);
      await h.step(6); // two TTLs
      // No more given up while those are under way: at most 5 at once.
      expect(h.handovers.filter((x) => x.member === 'm1' && x.kind === 'released')).toHaveLength(5);
      for (const agentId of giving) expect(slow.cluster.epochOf(agentId)).toBeNull();
      const rows = await db.database.query(
        'SELECT owner, expires_at > now() AS live FROM session_leases WHERE agent_id = ANY($1)',
        [giving],
      );
      expect(rows.map((row) => [row.owner, row.live])).toEqual(giving.map(() => ['m1', true]));
      expect(h.owned(m2, agents).filter((agentId) => giving.includes(agentId))).toEqual([]);

      finish();
      slow.awaitHooks = true;
      await h.step(2);
      expect(h.owned(m2, agents).filter((agentId) => giving.includes(agentId)).length).toBeGreaterThan(0);
      await settle(agents, 10);
      h.expectEpochsIncrease();
    } finally {
      finish(); // a failed expectation must not leave stop() waiting for these hooks
    }
  });

  it('a stopped member gives its leases up at once, hooks first; the others take them next ticks', async () => {
    const agents = await h.addSessions(30);
    const [m1, m2, m3] = [h.member('m1'), h.member('m2'), h.member('m3')];
    for (const m of [m1, m2, m3]) await h.start(m);
    await settle(agents, 10);
    const held = h.owned(m3, agents);
    expect(held.length).toBeGreaterThan(0);

    await m3.cluster.stop();
    m3.alive = false;
    const shutdown = h.handovers.filter((x) => x.member === 'm3' && x.kind === 'released');
    expect(shutdown.map((x) => x.kind === 'released' && x.reason)).toEqual(held.map(() => 'shutdown'));
    for (const x of shutdown) expect(x.kind === 'released' && x.row?.owner).toBe('m3');
    const rows = await db.database.query('SELECT count(*)::int AS n FROM session_leases WHERE owner = $1', ['m3']);
    expect(rows[0]?.n).toBe(0);
    expect((await m1.cluster.members()).map((m) => m.instanceId)).toEqual(['m1', 'm2']);

    // Two members taking at once may want the same lease; one of them gets it, the other takes another next tick.
    await h.step(2);
    expect(h.owned(m1, agents).length + h.owned(m2, agents).length).toBe(30);
    h.expectEpochsIncrease();
  });

  it("with announcements on, the others take a stopped member's leases at once, before any tick of their clock", async () => {
    const agents = await h.addSessions(12);
    const [m1, m2] = [h.member('m1', { tickOnAnnounce: true }), h.member('m2', { tickOnAnnounce: true })];
    await h.start(m1);
    await h.start(m2);
    await settle(agents, 6);
    const moving = h.owned(m2, agents);
    expect(moving.length).toBeGreaterThan(0);
    await m2.cluster.stop();
    m2.alive = false;
    // No clock moves from here: only the announcement of m2's leaving can make m1 tick.
    const deadline = Date.now() + 5_000;
    while (h.owned(m1, agents).length < 12 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      await m1.cluster.idle();
    }
    expect(h.owned(m1, agents)).toEqual(expect.arrayContaining(moving));
    expect(h.owned(m1, agents).length).toBe(12);
    h.expectEpochsIncrease();
  });

  it("with eager ticks, a dead member's leases are taken the moment they expire, and past the per-tick limit", async () => {
    const agents = await h.addSessions(60);
    const [m1, m2] = [h.member('m1', { tickOnAnnounce: true }), h.member('m2', { tickOnAnnounce: true })];
    await h.start(m1);
    await h.start(m2);
    await settle(agents, 30);
    await h.step(); // both renewed at this instant: m2's leases expire one TTL from now
    m2.alive = false; // SIGKILL: no more renewals, no announcement
    let elapsed = 0;
    while (h.owned(m1, agents).length < 60 && elapsed < 3 * TTL_MS) {
      await h.advance(250);
      elapsed += 250;
    }
    expect(h.owned(m1, agents)).toHaveLength(60);
    // 30 leases, over the 20 one tick may take: taken at expiry and 100 ms later, not at m1's next periods (m1's
    // ticks fall at 3.3 s, 6.7 s, 10.0 s, 13.3 s and 16.7 s after the kill).
    expect(elapsed).toBeGreaterThanOrEqual(TTL_MS);
    expect(elapsed).toBeLessThanOrEqual(TTL_MS + 500);
    h.expectEpochsIncrease();
  });

  it("a dead member's leases go to the others once they expire, epochs going up", async () => {
    const agents = await h.addSessions(20);
    const [m1, m2] = [h.member('m1'), h.member('m2')];
    await h.start(m1);
    await h.start(m2);
    await settle(agents, 10);
    const orphaned = h.owned(m2, agents);
    m2.alive = false; // SIGKILL: no more ticks, nothing released

    // Not before its leases expire in the table.
    await h.step(2);
    expect(h.owned(m1, agents).some((agentId) => orphaned.includes(agentId))).toBe(false);
    await h.step(2);
    expect(h.owned(m1, agents)).toEqual(agents);
    const epochs = await db.database.query('SELECT agent_id, epoch::int AS epoch FROM session_leases');
    for (const row of epochs) if (orphaned.includes(String(row.agent_id))) expect(row.epoch).toBeGreaterThanOrEqual(2);
    h.expectEpochsIncrease();
    expect((await m1.cluster.members()).find((m) => m.instanceId === 'm2')?.live).toBe(false);
  });

  it('a member whose database fails keeps its leases until their local validity ends, then loses them', async () => {
    const agents = await h.addSessions(20);
    const faulty = faultyDatabase(db.database);
    const m1 = h.member('m1');
    const m2 = h.member('m2', { database: faulty.database });
    await h.start(m1);
    await h.start(m2);
    await settle(agents, 10);
    const held = h.owned(m2, agents);
    const lostBefore = h.handovers.length;

    faulty.down(/^cluster\./);
    // Validity ends 5/6 TTL after the last renewal began: through two failed ticks it still holds every lease.
    const step = PERIOD_MS / 3;
    let elapsed = 0;
    while (elapsed + step < (TTL_MS * 5) / 6 - 1) {
      await h.advance(step);
      elapsed += step;
      await h.checkOwnership();
      expect(h.owned(m2, agents)).toEqual(held);
    }
    for (let i = 0; i < 6; i++) {
      await h.advance(step);
      await h.checkOwnership();
    }
    expect(h.owned(m2, agents)).toEqual([]);
    const lost = h.handovers.slice(lostBefore).filter((x) => x.member === 'm2');
    expect(lost.map((x) => x.kind === 'released' && x.reason)).toEqual(held.map(() => 'lost'));
    expect(h.logs.some((line) => line.event === 'cluster.tick_failed' && line.instanceId === 'm2')).toBe(true);
    expect(await m2.metrics.registry.getSingleMetricAsString('whatsapp_cluster_lease_losses_total')).toMatch(
      new RegExp(`whatsapp_cluster_lease_losses_total ${held.length}$`, 'm'),
    );

    // m1 takes them once they expire in the table; m2 gets its share back once its database answers again.
    await h.step(2);
    expect(h.owned(m1, agents)).toEqual(agents);
    faulty.heal();
    await settle(agents, 10);
    h.expectEpochsIncrease();
  });

  it('claim takes a free lease at once, only for an agent that exists; forget deletes it', async () => {
    await h.addSessions(2);
    const [m1, m2] = [h.member('m1'), h.member('m2')];
    await h.start(m1);
    await h.start(m2);
    const [fresh] = await h.addSessions(1, 'fresh');
    if (!fresh) throw new Error('no agent');

    expect(await m2.cluster.claim(fresh)).toBe(true);
    expect(m2.cluster.epochOf(fresh)).toBe(1);
    expect(h.handovers.at(-1)).toEqual({ member: 'm2', kind: 'acquired', agentId: fresh, epoch: 1 });
    expect(await m1.cluster.claim(fresh)).toBe(false);
    expect(await m1.cluster.ownerOf(fresh)).toEqual({ instanceId: 'm2', url: 'http://m2.test' });
    expect(await m1.cluster.claim('no-such-agent')).toBe(false);
    // Two members claiming one free lease at once: one gets it.
    const [contested] = await h.addSessions(1, 'contested');
    if (!contested) throw new Error('no agent');
    const claimed = await Promise.all([m1.cluster.claim(contested), m2.cluster.claim(contested)]);
    expect(claimed.filter(Boolean)).toHaveLength(1);
    await h.checkOwnership();
    expect(await m1.cluster.ownerOf('no-such-agent')).toBeNull();

    await m2.cluster.forget(fresh);
    expect(m2.cluster.epochOf(fresh)).toBeNull();
    expect(h.handovers.at(-1)).toMatchObject({ member: 'm2', kind: 'released', agentId: fresh, reason: 'deleted' });
    expect(await db.database.query('SELECT 1 FROM session_leases WHERE agent_id = $1', [fresh])).toEqual([]);
  });

  it('gives up, as deleted, a lease on an agent whose row went without forget', async () => {
    const agents = await h.addSessions(3);
    const m1 = h.member('m1');
    await h.start(m1);
    expect(h.owned(m1, agents)).toEqual(agents);
    await db.database.query('DELETE FROM whatsapp_user WHERE agent_id = $1', [agents[0]]);
    await h.step(2);
    expect(h.owned(m1, agents)).toEqual(agents.slice(1));
    expect(h.handovers.at(-1)).toMatchObject({ kind: 'released', agentId: agents[0], reason: 'deleted' });
    expect(await db.database.query('SELECT 1 FROM session_leases WHERE agent_id = $1', [agents[0]])).toEqual([]);
  });

  it('refuses an INSTANCE_ID a live member has; takes over one whose process stopped answering', async () => {
    const agents = await h.addSessions(4);
    const m1 = h.member('m1');
    await h.start(m1);
    const twin = h.member('m1');
    const refused = await advanceUntil(twin.cluster.start(twin.hooks));
    expect(refused).toMatch(/INSTANCE_ID "m1" is in use by another live process/);
    h.members.splice(h.members.indexOf(twin), 1);

    m1.alive = false; // paused (SIGSTOP, a partition): a new process with its id starts meanwhile
    const heir = h.member('m1');
    expect(await advanceUntil(heir.cluster.start(heir.hooks))).toBe('started');
    await h.step();
    expect(h.owned(heir, agents)).toEqual(agents);

    // The paused process runs again: by its own clock its leases expired before any renewal could answer, and the
    // table tells it its id is taken.
    await m1.clock.advance(h.now - m1.clock.now());
    expect(h.owned(m1, agents)).toEqual([]);
    await m1.cluster.idle();
    m1.alive = true;
    await h.step(2);
    expect(h.owned(heir, agents)).toEqual(agents);
    const released = h.handovers.filter((x) => x.member === 'm1' && x.kind === 'released');
    expect(released.map((x) => x.kind === 'released' && x.reason)).toEqual(agents.map(() => 'lost'));
    expect(h.logs.some((line) => line.event === 'cluster.instance_id_taken')).toBe(true);
    h.expectEpochsIncrease();
  });

  it('stop is bounded in time: a hook that never ends leaves its lease to expire', async () => {
    const agents = await h.addSessions(2);
    const stuck = h.member('m1', { stopTimeoutMs: 1_000, hooks: { released: () => new Promise(() => {}) } });
    await h.start(stuck);
    expect(h.owned(stuck, agents)).toEqual(agents);
    const stopped = stuck.cluster.stop();
    await stuck.clock.advance(1_000);
    await stopped;
    expect(h.logs.some((line) => line.event === 'cluster.stop_timeout')).toBe(true);
    const rows = await db.database.query('SELECT owner FROM session_leases');
    expect(rows.map((row) => row.owner)).toEqual(['m1', 'm1']);
    h.members.splice(h.members.indexOf(stuck), 1);
  });
});
