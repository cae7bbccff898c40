import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/database.js';
import { type FaultyDatabase, faultyDatabase } from '../../test/helpers/faulty-database.js';
import { until } from '../../test/helpers/messaging.js';
import { FakeClock } from '../__fixtures__/fake-clock.js';
import { SandboxEngine, type SandboxSession } from '../engines/sandbox/sandbox.engine.js';
import { AppError } from '../errors.js';
import { createLogger } from '../observability/logger.js';
import { createMetrics } from '../observability/metrics.js';
import { InMemorySessions } from './__fixtures__/in-memory-sessions.js';
import { createOutbox, type Outbox, type OutboxConfig, type OutboxDeps, type OutboxDraft } from './outbox.js';
import { type NewOutboxMessage, OutboxRepository } from './outbox.repository.js';

const text = (body: string, to = '6281234567890@c.us'): OutboxDraft => ({
  kind: 'text',
  toJid: to,
  payload: { text: body, fingerprint: `fp-${body}` },
});

const queuedRow = (agentId: string, body: string): NewOutboxMessage => ({
  id: crypto.randomUUID(),
  agentId,
  kind: 'text',
  toJid: '6281234567890@c.us',
  payload: { text: body, fingerprint: body },
  media: null,
  idempotencyKey: null,
  traceId: null,
});

/** Makes the session's next text send wait until `release()`; `holding()` tells when one is waiting. */
function holdSends(session: SandboxSession) {
  let waiting: (() => void) | undefined;
  const realSend = session.sendText.bind(session);
  session.sendText = async (to, body, options) => {
    await new Promise<void>((resolve) => {
      waiting = resolve;
    });
    return realSend(to, body, options);
  };
  return { holding: () => waiting !== undefined, release: () => waiting?.() };
}

type SetupOptions = Partial<OutboxConfig> & Pick<OutboxDeps, 'retries'>;

describe('Outbox', () => {
  let test: TestDatabase;
  const outboxes: Outbox[] = [];
  /** Released after each test, so that a test failing while it holds statements does not hang close(). */
  const faulty: FaultyDatabase[] = [];

  beforeAll(async () => {
    test = await createTestDatabase();
  });
  afterEach(async () => {
    for (const faults of faulty.splice(0)) {
      faults.heal();
      faults.release();
    }
    await Promise.all(outboxes.splice(0).map((outbox) => outbox.close()));
    await test.database.query('DELETE FROM outbox_messages');
    await test.database.query('DELETE FROM whatsapp_user');
  });
  afterAll(async () => {
    await test.drop();
  });

  async function setup({ retries, ...config }: SetupOptions = {}) {
    const clock = new FakeClock();
    const engine = new SandboxEngine();
    const gateway = new InMemorySessions();
    const metrics = createMetrics({ perAgent: false, collectProcessMetrics: false });
    const faults = faultyDatabase(test.database);
    faulty.push(faults);
    const repository = new OutboxRepository(test.database);
    const make = () => {
      const outbox = createOutbox({
        database: faults.database,
        sessions: gateway,
        metrics,
        logger: createLogger({ level: 'silent' }),
        clock,
        config: {
          sendWaitMs: 2_000,
          queueMaxPerAgent: 500,
          rateLimitBurst: 100,
          rateLimitPerMinute: 100,
          dbStatementTimeoutMs: 5_000,
          ...config,
        },
        retries,
      });
      outboxes.push(outbox);
      return outbox;
    };
    const sut = make();
    const connect = async (agentId: string) => {
      const session = engine.createSession(agentId) as SandboxSession;
      await session.start();
      session.connect('6281100000001');
      gateway.setReady(agentId, session);
      return session;
    };
    return { sut, make, engine, gateway, clock, metrics, faults, repository, connect };
  }

  /** The agent's row, which rows resumed at boot need: those of a deleted agent are dropped. */
  const register = (...agentIds: string[]) =>
    Promise.all(
      agentIds.map((agentId) =>
        test.database.query(`INSERT INTO whatsapp_user (user_id, agent_id, api_key) VALUES ('u', $1, 'k')`, [agentId]),
      ),
    );

  const rows = async (agentId: string) =>
    test.database.query(
      'SELECT id, status, attempts, wa_message_id, error, payload FROM outbox_messages WHERE agent_id = $1 ORDER BY seq',
      [agentId],
    );

  it('sends a text within the wait and records the WhatsApp message id', async () => {
    const { sut, engine, connect } = await setup();
    await connect('a1');
    const result = await sut.submit('a1', text('hello'), { traceId: 't-1' });
    expect(result).toMatchObject({ delivered: true, status: 'sent' });
    const sent = engine.sent('a1');
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ kind: 'text', text: 'hello', to: '6281234567890@c.us' });
    expect(result.waMessageId).toBe(sent[0]?.messageId);
    const view = await sut.get('a1', result.messageId);
    expect(view).toMatchObject({ status: 'sent', attempts: 1, waMessageId: sent[0]?.messageId, error: null });
    expect(view.sentAt).not.toBeNull();
  });

  it('refuses with SESSION_NOT_READY and queues nothing when the session is not connected', async () => {
    const { sut } = await setup();
    await expect(sut.submit('nobody', text('x'))).rejects.toMatchObject({ code: 'SESSION_NOT_READY' });
    expect(await rows('nobody')).toEqual([]);
  });

  it('sends each agent FIFO, in the order the messages were accepted', async () => {
    const { sut, engine, connect } = await setup();
    await connect('fifo');
    const bodies = Array.from({ length: 30 }, (_, i) => `m${i}`);
    const results = await Promise.all(bodies.map((b) => sut.submit('fifo', text(b))));
    expect(results.every((r) => r.status === 'sent')).toBe(true);
    await until(async () => (await rows('fifo')).length === 30);
    const acceptedOrder = (await rows('fifo')).map((r) => (r.payload as { text: string }).text);
    expect(engine.sent('fifo').map((s) => s.text)).toEqual(acceptedOrder);
  });

  it('lets 100 through at once and holds the 101st until the bucket refills 600 ms later', async () => {
    const { sut, engine, connect, clock } = await setup({ sendWaitMs: 0 });
    await connect('burst');
    for (let i = 0; i < 101; i++) await sut.submit('burst', text(`b${i}`));
    await until(() => clock.pending().length === 1);
    expect(engine.sent('burst')).toHaveLength(100);
    expect(clock.pending()).toEqual([600]);
    await clock.advance(600);
    await until(() => engine.sent('burst').length === 101);
    expect(engine.sent('burst').at(-1)?.text).toBe('b100');
  });

  it('keeps agents independent: one agent out of tokens does not hold up another', async () => {
    const { sut, engine, connect } = await setup({ rateLimitBurst: 1, sendWaitMs: 0 });
    await connect('x1');
    await connect('x2');
    await sut.submit('x1', text('x1-a'));
    await sut.submit('x1', text('x1-b'));
    await sut.submit('x2', text('x2-a'));
    await until(() => sut.depth('x2') === 0 && sut.depth('x1') === 1);
    expect(engine.sent('x2').map((s) => s.text)).toEqual(['x2-a']);
    expect(engine.sent('x1').map((s) => s.text)).toEqual(['x1-a']);
  });

  it('answers 429 RATE_LIMITED with Retry-After once an agent has QUEUE_MAX_PER_AGENT waiting', async () => {
    const { sut, connect } = await setup({ rateLimitBurst: 1, queueMaxPerAgent: 5, sendWaitMs: 0 });
    await connect('full');
    await sut.submit('full', text('first'));
    await until(() => sut.depth('full') === 0);
    const accepted = await Promise.all(Array.from({ length: 5 }, (_, i) => sut.submit('full', text(`q${i}`))));
    expect(accepted.every((r) => r.status === 'queued' && !r.delivered)).toBe(true);
    const refused = await sut.submit('full', text('over')).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(AppError);
    expect(refused).toMatchObject({ code: 'RATE_LIMITED', status: 429, headers: { 'retry-after': '1' } });
    expect(await rows('full')).toHaveLength(6);
  });

  it('reports the queue depth when scraped', async () => {
    const { sut, connect, metrics, clock } = await setup({ rateLimitBurst: 1, sendWaitMs: 0 });
    await connect('depth');
    for (const body of ['one', 'two', 'three']) await sut.submit('depth', text(body));
    const depth = async () => (await metrics.registry.getSingleMetric('whatsapp_outbox_queue_depth')?.get())?.values;
    expect(await depth()).toEqual([expect.objectContaining({ value: 2 })]);
    for (let i = 0; i < 2; i++) {
      await until(() => clock.pending().length === 1);
      await clock.advance(600);
    }
    await until(() => sut.depth('depth') === 0);
    expect(await depth()).toEqual([expect.objectContaining({ value: 0 })]);
  });

  it('does not overfill the queue when requests race', async () => {
    const { sut, connect } = await setup({ rateLimitBurst: 1, queueMaxPerAgent: 3, sendWaitMs: 0 });
    await connect('race');
    const settled = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => sut.submit('race', text(`r${i}`))));
    // A row holds its place from the moment it is handed in, before its commit, so exactly the queue's capacity gets in.
    expect(settled.filter((s) => s.status === 'fulfilled')).toHaveLength(3);
    expect(settled.filter((s) => s.status === 'rejected').map((s) => s.reason.code)).toEqual(
      Array(7).fill('RATE_LIMITED'),
    );
    expect((await rows('race')).length).toBe(3);
  });

  it('retries a transient failure with backoff and records the attempts', async () => {
    const { sut, engine, connect, clock } = await setup({ sendWaitMs: 0 });
    await connect('flaky');
    engine.failSends('flaky', 2);
    const { messageId } = await sut.submit('flaky', text('try'));
    await until(() => clock.pending().length === 1);
    expect(clock.pending()).toEqual([1_000]);
    await clock.advance(1_000);
    await until(() => clock.pending().length === 1);
    expect(clock.pending()).toEqual([2_000]);
    expect(await sut.get('flaky', messageId)).toMatchObject({
      status: 'queued',
      error: expect.stringContaining('injected'),
    });
    await clock.advance(2_000);
    await until(async () => (await sut.get('flaky', messageId)).status === 'sent');
    expect(await sut.get('flaky', messageId)).toMatchObject({ attempts: 3, error: null });
    expect(engine.sent('flaky')).toHaveLength(1);
  });

  it('marks a message failed with the reason after the retries run out, then moves on', async () => {
    const { sut, engine, connect, clock, metrics } = await setup({ sendWaitMs: 0, retries: { max: 2 } });
    await connect('broken');
    engine.failSends('broken', 3);
    const doomed = await sut.submit('broken', text('doomed'));
    await sut.submit('broken', text('next'));
    for (let i = 0; i < 2; i++) {
      await until(() => clock.pending().length === 1);
      await clock.next();
    }
    await until(() => engine.sent('broken').length === 1);
    expect(await sut.get('broken', doomed.messageId)).toMatchObject({
      status: 'failed',
      attempts: 3,
      error: 'sandbox: injected send failure',
    });
    expect(engine.sent('broken')[0]?.text).toBe('next');
    const failed = (await metrics.outboxTransitions.get()).values.find((v) => v.labels.state === 'failed');
    expect(failed?.value).toBe(1);
  });

  it('waits for the session to come back instead of burning retries when it drops mid-send', async () => {
    const { sut, engine, connect, gateway, clock } = await setup({ sendWaitMs: 0, retries: { max: 0 } });
    const session = await connect('drops');
    const realSend = session.sendText.bind(session);
    let dropped = false;
    session.sendText = async (to, body, options) => {
      if (!dropped) {
        dropped = true;
        gateway.setNotReady('drops'); // the connection goes away while this send is on the wire
        throw new Error('connection closed');
      }
      return realSend(to, body, options);
    };
    const { messageId } = await sut.submit('drops', text('later'));
    await until(async () => (await sut.get('drops', messageId)).error === 'connection closed');
    expect(await sut.get('drops', messageId)).toMatchObject({ status: 'queued', attempts: 1 });
    expect(clock.pending()).toEqual([]);
    gateway.setReady('drops', session);
    await until(async () => (await sut.get('drops', messageId)).status === 'sent');
    expect(engine.sent('drops').map((s) => s.text)).toEqual(['later']);
  });

  it('hands an agent over only once its send in flight has ended; a send that fails then stays queued for the next owner', async () => {
    const { sut, connect } = await setup({ sendWaitMs: 0, retries: { max: 5 } });
    const session = await connect('moves');
    let fail: (err: Error) => void = () => {};
    session.sendText = () =>
      new Promise((_resolve, reject) => {
        fail = reject;
      });
    const { messageId } = await sut.submit('moves', text('on the wire'));
    const queued = await sut.submit('moves', text('still waiting'));
    await until(async () => (await sut.get('moves', messageId)).status === 'sending');
    let handedOver = false;
    const release = sut.release('moves').then(() => {
      handedOver = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(handedOver).toBe(false); // the session must not be stopped under a send on the wire
    fail(new Error('connection closed'));
    await release;
    // Not failed for good, and not retried here: the rows wait, queued, for the member that takes the lease.
    await until(async () => (await rows('moves'))[0]?.error === 'connection closed');
    expect((await rows('moves')).map((row) => row.status)).toEqual(['queued', 'queued']);
    expect((await rows('moves')).map((row) => [row.id, row.attempts])).toEqual([
      [messageId, 1],
      [queued.messageId, 0],
    ]);
    expect(sut.depth('moves')).toBe(0);
  });

  it('returns the first message for a repeated Idempotency-Key and sends once', async () => {
    const { sut, engine, connect } = await setup();
    await connect('idem');
    const first = await sut.submit('idem', text('once'), { idempotencyKey: 'k1' });
    const again = await sut.submit('idem', text('once'), { idempotencyKey: 'k1' });
    expect(again).toEqual(first);
    const racing = await Promise.all([1, 2, 3].map(() => sut.submit('idem', text('twice'), { idempotencyKey: 'k2' })));
    expect(new Set(racing.map((r) => r.messageId)).size).toBe(1);
    expect(engine.sent('idem').map((s) => s.text)).toEqual(['once', 'twice']);
    await expect(sut.submit('idem', text('other'), { idempotencyKey: 'k1' })).rejects.toMatchObject({
      code: 'IDEMPOTENCY_KEY_REUSED',
    });
  });

  it('drops an agent’s queued messages when the agent is deleted', async () => {
    const { sut, connect, gateway } = await setup({ rateLimitBurst: 1, sendWaitMs: 0 });
    await connect('gone');
    await sut.submit('gone', text('sent'));
    await sut.submit('gone', text('q1'));
    await sut.submit('gone', text('q2'));
    await until(async () => (await rows('gone')).some((r) => r.status === 'sent'));
    await gateway.delete('gone');
    expect((await rows('gone')).map((r) => r.status)).toEqual(['sent']);
    expect(sut.depth('gone')).toBe(0);
  });

  it('resumes at boot what a previous process left queued or sending, each sent exactly once', async () => {
    const { sut, make, engine, connect, repository } = await setup({ sendWaitMs: 0 });
    await register('boot');
    await connect('boot');
    await repository.write(
      ['r1', 'r2', 'r3'].map((body) => queuedRow('boot', body)),
      [],
    );
    // Left `sending` by an earlier version, which wrote that state to the table.
    await test.database.query(`UPDATE outbox_messages SET status = 'sending' WHERE payload->>'text' = 'r1'`);
    await sut.close();
    const next = make();
    expect(await next.resumeAll()).toBe(3);
    await until(() => next.depth('boot') === 0);
    expect(engine.sent('boot').map((s) => s.text)).toEqual(['r1', 'r2', 'r3']);
    await until(async () => (await rows('boot')).every((r) => r.status === 'sent'));
    expect(await next.resumeAll()).toBe(0);
  });

  it('drops at boot the unsent rows of an agent deleted meanwhile, and resumes the others', async () => {
    const { make, engine, connect, repository, metrics } = await setup({ sendWaitMs: 0 });
    await register('stays');
    await connect('stays');
    await connect('deleted'); // a new agent given the same id would have a session again
    const left = [
      ['deleted', 'stale'],
      ['stays', 'fresh'],
      ['deleted', 'old'],
      ['deleted', 'done'],
    ] as const;
    await repository.write(
      left.map(([agentId, body]) => queuedRow(agentId, body)),
      [],
    );
    await test.database.query(`UPDATE outbox_messages SET status = 'sending' WHERE payload->>'text' = 'old'`);
    await test.database.query(`UPDATE outbox_messages SET status = 'sent' WHERE payload->>'text' = 'done'`);
    const next = make();
    expect(await next.resumeAll()).toBe(1);
    await until(() => next.depth('stays') === 0);
    expect(engine.sent('stays').map((m) => m.text)).toEqual(['fresh']);
    expect(next.depth('deleted')).toBe(0);
    expect((await rows('deleted')).map((r) => r.status)).toEqual(['sent']);
    expect(engine.sent('deleted')).toEqual([]);
    const dropped = (await metrics.registry.getSingleMetric('whatsapp_outbox_messages_total')?.get())?.values;
    expect(dropped).toContainEqual(expect.objectContaining({ labels: { state: 'dropped' }, value: 2 }));
  });

  it('holds resumed messages until their session becomes ready', async () => {
    const { make, engine, connect, repository } = await setup({ sendWaitMs: 0 });
    await register('wait');
    await repository.write([queuedRow('wait', 'held')], []);
    const next = make();
    await next.resumeAll();
    expect(next.depth('wait')).toBe(1);
    expect(engine.sent('wait')).toHaveLength(0);
    await connect('wait');
    await until(() => next.depth('wait') === 0);
    expect(engine.sent('wait').map((m) => m.text)).toEqual(['held']);
  });

  it('writes the messages of one moment, and the outcomes recorded meanwhile, in a few shared statements', async () => {
    const { sut, engine, connect, faults } = await setup();
    await connect('group');
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => sut.submit('group', text(`g${i}`))));
    expect(results.every((r) => r.status === 'sent')).toBe(true);
    expect(new Set(results.map((r) => r.messageId)).size).toBe(40);
    expect(engine.sent('group')).toHaveLength(40);
    await until(async () => (await rows('group')).every((r) => r.status === 'sent'));
    // 40 inserts and 40 outcomes; one statement each would be 80.
    const statements = (faults.counts.get('outbox_insert') ?? 0) + (faults.counts.get('outbox_write') ?? 0);
    expect(statements).toBeLessThan(10);
  });

  it('shows a message as sending while WhatsApp has it', async () => {
    const { sut, connect } = await setup();
    const session = await connect('overlay');
    const { release, holding } = holdSends(session);
    const submitted = sut.submit('overlay', text('slow'), { traceId: 't-overlay' });
    await until(holding);
    const [row] = await rows('overlay'); // committed before WhatsApp had it
    const id = String(row?.id);
    expect(row?.status).toBe('queued');
    expect(await sut.get('overlay', id)).toMatchObject({ status: 'sending', attempts: 0 });
    release();
    const result = await submitted;
    expect(result).toMatchObject({ delivered: true, status: 'sent', messageId: id });
    expect(await sut.get('overlay', id)).toMatchObject({
      status: 'sent',
      attempts: 1,
      waMessageId: result.waMessageId,
    });
  });

  it('keeps the row of a send in flight when its agent is deleted, and records how it ended', async () => {
    const { sut, connect, gateway } = await setup({ sendWaitMs: 0 });
    const session = await connect('leaving');
    const { release, holding } = holdSends(session);
    await sut.submit('leaving', text('in flight'));
    await sut.submit('leaving', text('still queued'));
    await until(holding);
    await gateway.delete('leaving');
    expect((await rows('leaving')).map((r) => (r.payload as { text: string }).text)).toEqual(['in flight']);
    release();
    await until(async () => (await rows('leaving'))[0]?.status === 'sent');
    expect(sut.depth('leaving')).toBe(0);
  });

  it('shows an outcome it could not write yet, and retries the write until the row says sent', async () => {
    const { sut, connect, clock, faults } = await setup();
    await connect('retry-write');
    faults.fail('outbox_write');
    const result = await sut.submit('retry-write', text('once'));
    expect(result.status).toBe('sent');
    await until(() => clock.pending().length === 1);
    expect(clock.pending()).toEqual([1_000]);
    expect((await rows('retry-write'))[0]?.status).toBe('queued');
    expect(await sut.get('retry-write', result.messageId)).toMatchObject({ status: 'sent' });
    await clock.next();
    await until(async () => (await rows('retry-write'))[0]?.status === 'sent');
  });

  it('records a failure whose message holds a NUL byte, which PostgreSQL text cannot store', async () => {
    const { sut, connect } = await setup({ sendWaitMs: 2_000, retries: { max: 0 } });
    const session = await connect('nul');
    session.sendText = async () => {
      throw new Error('bad\u0000byte');
    };
    const result = await sut.submit('nul', text('x'));
    expect(result.status).toBe('failed');
    await until(async () => (await rows('nul'))[0]?.status === 'failed');
    expect((await rows('nul'))[0]?.error).toBe('badbyte');
  });

  it('forgets sent and failed messages past the retention period, never queued ones', async () => {
    const { sut, repository } = await setup();
    const old = ['old-sent', 'old-failed', 'old-queued'].map((body) => queuedRow('purge', body));
    const recent = queuedRow('purge', 'recent-sent');
    await repository.write([...old, recent], []);
    const day = 24 * 60 * 60 * 1000;
    const longAgo = new Date(Date.now() - 40 * day);
    const [oldSent, oldFailed, oldQueued] = old;
    await repository.write(
      [],
      [
        { id: oldSent?.id ?? '', status: 'sent', attempts: 1, waMessageId: 'wa-1', error: null, at: longAgo.getTime() },
        {
          id: oldFailed?.id ?? '',
          status: 'failed',
          attempts: 3,
          waMessageId: null,
          error: 'gone',
          at: longAgo.getTime(),
        },
        { id: recent.id, status: 'sent', attempts: 1, waMessageId: 'wa-2', error: null, at: Date.now() },
      ],
    );
    await test.database.query('UPDATE outbox_messages SET updated_at = $1 WHERE id = $2', [
      longAgo.toISOString(),
      oldQueued?.id,
    ]);
    expect(await sut.purgeSettledBefore(new Date(Date.now() - 30 * day))).toBe(2);
    expect((await rows('purge')).map((r) => (r.payload as { text: string }).text)).toEqual([
      'old-queued',
      'recent-sent',
    ]);
  });

  it('hands nothing to the engine before its row is committed', async () => {
    const { sut, engine, connect, faults } = await setup();
    const session = await connect('durable');
    const seenAtSend: unknown[] = [];
    const realSend = session.sendText.bind(session);
    session.sendText = async (to, body, options) => {
      seenAtSend.push(...(await rows('durable')).map((r) => r.status));
      return realSend(to, body, options);
    };
    faults.hold('outbox_insert');
    const submitted = sut.submit('durable', text('after the commit'));
    await until(() => faults.held === 1);
    expect(engine.sent('durable')).toEqual([]);
    expect(sut.depth('durable')).toBe(1); // it holds its place in the queue meanwhile
    faults.release();
    expect(await submitted).toMatchObject({ delivered: true, status: 'sent' });
    expect(seenAtSend).toEqual(['queued']);
  });

  it('answers 503 DATABASE_UNAVAILABLE with Retry-After, and sends nothing, when the commit fails', async () => {
    const { sut, engine, connect, faults } = await setup();
    await connect('down');
    faults.fail('outbox_insert');
    const refused = await sut.submit('down', text('lost')).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(AppError);
    expect(refused).toMatchObject({ code: 'DATABASE_UNAVAILABLE', status: 503, headers: { 'retry-after': '5' } });
    expect(sut.depth('down')).toBe(0);
    expect(await rows('down')).toEqual([]);
    expect(await sut.submit('down', text('next'))).toMatchObject({ status: 'sent' });
    expect(engine.sent('down').map((s) => s.text)).toEqual(['next']);
  });

  it('fails every request of a batch at once when the database is down, without retrying row by row', async () => {
    const { sut, engine, connect, faults } = await setup();
    await connect('outage');
    faults.down('outbox_insert');
    const settled = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => sut.submit('outage', text(`o${i}`))));
    expect(settled.map((s) => (s.status === 'rejected' ? (s.reason as AppError).code : s.status))).toEqual(
      Array(20).fill('DATABASE_UNAVAILABLE'),
    );
    expect(faults.counts.get('outbox_insert')).toBe(1); // one statement for the batch, none per row
    faults.heal();
    expect(await rows('outage')).toEqual([]);
    expect(engine.sent('outage')).toEqual([]);
  });

  it('answers 503 when the commit outlasts DB_STATEMENT_TIMEOUT_MS, and never sends the message, even if it lands', async () => {
    const { sut, engine, connect, faults, clock } = await setup({ dbStatementTimeoutMs: 3_000 });
    await connect('stalled');
    faults.hold('outbox_insert');
    const stalled = sut.submit('stalled', text('too late')).catch((err: unknown) => err);
    await until(() => faults.held === 1);
    // A request that arrives while the database hangs waits on its own commit, and times out on its own deadline.
    await clock.advance(1_000);
    const later = sut.submit('stalled', text('queued behind')).catch((err: unknown) => err);
    await until(() => faults.held === 2);
    await clock.advance(2_000);
    expect(await stalled).toMatchObject({ code: 'DATABASE_UNAVAILABLE' });
    expect(sut.depth('stalled')).toBe(1); // the later one still waits
    await clock.advance(1_000);
    expect(await later).toMatchObject({ code: 'DATABASE_UNAVAILABLE' });
    faults.release(); // the stalled commits land after all
    await until(async () => (await rows('stalled')).filter((row) => row.status === 'failed').length === 2);
    for (const row of await rows('stalled')) {
      expect(row).toMatchObject({ status: 'failed', error: expect.stringContaining('not sent') });
    }
    expect(engine.sent('stalled')).toEqual([]);
    expect(sut.depth('stalled')).toBe(0);
  });

  it('gathers what arrives while a commit runs into the next one: two statements for one plus ten', async () => {
    const { sut, connect, faults } = await setup({ sendWaitMs: 0 });
    await connect('gather');
    faults.hold('outbox_insert');
    const first = sut.submit('gather', text('alone'));
    await until(() => faults.held === 1);
    const rest = Array.from({ length: 10 }, (_, i) => sut.submit('gather', text(`g${i}`)));
    // All ten wait for the next batch before the first commit ends (PGlite can end it within the same turn).
    await until(() => sut.depth('gather') === 11);
    faults.release();
    await Promise.all([first, ...rest]);
    // now() is the transaction's start: rows committed together share it.
    const commits = await test.database.query(
      `SELECT count(DISTINCT created_at)::int AS n FROM outbox_messages WHERE agent_id = 'gather'`,
    );
    expect(commits[0]?.n).toBe(2);
  });

  it('hands committed rows to the dispatcher in the order they were accepted, whichever commit ends first', async () => {
    const { sut, engine, connect, faults } = await setup();
    await connect('order');
    faults.hold('outbox_insert', 1);
    const first = sut.submit('order', text('first'));
    await until(() => faults.held === 1);
    const second = sut.submit('order', text('second'));
    // The second commit ends while the first is still held: it waits for the first to be handed over.
    await until(async () => (await rows('order')).length === 1);
    expect(engine.sent('order')).toEqual([]);
    faults.release();
    await Promise.all([first, second]);
    expect(engine.sent('order').map((s) => s.text)).toEqual(['first', 'second']);
  });

  it('fails a message at once, without retries, when WhatsApp refuses its recipient, and goes on with the next', async () => {
    const { sut, engine, connect, clock, metrics } = await setup();
    await connect('refused');
    engine.failSends('refused', 1, 'not_on_whatsapp');
    const refused = await sut.submit('refused', text('nobody there', '6289999999999@c.us'));
    expect(refused).toMatchObject({ delivered: false, status: 'failed' });
    expect(clock.pending()).toEqual([]); // no retry backoff holds the queue
    expect(await sut.get('refused', refused.messageId)).toMatchObject({
      status: 'failed',
      attempts: 1,
      error: '6289999999999@c.us is not on WhatsApp',
    });
    expect(await sut.submit('refused', text('next'))).toMatchObject({ status: 'sent' });
    expect(engine.sent('refused').map((s) => s.text)).toEqual(['next']);
    const failed = (await metrics.outboxTransitions.get()).values.find((v) => v.labels.state === 'failed');
    expect(failed?.value).toBe(1);
  });

  it('fails with account_changed, unsent, what was queued for a number the agent is no longer linked to', async () => {
    const { sut, engine, connect, gateway, clock } = await setup({ rateLimitBurst: 1, sendWaitMs: 0 });
    const session = await connect('relinked');
    await sut.submit('relinked', text('from the first number'));
    const waiting = await sut.submit('relinked', text('queued for the first number'));
    await until(() => engine.sent('relinked').length === 1 && clock.pending().length === 1);
    // The phone unlinks the device; the owner links the agent to another number.
    gateway.setNotReady('relinked');
    gateway.setReady('relinked', session, '6281100000002@c.us');
    // At once, not when the token it waits for arrives.
    expect(await sut.get('relinked', waiting.messageId)).toMatchObject({ status: 'failed' });
    expect(await sut.get('relinked', waiting.messageId)).toMatchObject({ error: 'account_changed', attempts: 0 });
    expect(engine.sent('relinked').map((s) => s.text)).toEqual(['from the first number']);
    expect(await sut.submit('relinked', text('from the second number'))).toMatchObject({ status: 'queued' });
    await clock.advance(600);
    await until(() => engine.sent('relinked').length === 2);
    expect(engine.sent('relinked').at(-1)?.text).toBe('from the second number');
  });

  // On PGlite too: a file's chunks and its row are statements of their own, none holding the one connection.
  it('commits an image alone, so its bytes never hold up the texts of other agents', async () => {
    const { sut, engine, connect, faults } = await setup();
    await connect('pictures');
    await connect('chatty');
    faults.hold('outbox_insert_media');
    const image = sut.submit('pictures', {
      kind: 'image',
      toJid: '6281234567890@c.us',
      media: Buffer.alloc(2 * 1024 * 1024, 7),
      payload: { mimeType: 'image/png', filename: 'big.png' },
    });
    await until(() => faults.held === 1);
    expect(await sut.submit('chatty', text('not behind the image'))).toMatchObject({ status: 'sent' });
    faults.release();
    expect(await image).toMatchObject({ status: 'sent' });
    expect(engine.sent('pictures')).toEqual([expect.objectContaining({ kind: 'image', bytes: 2 * 1024 * 1024 })]);
  });

  it("never holds one agent's file behind another agent's, nor a read of a message behind a file", async () => {
    const { sut, engine, connect, faults } = await setup();
    await connect('large-files');
    await connect('small-files');
    const file = (bytes: number) => ({
      kind: 'document' as const,
      toJid: '6281234567890@c.us',
      media: Buffer.alloc(bytes, 7),
      payload: { mimeType: 'application/pdf', filename: 'f.pdf' },
    });
    const sent = await sut.submit('small-files', text('before'));
    // The large file's commit stalls before its row; the other agent's file and reads go on meanwhile.
    faults.hold('outbox_insert_media', 1);
    const large = sut.submit('large-files', file(3 * 1024 * 1024));
    await until(() => faults.held === 1);
    expect(await sut.submit('small-files', file(1024))).toMatchObject({ status: 'sent' });
    expect(await sut.get('small-files', sent.messageId)).toMatchObject({ status: 'sent' });
    expect(engine.sent('large-files')).toEqual([]);
    faults.release();
    expect(await large).toMatchObject({ status: 'sent' });
  });

  it('stops the commit of a file whose caller was told 503: no row, no chunks', async () => {
    const { sut, engine, connect, faults, clock } = await setup();
    await connect('given-up');
    faults.hold('outbox_media_chunk', 1);
    const submitted = sut.submit('given-up', {
      kind: 'document',
      toJid: '6281234567890@c.us',
      media: Buffer.alloc(2 * 1024 * 1024 + 1, 7),
      payload: { mimeType: 'application/pdf', filename: 'late.pdf' },
    });
    const answer = submitted.catch((err: unknown) => err);
    await until(() => faults.held === 1);
    await clock.advance(5_000);
    expect(await answer).toMatchObject({ code: 'DATABASE_UNAVAILABLE' });
    faults.release();
    await sut.close(); // after the commit under way, and what it wrote
    const [counts] = await test.database.query(
      `SELECT (SELECT count(*)::int FROM outbox_messages WHERE agent_id = 'given-up') AS rows,
         (SELECT count(*)::int FROM outbox_media_chunks) AS chunks`,
    );
    expect(counts).toEqual({ rows: 0, chunks: 0 });
    expect(engine.sent('given-up')).toEqual([]);
  });

  it('spaces messages to a recipient from the last message sent there, not from a read mark or typing', async () => {
    const { repository } = await setup();
    const message = queuedRow('spacing', 'hello');
    const read = { ...queuedRow('spacing', 'read'), kind: 'read' as const };
    const typing = { ...queuedRow('spacing', 'typing'), kind: 'typing' as const };
    await repository.write([message, read, typing], []);
    const sentAt = Date.UTC(2026, 10, 29, 10, 0, 0);
    await repository.write(
      [],
      [message, read, typing].map((row, i) => ({
        id: row.id,
        status: 'sent' as const,
        attempts: 1,
        waMessageId: null,
        error: null,
        at: sentAt + i * 60_000,
      })),
    );
    expect(await repository.lastSentTo('spacing', '6281234567890@c.us')).toBe(sentAt);
    expect(await repository.lastSentTo('spacing', '6289999999999@c.us')).toBeNull();
  });

  it('keeps a newer outcome when an older one of the same row lands after it (batches commit side by side)', async () => {
    const { repository } = await setup();
    const row = queuedRow('late', 'x');
    await repository.write([row], []);
    const outcome = { id: row.id, waMessageId: null, error: null, at: Date.now() };
    await repository.write([], [{ ...outcome, status: 'sent', attempts: 2, waMessageId: 'wa-2' }]);
    await repository.write([], [{ ...outcome, status: 'queued', attempts: 1, error: 'first try failed' }]);
    expect(await rows('late')).toEqual([
      expect.objectContaining({ status: 'sent', attempts: 2, wa_message_id: 'wa-2', error: null }),
    ]);
  });

  it('writes alone the rows of a batch that PostgreSQL refuses for one bad row, so the others still go', async () => {
    const { sut, engine, connect } = await setup();
    await connect('bad-row');
    const results = await Promise.allSettled([
      sut.submit('bad-row', text('fine')),
      // PostgreSQL's jsonb cannot hold a NUL character: this row alone is refused.
      sut.submit('bad-row', text('nul\u0000inside')),
      sut.submit('bad-row', text('also fine')),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(engine.sent('bad-row').map((s) => s.text)).toEqual(['fine', 'also fine']);
  });

  it('close() clears the rate-limit timers and releases waiting requests', async () => {
    const { sut, connect, clock } = await setup({ rateLimitBurst: 1, sendWaitMs: 60_000 });
    await connect('closing');
    await sut.submit('closing', text('one'));
    const waiting = sut.submit('closing', text('two'));
    await until(() => clock.pending().length === 2); // the token wait and the request's wait
    await sut.close();
    expect(clock.pending()).toEqual([]);
    await expect(waiting).resolves.toMatchObject({ delivered: false, status: 'queued' });
  });
});
