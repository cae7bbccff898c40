// The webhook dispatcher on its own, on a real database with an injected FakeClock: backoff, the retry window, the
// disabling of an endpoint that keeps failing, and two dispatchers (two cluster members) never sending one delivery
// at once.
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FakeClock } from '../src/__fixtures__/fake-clock.js';
import { anyAddress } from '../src/messaging/address-policy.js';
import { createLogger } from '../src/observability/logger.js';
import { createMetrics } from '../src/observability/metrics.js';
import { classify, nextDelayMs, WebhookDispatcher } from '../src/webhooks/webhook-dispatcher.js';
import { type ClaimedDelivery, WebhooksRepository } from '../src/webhooks/webhooks.repository.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { until } from './helpers/messaging.js';
import { startWebhookReceiver, type WebhookReceiver } from './helpers/webhook-receiver.js';

describe('webhook dispatcher', () => {
  let db: TestDatabase;
  let receiver: WebhookReceiver;
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk: Buffer, _encoding, callback) {
        for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line));
        callback();
      },
    }),
  });

  beforeAll(async () => {
    db = await createTestDatabase();
    receiver = await startWebhookReceiver(503);
  });
  afterAll(async () => {
    await receiver.close();
    await db.drop();
  });

  const dispatcher = (
    repository: WebhooksRepository,
    clock: FakeClock,
    metrics = createMetrics({ perAgent: false, collectProcessMetrics: false }),
  ) =>
    new WebhookDispatcher({
      repository,
      database: db.database,
      clock,
      logger,
      metrics,
      checkAddress: anyAddress,
      retryWindowMs: 10_000,
      perEndpoint: 4,
      max: 16,
      random: () => 0.5,
    });

  it('classifies answers and backs off about 1 s, 5 s, 30 s, 2 min, 10 min, then 30 min', () => {
    expect([200, 204, 299].map(classify)).toEqual(['delivered', 'delivered', 'delivered']);
    expect([400, 401, 404, 410, 413, 422].map(classify)).toEqual(Array(6).fill('failed'));
    expect([408, 409, 425, 429, 500, 502, 503, 301].map(classify)).toEqual(Array(8).fill('retry'));
    expect([1, 2, 3, 4, 5, 6, 7, 50].map((n) => nextDelayMs(n, () => 0.5))).toEqual([
      1_000, 5_000, 30_000, 120_000, 600_000, 1_800_000, 1_800_000, 1_800_000,
    ]);
    expect(nextDelayMs(1, () => 0)).toBe(800);
    expect(nextDelayMs(1, () => 1)).toBe(1_200);
  });

  it('retries on its backoff until the window ends, then disables an endpoint that keeps failing', async () => {
    const clock = new FakeClock();
    const repository = new WebhooksRepository(db.database);
    const metrics = createMetrics({ perAgent: false, collectProcessMetrics: false });
    const worker = dispatcher(repository, clock, metrics);
    const hook = await repository.create(null, { url: receiver.url, enabled: true });
    const first = await repository.enqueueTest(hook.id, null, new Date(clock.now()));
    await worker.start();
    try {
      const attempts = async () =>
        (await repository.deliveries(hook.id, { limit: 10, before: null, status: undefined })).items;
      const attemptsOf = async (id: string) => (await attempts()).find((d) => d.id === id)?.attempts ?? 0;
      await until(async () => (await attemptsOf(first.id)) === 1);
      // Not before its backoff.
      await clock.advance(900);
      expect(await attemptsOf(first.id)).toBe(1);
      await clock.advance(200);
      await until(async () => (await attemptsOf(first.id)) === 2);
      // Its next attempt is 5 s after the second; the sweep (every second) finds it then.
      await clock.advance(6_000);
      await until(async () => (await attemptsOf(first.id)) === 3);
      // The next attempt would fall after the 10 s window: failed.
      const settled = (await attempts()).find((d) => d.id === first.id);
      expect(settled).toMatchObject({ status: 'failed', lastStatusCode: 503 });
      expect((await repository.get(null, hook.id))?.enabled).toBe(true);

      // Still failing 10 s after the first failure: disabled, with a log line and a metric.
      await clock.advance(10_000);
      const second = await repository.enqueueTest(hook.id, null, new Date(clock.now()));
      await clock.advance(1_000);
      await until(async () => (await attemptsOf(second.id)) === 1);
      await until(async () => (await repository.get(null, hook.id))?.enabled === false);
      expect((await repository.get(null, hook.id))?.disabledAt).toBe(new Date(clock.now()).toISOString());
      expect(logs.some((line) => line.event === 'webhook.endpoint_disabled')).toBe(true);
      expect((await metrics.registry.getSingleMetricAsString('webhook_endpoints_disabled_total')).trim()).toMatch(
        / 1$/,
      );
      // A disabled endpoint gets nothing more.
      const requests = receiver.received.length;
      await repository.retry(hook.id, second.id, new Date(clock.now()));
      await clock.advance(60_000);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(receiver.received.length).toBe(requests);
    } finally {
      await worker.stop();
    }
  });

  it('two dispatchers on one database never send one delivery twice, and keep each chat in order', async () => {
    receiver.respond(200);
    const clock = new FakeClock();
    const repository = new WebhooksRepository(db.database);
    const hook = await repository.create(null, { url: receiver.url, enabled: true });
    const before = receiver.received.length;
    // 30 events in 3 chats, written as the triggers write them.
    await db.database.query(
      `INSERT INTO webhook_deliveries (id, event_id, endpoint_id, type, order_key, payload)
       SELECT 'whd_t' || g, 'evt_t' || g, $1, 'message.received', 'chat' || (g % 3),
         jsonb_build_object('id', 'evt_t' || g, 'type', 'message.received', 'data', jsonb_build_object('n', g, 'chatId', 'chat' || (g % 3)))
       FROM generate_series(1, 30) AS g ORDER BY g`,
      [hook.id],
    );
    const a = dispatcher(repository, clock);
    const b = dispatcher(repository, clock);
    await Promise.all([a.start(), b.start()]);
    try {
      await until(() => receiver.received.length - before >= 30, 15_000);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const got = receiver.received.slice(before);
      expect(got).toHaveLength(30);
      expect(new Set(got.map((d) => d.event.id)).size).toBe(30);
      for (const chat of ['chat0', 'chat1', 'chat2']) {
        const order = got.filter((d) => d.event.data.chatId === chat).map((d) => Number(d.event.data.n));
        expect(order).toEqual([...order].sort((x, y) => x - y));
      }
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it("claims past a window of blocked deliveries, within each endpoint's room, and records a batch of outcomes", async () => {
    const clock = new FakeClock();
    const repository = new WebhooksRepository(db.database);
    const url = 'http://127.0.0.1:9/hook';
    const blocked = await repository.create(null, { url, enabled: true });
    const wide = await repository.create(null, { url, enabled: true });
    const late = await repository.create(null, { url, enabled: true });
    const write = (endpointId: string, prefix: string, from: number, to: number, chats: number) =>
      db.database.query(
        `INSERT INTO webhook_deliveries (id, event_id, endpoint_id, type, order_key, payload)
         SELECT 'whd_' || $2 || g, 'evt_' || $2 || g, $1, 'message.received', $2 || (g % $5), '{}'::jsonb
         FROM generate_series($3::int, $4::int) AS g ORDER BY g`,
        [endpointId, prefix, from, to, chats],
      );
    // 2,000 deliveries of one chat (one eligible: the first), then 6 chats of another endpoint, then one more
    // endpoint's delivery: beyond the largest window (1,024 seq) of the oldest pending one.
    await write(blocked.id, 'blk', 1, 2_000, 1);
    await write(wide.id, 'wide', 1, 6, 6);
    await write(late.id, 'late', 1, 1, 1);
    const now = new Date(clock.now());
    const until = new Date(clock.now() + 30_000);
    const room = (inFlight: Array<[string, number]>) => ({ perEndpoint: 4, inFlight: new Map(inFlight) });

    const first = await repository.claim(now, until, 20, room([[wide.id, 2]]));
    expect(first.map((d) => d.id)).toEqual(['whd_blk1', 'whd_wide1', 'whd_wide2', 'whd_late1']);
    // Claimed: not again, and the next of a chat waits for the first's outcome; the other endpoint's room is 4 now.
    const second = await repository.claim(now, until, 20, room([]));
    expect(second.map((d) => d.id)).toEqual(['whd_wide3', 'whd_wide4', 'whd_wide5', 'whd_wide6']);

    // One statement records a delivery, a retry and a final failure; only failures mark the endpoint failing.
    const [blk1, wide1, wide2] = first as [ClaimedDelivery, ClaimedDelivery, ClaimedDelivery];
    const disabled = await repository.recordAttempts(
      [
        { delivery: blk1, outcome: { kind: 'delivered', statusCode: 204 }, at: now },
        {
          delivery: wide1,
          outcome: { kind: 'retry', statusCode: 503, error: 'HTTP 503', nextAttemptAt: until, giveUpAt: until },
          at: now,
        },
        { delivery: wide2, outcome: { kind: 'failed', statusCode: 410, error: 'HTTP 410' }, at: now },
      ],
      60_000,
    );
    expect(disabled).toEqual([false, false, false]);
    const states = await db.database.query(
      `SELECT id, status, attempts, last_status_code, next_attempt_at IS NOT NULL AS waits, claimed_until IS NULL AS free
       FROM webhook_deliveries WHERE id = ANY ($1::text[]) ORDER BY id`,
      [['whd_blk1', 'whd_wide1', 'whd_wide2']],
    );
    expect(states).toEqual([
      { id: 'whd_blk1', status: 'delivered', attempts: 1, last_status_code: 204, waits: false, free: true },
      { id: 'whd_wide1', status: 'pending', attempts: 1, last_status_code: 503, waits: true, free: true },
      { id: 'whd_wide2', status: 'failed', attempts: 1, last_status_code: 410, waits: false, free: true },
    ]);
    expect((await repository.get(null, blocked.id))?.enabled).toBe(true);
    const failing = await db.database.query(
      'SELECT id, failing_since IS NOT NULL AS failing FROM webhook_endpoints WHERE id = ANY ($1::text[])',
      [[blocked.id, wide.id, late.id]],
    );
    expect(failing.filter((row) => row.failing).map((row) => row.id)).toEqual([wide.id]);

    // The chat's next delivery is eligible now; the retried one waits for its time.
    const next = await repository.claim(now, until, 20, room([]));
    expect(next.map((d) => d.id)).toEqual(['whd_blk2']);
    await db.database.query(`DELETE FROM webhook_endpoints WHERE id = ANY ($1::text[])`, [
      [blocked.id, wide.id, late.id],
    ]);
  });
  it('scans a bounded part of a backlog that cannot go per claim, and reaches what can go behind it', async () => {
    const clock = new FakeClock();
    const repository = new WebhooksRepository(db.database);
    const url = 'http://127.0.0.1:9/hook';
    const stuck = await repository.create(null, { url, enabled: true });
    const behind = await repository.create(null, { url, enabled: true });
    try {
      // 12,000 deliveries of one chat, all waiting for the first one's retry; then another endpoint's delivery.
      await db.database.query(
        `INSERT INTO webhook_deliveries (id, event_id, endpoint_id, type, order_key, payload, next_attempt_at)
         SELECT 'whd_stuck' || g, 'evt_stuck' || g, $1, 'message.received', 'one-chat', '{}'::jsonb,
           CASE WHEN g = 1 THEN now() + interval '1 hour' END
         FROM generate_series(1, 12000) AS g ORDER BY g`,
        [stuck.id],
      );
      await db.database.query(
        `INSERT INTO webhook_deliveries (id, event_id, endpoint_id, type, order_key, payload)
         VALUES ('whd_behind', 'evt_behind', $1, 'message.received', 'other-chat', '{}'::jsonb)`,
        [behind.id],
      );
      const now = new Date(clock.now());
      const later = new Date(clock.now() + 30_000);
      const room = { perEndpoint: 4, inFlight: new Map<string, number>() };
      const statements: number[] = [];
      const claims: string[][] = [];
      const query = vi.spyOn(db.database, 'query');
      try {
        for (let i = 0; i < 3 && !claims.flat().includes('whd_behind'); i++) {
          const before = query.mock.calls.filter(([, , name]) => name === 'webhook_claim').length;
          claims.push((await repository.claim(now, later, 20, room)).map((d) => d.id));
          statements.push(query.mock.calls.filter(([, , name]) => name === 'webhook_claim').length - before);
        }
      } finally {
        query.mockRestore();
      }
      // Windows of 160 seq for 20 deliveries wanted: at most 8,192 seq (52 windows) per claim, not 12,000.
      expect(Math.max(...statements)).toBeLessThanOrEqual(52);
      expect(claims).toEqual([[], ['whd_behind']]);
    } finally {
      await db.database.query(`DELETE FROM webhook_endpoints WHERE id = ANY ($1::text[])`, [[stuck.id, behind.id]]);
    }
  });

  it("keeps order per agent and chat at an admin-level endpoint: one agent's stuck chat does not hold another's", async () => {
    const clock = new FakeClock();
    const repository = new WebhooksRepository(db.database);
    const admin = await repository.create(null, { url: 'http://127.0.0.1:9/hook', enabled: true });
    try {
      // Two agents talking to one number: the same chat id, one order each.
      await db.database.query(
        `INSERT INTO webhook_deliveries (id, event_id, endpoint_id, agent_id, type, order_key, payload)
         SELECT 'whd_pair' || g, 'evt_pair' || g, $1, CASE WHEN g % 2 = 1 THEN 'pair-a' ELSE 'pair-b' END,
           'message.received', '6281234567890@c.us', '{}'::jsonb
         FROM generate_series(1, 4) AS g ORDER BY g`,
        [admin.id],
      );
      const now = new Date(clock.now());
      const later = new Date(clock.now() + 30_000);
      const room = { perEndpoint: 4, inFlight: new Map<string, number>() };
      // The first of each agent's chat, not the first of the number alone.
      const first = await repository.claim(now, later, 20, room);
      expect(first.map((d) => d.id)).toEqual(['whd_pair1', 'whd_pair2']);
      // Agent a's delivery is retried later; agent b's chat goes on meanwhile, a's waits.
      const [a1, b1] = first as [ClaimedDelivery, ClaimedDelivery];
      await repository.recordAttempts(
        [
          {
            delivery: a1,
            outcome: { kind: 'retry', statusCode: 503, error: 'HTTP 503', nextAttemptAt: later, giveUpAt: later },
            at: now,
          },
          { delivery: b1, outcome: { kind: 'delivered', statusCode: 204 }, at: now },
        ],
        60_000,
      );
      const next = await repository.claim(now, later, 20, room);
      expect(next.map((d) => d.id)).toEqual(['whd_pair4']);
    } finally {
      await db.database.query('DELETE FROM webhook_endpoints WHERE id = $1', [admin.id]);
    }
  });

  it('retries a failed or waiting delivery at once, and leaves one that is being attempted to finish', async () => {
    const clock = new FakeClock();
    const repository = new WebhooksRepository(db.database);
    const hook = await repository.create(null, { url: 'http://127.0.0.1:9/hook', enabled: true });
    try {
      const now = new Date(clock.now());
      const later = new Date(clock.now() + 30_000);
      const first = await repository.enqueueTest(hook.id, null, now);
      const [claimed] = await repository.claim(now, later, 1, { perEndpoint: 4, inFlight: new Map() });
      expect(claimed?.id).toBe(first.id);
      // In flight (claimed until later): a retry now would race the attempt under way.
      expect(await repository.retry(hook.id, first.id, now)).toMatchObject({ id: first.id, status: 'pending' });
      expect(await repository.claim(now, later, 1, { perEndpoint: 4, inFlight: new Map() })).toEqual([]);
      // Its attempt failed: a retry makes it due at once.
      await repository.recordAttempts(
        [
          {
            delivery: claimed as ClaimedDelivery,
            outcome: { kind: 'failed', statusCode: 410, error: 'HTTP 410' },
            at: now,
          },
        ],
        60_000,
      );
      expect(await repository.retry(hook.id, first.id, now)).toMatchObject({ id: first.id, status: 'pending' });
      const again = await repository.claim(now, later, 1, { perEndpoint: 4, inFlight: new Map() });
      expect(again.map((d) => d.id)).toEqual([first.id]);
      expect(await repository.retry(hook.id, 'whd_unknown', now)).toBeUndefined();
    } finally {
      await db.database.query('DELETE FROM webhook_endpoints WHERE id = $1', [hook.id]);
    }
  });

  it("never keeps an agent's endpoint without its agent: deleted with it, refused once it is gone", async () => {
    const repository = new WebhooksRepository(db.database);
    await db.database.query(`INSERT INTO whatsapp_user (user_id, agent_id, api_key) VALUES ('u', 'short-lived', 'k')`);
    const hook = await repository.create('short-lived', { url: 'http://127.0.0.1:9/hook', enabled: true });
    // Deleted as a concurrent DELETE /sessions would, between the route's look-up and the insert: refused.
    await db.database.query(`DELETE FROM whatsapp_user WHERE agent_id = 'short-lived'`);
    expect(await repository.get('short-lived', hook.id)).toBeUndefined();
    await expect(
      repository.create('short-lived', { url: 'http://127.0.0.1:9/hook', enabled: true }),
    ).rejects.toMatchObject({
      code: 'SESSION_NOT_FOUND',
    });
    const [left] = await db.database.query(
      `SELECT count(*)::int AS n FROM webhook_endpoints WHERE agent_id = 'short-lived'`,
    );
    expect(left?.n).toBe(0);
  });

  it('writes each event once, whatever the endpoints, then expands it into one delivery per endpoint, in order', async () => {
    const repository = new WebhooksRepository(db.database);
    // Agent-level endpoints belong to agents that exist.
    await db.database.query(
      `INSERT INTO whatsapp_user (user_id, agent_id, api_key) VALUES ('u', 'fan-agent', 'k1'), ('u', 'another-agent', 'k2')`,
    );
    const takers = [
      await repository.create(null, { url: receiver.url, enabled: true, events: ['message.received'] }),
      await repository.create('fan-agent', { url: receiver.url, enabled: true }),
      await repository.create(null, { url: receiver.url, enabled: true }),
    ];
    const other = await repository.create(null, { url: receiver.url, enabled: true, events: ['message.sent'] });
    const elsewhere = await repository.create('another-agent', { url: receiver.url, enabled: true });
    const ids = [...takers, other, elsewhere].map((hook) => hook.id);
    try {
      // 20 events in 4 chats, as a trigger emits them in the transaction of the state they describe.
      await db.database.query(
        `SELECT wamt_webhook_emit('message.received', array_agg('fan-agent'::text ORDER BY g),
           array_agg('chat' || (g % 4) ORDER BY g), array_agg(jsonb_build_object('n', g) ORDER BY g))
         FROM generate_series(1, 20) AS g`,
      );
      const count = async (table: string): Promise<number> =>
        Number((await db.database.query(`SELECT count(*)::int AS n FROM ${table} WHERE agent_id = 'fan-agent'`))[0]?.n);
      expect(await count('webhook_events')).toBe(20);
      expect(await count('webhook_deliveries')).toBe(0);

      // Two members expand at once: one at a time gets the lock (-1 for the other), batches in seq order.
      const taken: number[] = [];
      for (let round = 0; round < 20 && (await count('webhook_events')) > 0; round++) {
        taken.push(...(await Promise.all([repository.fanOut(7), repository.fanOut(7)])));
      }
      expect(await count('webhook_events')).toBe(0);
      expect(taken.filter((n) => n > 0).reduce((a, b) => a + b, 0)).toBe(20);

      // Endpoints of the tests before this one may be enabled too: only this test's are looked at.
      const rows = await db.database.query(
        `SELECT endpoint_id, (payload->'data'->>'n')::int AS n, payload->>'id' AS event_id FROM webhook_deliveries
         WHERE agent_id = 'fan-agent' AND endpoint_id = ANY ($1::text[]) ORDER BY seq`,
        [ids],
      );
      expect(rows).toHaveLength(60);
      const events = new Set(rows.map((row) => row.event_id));
      expect(events.size).toBe(20);
      for (const hook of takers) {
        const mine = rows.filter((row) => row.endpoint_id === hook.id);
        expect(mine.map((row) => row.n)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
        expect(new Set(mine.map((row) => row.event_id))).toEqual(events);
      }
    } finally {
      await db.database.query(`DELETE FROM webhook_endpoints WHERE id = ANY ($1::text[])`, [ids]);
      await db.database.query(`DELETE FROM webhook_events WHERE agent_id = 'fan-agent'`);
      await db.database.query(`DELETE FROM whatsapp_user WHERE agent_id IN ('fan-agent', 'another-agent')`);
    }
  });
});
