import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/database.js';
import { until } from '../../test/helpers/messaging.js';
import { SandboxEngine, type SandboxSession } from '../engines/sandbox/sandbox.engine.js';
import { AppError } from '../errors.js';
import { createLogger } from '../observability/logger.js';
import { createMetrics } from '../observability/metrics.js';
import { FakeTimers } from './__fixtures__/outbox-fakes.js';
import { type NewOutboxMessage, OutboxRepository, type OutboxTransition } from './outbox.repository.js';
import { type OutboxDraft, OutboxService, type OutboxServiceOptions } from './outbox.service.js';
import { InMemorySessionGateway } from './session-gateway.js';
import { TokenBuckets } from './token-bucket.js';

function fakeClock() {
  let now = 0;
  return {
    now: () => now,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

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

/** The real repository, counting its writes; it can fail the next writes that carry outcomes, or new rows. */
class CountingRepository extends OutboxRepository {
  writes = 0;
  failOutcomes = 0;
  failInserts = 0;
  /** Holds every write that carries new rows until `release()`. */
  holdInserts = false;
  private held: Array<() => void> = [];

  release(): void {
    this.holdInserts = false;
    for (const resolve of this.held.splice(0)) resolve();
  }

  override async write(inserts: readonly NewOutboxMessage[], transitions: readonly OutboxTransition[]) {
    this.writes += 1;
    if (inserts.length > 0 && this.holdInserts) await new Promise<void>((resolve) => this.held.push(resolve));
    if (inserts.length > 0 && this.failInserts > 0) {
      this.failInserts -= 1;
      throw new Error('database unavailable');
    }
    if (transitions.length > 0 && this.failOutcomes > 0) {
      this.failOutcomes -= 1;
      throw new Error('database unavailable');
    }
    return super.write(inserts, transitions);
  }
}

describe('OutboxService', () => {
  let test: TestDatabase;
  let dir: string;
  const services: OutboxService[] = [];

  beforeAll(async () => {
    test = await createTestDatabase();
    dir = await mkdtemp(path.join(tmpdir(), 'outbox-test-'));
  });
  afterEach(async () => {
    await Promise.all(services.splice(0).map((s) => s.close()));
    await test.database.query('DELETE FROM outbox_messages');
    await test.database.query('DELETE FROM whatsapp_user');
  });
  afterAll(async () => {
    await test.drop();
    await rm(dir, { recursive: true, force: true });
  });

  async function setup(overrides: Partial<OutboxServiceOptions> & { capacity?: number; perMinute?: number } = {}) {
    const clock = fakeClock();
    const timers = new FakeTimers();
    const engine = new SandboxEngine({ dir });
    const gateway = new InMemorySessionGateway();
    const metrics = createMetrics({ perAgent: false, collectProcessMetrics: false });
    const repository = new OutboxRepository(test.database);
    const make = () =>
      new OutboxService({
        repository,
        sessions: gateway,
        buckets: new TokenBuckets({
          capacity: overrides.capacity ?? 100,
          refillPerMinute: overrides.perMinute ?? 100,
          now: clock.now,
        }),
        metrics,
        logger: createLogger({ level: 'silent' }),
        sendWaitMs: 2_000,
        queueMaxPerAgent: 500,
        timers,
        ...overrides,
      });
    const sut = make();
    services.push(sut);
    const connect = async (agentId: string) => {
      const session = engine.createSession(agentId) as SandboxSession;
      await session.start();
      session.connect('6281100000001');
      gateway.setReady(agentId, session);
      return session;
    };
    return { sut, make, engine, gateway, clock, timers, metrics, repository, connect };
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
    const { sut, engine, connect, clock, timers } = await setup({ sendWaitMs: 0 });
    await connect('burst');
    for (let i = 0; i < 101; i++) await sut.submit('burst', text(`b${i}`));
    await until(() => timers.pending.size === 1);
    expect(engine.sent('burst')).toHaveLength(100);
    expect(timers.delays()).toEqual([600]);
    clock.advance(600);
    timers.fireAll();
    await until(() => engine.sent('burst').length === 101);
    expect(engine.sent('burst').at(-1)?.text).toBe('b100');
  });

  it('keeps agents independent: one agent out of tokens does not hold up another', async () => {
    const { sut, engine, connect } = await setup({ capacity: 1, sendWaitMs: 0 });
    await connect('x1');
    await connect('x2');
    await sut.submit('x1', text('x1-a'));
    await sut.submit('x1', text('x1-b'));
    await sut.submit('x2', text('x2-a'));
    await until(() => sut.dispatcher.depth('x2') === 0 && sut.dispatcher.depth('x1') === 1);
    expect(engine.sent('x2').map((s) => s.text)).toEqual(['x2-a']);
    expect(engine.sent('x1').map((s) => s.text)).toEqual(['x1-a']);
  });

  it('answers 429 RATE_LIMITED with Retry-After once an agent has QUEUE_MAX_PER_AGENT waiting', async () => {
    const { sut, connect } = await setup({ capacity: 1, queueMaxPerAgent: 5, sendWaitMs: 0 });
    await connect('full');
    await sut.submit('full', text('first'));
    await until(() => sut.dispatcher.depth('full') === 0);
    const accepted = await Promise.all(Array.from({ length: 5 }, (_, i) => sut.submit('full', text(`q${i}`))));
    expect(accepted.every((r) => r.status === 'queued' && !r.delivered)).toBe(true);
    const refused = await sut.submit('full', text('over')).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(AppError);
    expect(refused).toMatchObject({ code: 'RATE_LIMITED', status: 429, headers: { 'retry-after': '1' } });
    expect(await rows('full')).toHaveLength(6);
  });

  it('reports the queue depth when scraped', async () => {
    const { sut, connect, metrics, clock, timers } = await setup({ capacity: 1, sendWaitMs: 0 });
    await connect('depth');
    for (const body of ['one', 'two', 'three']) await sut.submit('depth', text(body));
    const depth = async () => (await metrics.registry.getSingleMetric('whatsapp_outbox_queue_depth')?.get())?.values;
    expect(await depth()).toEqual([expect.objectContaining({ value: 2 })]);
    for (let i = 0; i < 2; i++) {
      await until(() => timers.pending.size === 1);
      clock.advance(600);
      timers.fireAll();
    }
    await until(() => sut.dispatcher.depth('depth') === 0);
    expect(await depth()).toEqual([expect.objectContaining({ value: 0 })]);
  });

  it('does not overfill the queue when requests race', async () => {
    const { sut, connect } = await setup({ capacity: 1, queueMaxPerAgent: 3, sendWaitMs: 0 });
    await connect('race');
    const settled = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => sut.submit('race', text(`r${i}`))));
    // Every slot is reserved before any INSERT finishes, so exactly the queue's capacity gets in.
    expect(settled.filter((s) => s.status === 'fulfilled')).toHaveLength(3);
    expect(settled.filter((s) => s.status === 'rejected').map((s) => s.reason.code)).toEqual(
      Array(7).fill('RATE_LIMITED'),
    );
    expect((await rows('race')).length).toBe(3);
  });

  it('retries a transient failure with backoff and records the attempts', async () => {
    const { sut, engine, connect, timers } = await setup({ sendWaitMs: 0 });
    await connect('flaky');
    engine.failSends('flaky', 2);
    const { messageId } = await sut.submit('flaky', text('try'));
    await until(() => timers.delays().length === 1);
    expect(timers.delays()).toEqual([1_000]);
    timers.fireAll();
    await until(() => timers.delays().length === 1);
    expect(timers.delays()).toEqual([2_000]);
    expect(await sut.get('flaky', messageId)).toMatchObject({
      status: 'queued',
      error: expect.stringContaining('injected'),
    });
    timers.fireAll();
    await until(async () => (await sut.get('flaky', messageId)).status === 'sent');
    expect(await sut.get('flaky', messageId)).toMatchObject({ attempts: 3, error: null });
    expect(engine.sent('flaky')).toHaveLength(1);
  });

  it('marks a message failed with the reason after the retries run out, then moves on', async () => {
    const { sut, engine, connect, timers, metrics } = await setup({ sendWaitMs: 0, maxRetries: 2 });
    await connect('broken');
    engine.failSends('broken', 3);
    const doomed = await sut.submit('broken', text('doomed'));
    await sut.submit('broken', text('next'));
    for (let i = 0; i < 2; i++) {
      await until(() => timers.pending.size === 1);
      timers.fireAll();
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
    const { sut, engine, connect, gateway, timers } = await setup({ sendWaitMs: 0, maxRetries: 0 });
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
    expect(timers.pending.size).toBe(0);
    gateway.setReady('drops', session);
    await until(async () => (await sut.get('drops', messageId)).status === 'sent');
    expect(engine.sent('drops').map((s) => s.text)).toEqual(['later']);
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
    const { sut, connect, gateway } = await setup({ capacity: 1, sendWaitMs: 0 });
    await connect('gone');
    await sut.submit('gone', text('sent'));
    await sut.submit('gone', text('q1'));
    await sut.submit('gone', text('q2'));
    await until(async () => (await rows('gone')).some((r) => r.status === 'sent'));
    await gateway.delete('gone');
    expect((await rows('gone')).map((r) => r.status)).toEqual(['sent']);
    expect(sut.dispatcher.depth('gone')).toBe(0);
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
    services.push(next);
    expect(await next.resumeAll()).toBe(3);
    await until(() => next.dispatcher.depth('boot') === 0);
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
    services.push(next);
    expect(await next.resumeAll()).toBe(1);
    await until(() => next.dispatcher.depth('stays') === 0);
    expect(engine.sent('stays').map((m) => m.text)).toEqual(['fresh']);
    expect(next.dispatcher.depth('deleted')).toBe(0);
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
    services.push(next);
    await next.resumeAll();
    expect(next.dispatcher.depth('wait')).toBe(1);
    expect(engine.sent('wait')).toHaveLength(0);
    await connect('wait');
    await until(() => next.dispatcher.depth('wait') === 0);
    expect(engine.sent('wait').map((m) => m.text)).toEqual(['held']);
  });

  it('writes the messages of one moment, and the outcomes recorded meanwhile, in a few shared statements', async () => {
    const counting = new CountingRepository(test.database);
    const { sut, engine, connect } = await setup({ repository: counting });
    await connect('group');
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => sut.submit('group', text(`g${i}`))));
    expect(results.every((r) => r.status === 'sent')).toBe(true);
    expect(new Set(results.map((r) => r.messageId)).size).toBe(40);
    expect(engine.sent('group')).toHaveLength(40);
    await until(async () => (await rows('group')).every((r) => r.status === 'sent'));
    // 40 inserts and 40 outcomes; one statement each would be 80.
    expect(counting.writes).toBeLessThan(10);
  });

  it('shows a message as sending while WhatsApp has it', async () => {
    const { sut, connect } = await setup();
    const session = await connect('overlay');
    const { release, holding } = holdSends(session);
    const submitted = sut.submit('overlay', text('slow'), { traceId: 't-overlay' });
    await until(holding);
    await until(async () => (await rows('overlay')).length === 1); // the row is written while WhatsApp has it
    const [row] = await rows('overlay');
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
    expect(sut.dispatcher.depth('leaving')).toBe(0);
  });

  it('shows an outcome it could not write yet, and retries the write until the row says sent', async () => {
    const failing = new CountingRepository(test.database);
    const { sut, connect, timers } = await setup({ repository: failing });
    const session = await connect('retry-write');
    const { release, holding } = holdSends(session);
    const submitted = sut.submit('retry-write', text('once'));
    await until(holding);
    await until(async () => (await rows('retry-write')).length === 1); // the outcome comes after the row
    failing.failOutcomes = 1;
    release();
    const result = await submitted;
    expect(result.status).toBe('sent');
    await until(() => timers.pending.size === 1);
    expect((await rows('retry-write'))[0]?.status).toBe('queued');
    expect(await sut.get('retry-write', result.messageId)).toMatchObject({ status: 'sent' });
    timers.fireAll();
    await until(async () => (await rows('retry-write'))[0]?.status === 'sent');
  });

  it('records a failure whose message holds a NUL byte, which PostgreSQL text cannot store', async () => {
    const { sut, connect } = await setup({ sendWaitMs: 2_000, maxRetries: 0 });
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

  it('answers sent without waiting for the row, and inserts the row already sent: one write, not two', async () => {
    const held = new CountingRepository(test.database);
    const { sut, engine, connect } = await setup({ repository: held });
    await connect('early');
    held.holdInserts = true;
    const result = await sut.submit('early', text('at once'), { traceId: 't-early' });
    expect(result).toMatchObject({ delivered: true, status: 'sent' });
    expect(engine.sent('early').map((s) => s.text)).toEqual(['at once']);
    expect(await rows('early')).toEqual([]); // its row is still on its way
    // A read of the message waits for its row rather than answering 404.
    const view = sut.get('early', result.messageId);
    held.release();
    expect(await view).toMatchObject({ status: 'sent', attempts: 1, waMessageId: result.waMessageId });
    expect(await rows('early')).toEqual([
      expect.objectContaining({ id: result.messageId, status: 'sent', attempts: 1, wa_message_id: result.waMessageId }),
    ]);
    expect(held.writes).toBe(1);
    expect(sut.dispatcher.depth('early')).toBe(0);
  });

  it('answers sent only once its row is written while the database is behind', async () => {
    const held = new CountingRepository(test.database);
    const { sut, engine, connect } = await setup({ repository: held, maxUnwritten: 0 });
    await connect('behind');
    held.holdInserts = true;
    let answered = false;
    const submitted = sut.submit('behind', text('waits')).then((result) => {
      answered = true;
      return result;
    });
    await until(() => engine.sent('behind').length === 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(answered).toBe(false);
    held.release();
    expect(await submitted).toMatchObject({ delivered: true, status: 'sent' });
    expect(await rows('behind')).toEqual([expect.objectContaining({ status: 'sent', attempts: 1 })]);
  });

  it('answers queued only once the row of a message that cannot go yet is committed', async () => {
    const held = new CountingRepository(test.database);
    const { sut, connect } = await setup({ repository: held, capacity: 1, sendWaitMs: 50 });
    await connect('later');
    await sut.submit('later', text('first'));
    held.holdInserts = true;
    let answered = false;
    const second = sut.submit('later', text('second')).then((result) => {
      answered = true;
      return result;
    });
    await until(() => sut.dispatcher.depth('later') === 1);
    await new Promise((resolve) => setTimeout(resolve, 100)); // past SEND_WAIT_MS
    expect(answered).toBe(false);
    held.release();
    expect(await second).toMatchObject({ delivered: false, status: 'queued' });
    expect((await rows('later')).map((r) => r.status)).toEqual(['sent', 'queued']);
  });

  it('takes a message back, unsent, when its row cannot be written, and answers with the error', async () => {
    const failing = new CountingRepository(test.database);
    const { sut, engine, connect, clock, timers } = await setup({ repository: failing, capacity: 1, sendWaitMs: 0 });
    await connect('unwritable');
    await sut.submit('unwritable', text('first'));
    await until(async () => (await rows('unwritable'))[0]?.status === 'sent');
    failing.failInserts = 1;
    await expect(sut.submit('unwritable', text('lost'))).rejects.toThrow('database unavailable');
    expect(sut.dispatcher.depth('unwritable')).toBe(0);
    clock.advance(60_000);
    timers.fireAll();
    await sut.submit('unwritable', text('next'));
    await until(() => engine.sent('unwritable').length === 2);
    expect(engine.sent('unwritable').map((s) => s.text)).toEqual(['first', 'next']);
  });

  it('answers with the error, and never sends, when the row of a message waiting for its turn cannot be written', async () => {
    const failing = new CountingRepository(test.database);
    const { sut, engine, connect, timers } = await setup({ repository: failing, capacity: 1, sendWaitMs: 150 });
    await connect('slow-turn');
    await sut.submit('slow-turn', text('first')); // takes the only token: the next message waits for the refill
    await until(async () => (await rows('slow-turn'))[0]?.status === 'sent');
    failing.failInserts = 1;
    // The row fails while the request still waits for the send, long before SEND_WAIT_MS is over.
    await expect(sut.submit('slow-turn', text('lost'))).rejects.toThrow('database unavailable');
    expect(sut.dispatcher.depth('slow-turn')).toBe(0);
    timers.fireAll();
    await until(async () => (await rows('slow-turn')).length === 1);
    expect(engine.sent('slow-turn').map((s) => s.text)).toEqual(['first']);
  });

  it('writes a failed first attempt with the row, and the success of the retry after it', async () => {
    const { sut, engine, connect, timers } = await setup({ sendWaitMs: 0 });
    await connect('fallback');
    engine.failSends('fallback', 1);
    const reply = await sut.submit('fallback', text('again'));
    expect(reply.status).toBe('queued');
    await until(() => timers.pending.size === 1);
    expect(await rows('fallback')).toEqual([
      expect.objectContaining({ status: 'queued', attempts: 1, error: expect.stringContaining('injected') }),
    ]);
    timers.fireAll();
    await until(async () => (await rows('fallback'))[0]?.status === 'sent');
    expect(engine.sent('fallback').map((s) => s.text)).toEqual(['again']);
    expect(await rows('fallback')).toHaveLength(1);
  });

  it('ends each wait at its own deadline, a shorter one begun after a longer one included', async () => {
    const { sut } = await setup();
    const started = performance.now();
    let longEnded = false;
    const long = sut.dispatcher.waitFor('long', 300).then((outcome) => {
      longEnded = true;
      return outcome;
    });
    expect(await sut.dispatcher.waitFor('short', 20)).toBeNull();
    expect(performance.now() - started).toBeLessThan(250);
    expect(longEnded).toBe(false);
    expect(await long).toBeNull();
    expect(performance.now() - started).toBeGreaterThanOrEqual(298);
  });

  it('close() clears the rate-limit timers and releases waiting requests', async () => {
    const { sut, connect, timers } = await setup({ capacity: 1, sendWaitMs: 60_000 });
    await connect('closing');
    await sut.submit('closing', text('one'));
    const waiting = sut.submit('closing', text('two'));
    await until(() => timers.pending.size === 1);
    await sut.close();
    expect(timers.pending.size).toBe(0);
    await expect(waiting).resolves.toMatchObject({ delivered: false, status: 'queued' });
  });
});
