// Sessions being set up stay where they are: a new agent is its creator's to claim (no other member's tick takes it
// first, which would leave it not started), and a rebalance moves neither a lease whose `acquired` hook is still
// running nor one the hooks say is being linked to a phone (docs/cluster.md, "Leases").
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterHarness, TTL_MS } from './helpers/cluster.js';
import { createTestDatabase, type TestDatabase, usingPostgres } from './helpers/database.js';

describe.skipIf(!usingPostgres())('sessions being set up are not taken or moved by a tick (PostgreSQL)', () => {
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

  it('leaves an agent created less than a TTL ago to its creator; takes it once the TTL has passed', async () => {
    const m1 = h.member('m1');
    const m2 = h.member('m2');
    await h.start(m1);
    await h.start(m2);
    // Just created, as the sessions service does before it claims the lease.
    await db.database.query(`INSERT INTO whatsapp_user (user_id, agent_id) VALUES ('u', 'fresh'), ('u', 'claimed')`);
    await h.step(3);
    expect(h.owned(m1, ['fresh']).length + h.owned(m2, ['fresh']).length).toBe(0);
    expect(await m2.cluster.claim('claimed')).toBe(true);
    expect(h.owned(m2, ['claimed'])).toEqual(['claimed']);

    // Its creator died before claiming it: once the TTL has passed, a tick takes it.
    await db.database.query(
      `UPDATE whatsapp_user SET created_at = created_at - ($1::int * interval '1 millisecond') WHERE agent_id = 'fresh'`,
      [TTL_MS],
    );
    await h.step();
    expect(h.owned(m1, ['fresh']).length + h.owned(m2, ['fresh']).length).toBe(1);
  });

  it('a rebalance gives up neither a lease whose session is being linked nor one still being set up', async () => {
    const agents = await h.addSessions(12);
    const linking = new Set(agents.slice(0, 8));
    let finish: () => void = () => {};
    const setUp = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const m1 = h.member('m1', {
      hooks: {
        // The session of 'claiming' is still being set up while its lease is held.
        acquired: (agentId: string) => (agentId === 'claiming' ? setUp : Promise.resolve()),
        movable: (agentId: string) => !linking.has(agentId),
      },
    });
    try {
      await h.start(m1);
      expect(h.owned(m1, agents)).toHaveLength(12);
      await db.database.query(`INSERT INTO whatsapp_user (user_id, agent_id) VALUES ('u', 'claiming')`);
      m1.awaitHooks = false;
      const claiming = m1.cluster.claim('claiming');
      for (let i = 0; i < 100 && h.owned(m1, ['claiming']).length === 0; i++)
        await new Promise((r) => setTimeout(r, 10));
      expect(h.owned(m1, ['claiming'])).toEqual(['claiming']);
      const m2 = h.member('m2');
      await h.start(m2);
      await h.step(6);
      // m1, at 13 for a share of 7, gave up only the 4 newest it could: neither 'claiming' nor those being linked.
      const released = h.handovers.filter((x) => x.kind === 'released').map((x) => x.agentId);
      expect(released.sort()).toEqual(agents.slice(8).sort());
      expect(h.owned(m1, [...agents, 'claiming']).sort()).toEqual([...linking, 'claiming'].sort());

      // Set up and linked: now they move, down to m1's share.
      linking.clear();
      finish();
      expect(await claiming).toBe(true);
      m1.awaitHooks = true;
      await h.step(6);
      const all = [...agents, 'claiming'];
      expect(h.owned(m1, all).length + h.owned(m2, all).length).toBe(13);
      expect(Math.abs(h.owned(m1, all).length - h.owned(m2, all).length)).toBeLessThanOrEqual(1);
      h.expectEpochsIncrease();
    } finally {
      finish();
    }
  });
});
