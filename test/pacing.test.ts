// Pacing profiles through HTTP, on a fake clock (issue 17, item 3): PATCH /sessions/{agentId} and its validation, a
// paced send's gap and typing, another agent unaffected, the daily cap on new contacts (429 NEW_CONTACT_LIMIT, nothing
// queued; known contacts, groups and racing first messages), and a restart in the middle of a wait.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/__fixtures__/fake-clock.js';
import { createTestApp, createTestDataDir, removeDir, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase, usingPostgres } from './helpers/database.js';
import { type ConnectedAgent, connectAgent, sendText, sent, until } from './helpers/messaging.js';

const START = Date.UTC(2026, 0, 1);
const epochMs = (value: unknown): number => (value instanceof Date ? value : new Date(String(value))).getTime();
const QUICK = { minGapMs: 0, maxGapMs: 0, typingMsPerChar: 0, maxTypingMs: 0, perRecipientGapMs: 0 };
/** No waits that depend on real time; leases that the fake clock cannot make expire by accident. */
const ENV = { SEND_WAIT_MS: '0', LEASE_TTL_MS: '600000' };

describe('pacing profiles', () => {
  let db: TestDatabase;
  const apps: TestApp[] = [];
  const dirs: string[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
    await Promise.all(dirs.splice(0).map((dir) => removeDir(dir)));
  });
  afterAll(async () => {
    await db.drop();
  });

  async function build(clock = new FakeClock(START), dataDir?: string): Promise<{ t: TestApp; clock: FakeClock }> {
    const dir = dataDir ?? (await createTestDataDir());
    if (!dataDir) dirs.push(dir);
    const t = await createTestApp({ database: db.database, env: ENV, dataDir: dir, overrides: { clock } });
    apps.push(t);
    return { t, clock };
  }

  const patch = (t: TestApp, agentId: string, payload: unknown, headers = t.admin) =>
    t.app.inject({ method: 'PATCH', url: `/sessions/${agentId}`, headers, payload: payload as object });

  const row = async (id: string) =>
    (await db.database.query('SELECT status, not_before, created_at FROM outbox_messages WHERE id = $1', [id]))[0];

  describe('PATCH /sessions/{agentId}', () => {
    it('sets "human", a custom profile (missing fields from "human") and "off", shown by GET', async () => {
      const { t } = await build();
      const agent = await connectAgent(t, 'patch-bot');
      expect((await t.app.inject({ url: '/sessions/patch-bot', headers: t.admin })).json().data.pacing).toBe('off');

      const human = await patch(t, 'patch-bot', { pacing: 'human' });
      expect(human.statusCode).toBe(200);
      expect(human.json().data.pacing).toBe('human');

      // The agent's own key may change its own pacing.
      const custom = await patch(
        t,
        'patch-bot',
        { pacing: { minGapMs: 500, maxGapMs: 900, newContactsPerDay: null } },
        agent.auth,
      );
      expect(custom.statusCode).toBe(200);
      expect(custom.json().data.pacing).toEqual({
        minGapMs: 500,
        maxGapMs: 900,
        typingMsPerChar: 40,
        maxTypingMs: 6_000,
        perRecipientGapMs: 20_000,
        newContactsPerDay: null,
      });
      expect(t.container.pacing.profiles.profile('patch-bot')?.minGapMs).toBe(500);
      expect((await t.app.inject({ url: '/sessions/patch-bot', headers: t.admin })).json().data.pacing.maxGapMs).toBe(
        900,
      );

      const off = await patch(t, 'patch-bot', { pacing: 'off' });
      expect(off.json().data.pacing).toBe('off');
      expect(t.container.pacing.profiles.profile('patch-bot')).toBeNull();
      // SQL NULL, not a JSON null.
      const stored = await db.database.query(
        `SELECT pacing IS NULL AS off FROM whatsapp_user WHERE agent_id = 'patch-bot'`,
      );
      expect(stored[0]?.off).toBe(true);
    });

    it('refuses a bad profile with 400 naming the field, an unknown agent with 404', async () => {
      const { t } = await build();
      await connectAgent(t, 'strict-bot');
      const cases: Array<[unknown, RegExp]> = [
        [{ minGapMs: 9_000, maxGapMs: 1_000 }, /pacing\.minGapMs: minGapMs must not be greater than maxGapMs/],
        [{ minGapMs: -1 }, /pacing\.minGapMs/],
        [{ maxTypingMs: 60_001 }, /pacing\.maxTypingMs/],
        [{ newContactsPerDay: 1.5 }, /pacing\.newContactsPerDay/],
        ['fast', /pacing: must be "off", "human" or a profile object/],
      ];
      for (const [pacing, message] of cases) {
        const res = await patch(t, 'strict-bot', { pacing });
        expect(res.statusCode, JSON.stringify(pacing)).toBe(400);
        expect(res.json().error.code).toBe('INVALID_PAYLOAD');
        expect(res.json().error.message).toMatch(message);
      }
      expect(t.container.pacing.profiles.profile('strict-bot')).toBeNull();
      const missing = await patch(t, 'nobody-here', { pacing: 'human' });
      expect(missing.statusCode).toBe(404);
      expect(missing.json().error.code).toBe('SESSION_NOT_FOUND');
    });

    it('takes the setting at creation', async () => {
      const { t } = await build();
      const created = await t.app.inject({
        method: 'POST',
        url: '/sessions',
        headers: t.admin,
        payload: {
          userId: 'u-born',
          agentId: 'born-paced',
          agentName: 'b',
          apikey: 'key-born-paced-0123456789',
          pacing: 'human',
        },
      });
      expect(created.statusCode).toBe(200);
      expect(created.json().data.pacing).toBe('human');
      expect(t.container.pacing.profiles.profile('born-paced')?.newContactsPerDay).toBe(20);
    });
  });

  describe('sending', () => {
    it('waits a gap within [min, max], shows typing for len × typingMsPerChar, then sends; others go at once', async () => {
      const { t, clock } = await build();
      const paced = await connectAgent(t, 'paced-bot');
      const fast = await connectAgent(t, 'fast-bot');
      const profile = { ...QUICK, minGapMs: 1_000, maxGapMs: 3_000, typingMsPerChar: 100, maxTypingMs: 2_000 };
      expect((await patch(t, 'paced-bot', { pacing: profile })).statusCode).toBe(200);

      const accepted = clock.now();
      const res = await sendText(t, paced, { to: '6281234567890', message: 'ten chars!' }); // 10 × 100 ms = 1 s
      expect(res.statusCode).toBe(202);
      const id = res.json().data.messageId;
      await until(async () => (await row(id))?.not_before != null);
      const sendAt = epochMs((await row(id))?.not_before);
      expect(sendAt - accepted).toBeGreaterThanOrEqual(1_000 + 1_000);
      expect(sendAt - accepted).toBeLessThanOrEqual(3_000 + 1_000);
      const state = await t.app.inject({ url: `/agents/paced-bot/messages/${id}`, headers: paced.auth });
      expect(state.json().data.notBefore).toBe(new Date(sendAt).toISOString());

      // Meanwhile an agent that is not paced sends at once.
      const quick = await sendText(t, fast, { to: '6281234567890', message: 'no waiting' });
      await until(() => sent(t, 'fast-bot').some((s) => s.text === 'no waiting'));
      expect(quick.statusCode).toBe(202);
      expect(sent(t, 'paced-bot')).toEqual([]);

      // Just before the typing: nothing; at it: the indicator; at the send time: the text.
      await clock.advance(sendAt - 1_000 - clock.now() - 1);
      expect(sent(t, 'paced-bot')).toEqual([]);
      await clock.advance(1);
      await until(() => sent(t, 'paced-bot').length === 1);
      expect(sent(t, 'paced-bot')[0]).toMatchObject({ kind: 'typing', typing: true, to: '6281234567890@c.us' });
      expect(new Date(sent(t, 'paced-bot')[0]?.at ?? 0).getTime()).toBe(sendAt - 1_000);
      await clock.advance(999);
      expect(sent(t, 'paced-bot')).toHaveLength(1);
      await clock.advance(1);
      await until(() => sent(t, 'paced-bot').length === 2);
      expect(sent(t, 'paced-bot')[1]).toMatchObject({ kind: 'text', text: 'ten chars!' });
      expect(new Date(sent(t, 'paced-bot')[1]?.at ?? 0).getTime()).toBe(sendAt);
      await until(async () => (await row(id))?.status === 'sent');
    });

    it('honours what is left of a wait after a restart, on a new app over the same database', async () => {
      const dataDir = await createTestDataDir();
      dirs.push(dataDir);
      const first = await build(new FakeClock(START), dataDir);
      const agent = await connectAgent(first.t, 'durable-paced');
      await patch(first.t, 'durable-paced', { pacing: { ...QUICK, minGapMs: 10_000, maxGapMs: 10_000 } });
      const accepted = first.clock.now();
      const id = (await sendText(first.t, agent, { to: '6281234567891', message: 'later' })).json().data.messageId;
      await until(async () => (await row(id))?.not_before != null);
      expect(epochMs((await row(id))?.not_before)).toBe(accepted + 10_000);
      await first.clock.advance(4_000);
      await first.t.close();
      apps.splice(apps.indexOf(first.t), 1);
      expect((await row(id))?.status).toBe('queued');

      // One more second passed while nothing ran: 5 s are left, not 10 s again, and not none.
      const second = await build(new FakeClock(accepted + 5_000), dataDir);
      await until(() => second.t.container.supervisor.readySession('durable-paced') !== null);
      await second.clock.advance(4_999);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(sent(second.t, 'durable-paced')).toEqual([]);
      await second.clock.advance(1);
      await until(() => sent(second.t, 'durable-paced').length === 1);
      expect(sent(second.t, 'durable-paced')[0]).toMatchObject({ kind: 'text', text: 'later' });
      expect(new Date(sent(second.t, 'durable-paced')[0]?.at ?? 0).getTime()).toBe(accepted + 10_000);
      await until(async () => (await row(id))?.status === 'sent');
    });
  });

  it.runIf(usingPostgres())('tells the other members of a cluster when a profile changes', async () => {
    const one = await build();
    const two = await build();
    await connectAgent(one.t, 'shared-bot');
    expect((await patch(two.t, 'shared-bot', { pacing: 'human' })).statusCode).toBe(200);
    await until(() => one.t.container.pacing.profiles.profile('shared-bot') !== null);
    expect(one.t.container.pacing.profiles.profile('shared-bot')?.maxGapMs).toBe(8_000);
    await patch(two.t, 'shared-bot', { pacing: 'off' });
    await until(() => one.t.container.pacing.profiles.profile('shared-bot') === null);
  });

  describe('new contacts', () => {
    async function cappedAgent(t: TestApp, agentId: string, newContactsPerDay: number): Promise<ConnectedAgent> {
      const agent = await connectAgent(t, agentId);
      expect((await patch(t, agentId, { pacing: { ...QUICK, newContactsPerDay } })).statusCode).toBe(200);
      return agent;
    }
    const queuedTo = async (agentId: string, to: string) =>
      Number(
        (
          await db.database.query(
            'SELECT count(*)::int AS n FROM outbox_messages WHERE agent_id = $1 AND to_jid = $2',
            [agentId, to],
          )
        )[0]?.n,
      );

    it('refuses the first message to one new contact too many with 429 NEW_CONTACT_LIMIT, queuing nothing', async () => {
      const { t, clock } = await build();
      const agent = await cappedAgent(t, 'cap-bot', 2);
      expect((await sendText(t, agent, { to: '6281200000001', message: 'hi 1' })).statusCode).toBe(202);
      await clock.advance(60_000);
      expect((await sendText(t, agent, { to: '6281200000002', message: 'hi 2' })).statusCode).toBe(202);

      const refused = await sendText(t, agent, { to: '6281200000003', message: 'hi 3' });
      expect(refused.statusCode).toBe(429);
      const error = refused.json().error;
      expect(error.code).toBe('NEW_CONTACT_LIMIT');
      expect(error.message).toMatch(/2 new contacts in 24 h/);
      // A place frees 24 h after the first new contact, which was a minute ago.
      expect(error.details).toEqual({ limit: 2, retryAfter: 86_400 - 60 });
      expect(refused.headers['retry-after']).toBe(String(86_400 - 60));
      expect(await queuedTo('cap-bot', '6281200000003@c.us')).toBe(0);

      // Contacts already written to, groups, and people who wrote first are not limited.
      expect((await sendText(t, agent, { to: '6281200000001', message: 'again' })).statusCode).toBe(202);
      expect((await sendText(t, agent, { to: '120363000000000001@g.us', message: 'group' })).statusCode).toBe(202);
      const inbound = await t.app.inject({
        method: 'POST',
        url: '/sandbox/agents/cap-bot/inbound',
        headers: t.admin,
        payload: { from: '6281200000004', text: 'hello first' },
      });
      expect(inbound.statusCode).toBe(200);
      await until(async () => {
        const rows = await db.database.query(
          `SELECT 1 FROM inbound_messages WHERE agent_id = 'cap-bot' AND chat_jid = '6281200000004@c.us'`,
        );
        return rows.length > 0;
      });
      expect((await sendText(t, agent, { to: '6281200000004', message: 'reply' })).statusCode).toBe(202);
      // Still capped for the next stranger.
      expect((await sendText(t, agent, { to: '6281200000005', message: 'hi 5' })).statusCode).toBe(429);
      await until(() => sent(t, 'cap-bot').filter((s) => s.kind === 'text').length === 5);
      // With pacing off, no cap.
      await patch(t, 'cap-bot', { pacing: 'off' });
      expect((await sendText(t, agent, { to: '6281200000005', message: 'hi 5' })).statusCode).toBe(202);
      // A deleted agent's count goes with it.
      const quota = () => db.database.query(`SELECT 1 FROM pacing_contact_quota WHERE agent_id = 'cap-bot'`);
      expect(await quota()).toHaveLength(1);
      expect((await t.app.inject({ method: 'DELETE', url: '/sessions/cap-bot', headers: t.admin })).statusCode).toBe(
        200,
      );
      expect(await quota()).toHaveLength(0);
    });

    it('admits exactly the cap when first messages to new contacts race each other', async () => {
      const { t } = await build();
      const agent = await cappedAgent(t, 'race-bot', 3);
      const responses = await Promise.all(
        Array.from({ length: 10 }, (_, i) => sendText(t, agent, { to: `62813000000${10 + i}`, message: `race ${i}` })),
      );
      const codes = responses.map((r) => r.statusCode).sort();
      expect(codes.filter((c) => c === 202)).toHaveLength(3);
      expect(codes.filter((c) => c === 429)).toHaveLength(7);
      const rows = await db.database.query(
        `SELECT count(*)::int AS n FROM outbox_messages WHERE agent_id = 'race-bot'`,
      );
      expect(rows[0]?.n).toBe(3);
    });

    it('refuses every new contact with a cap of 0, without a Retry-After', async () => {
      const { t } = await build();
      const agent = await cappedAgent(t, 'shy-bot', 0);
      const refused = await sendText(t, agent, { to: '6281200000009', message: 'hi' });
      expect(refused.statusCode).toBe(429);
      expect(refused.json().error.details).toEqual({ limit: 0, retryAfter: null });
      expect(refused.headers['retry-after']).toBeUndefined();
    });
  });
});
