// Group commit in the outbox: concurrent submits share one INSERT, sent marks share one UPDATE; neither may change
// what each request gets, the per-agent send order, or what survives a failure.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/database.js';
import { until } from '../../test/helpers/messaging.js';
import type { Database } from '../db/client.js';
import { SandboxEngine, type SandboxSession } from '../engines/sandbox/sandbox.engine.js';
import { createLogger } from '../observability/logger.js';
import { createMetrics } from '../observability/metrics.js';
import { InsertBatcher } from './insert-batcher.js';
import { type NewOutboxMessage, OutboxRepository } from './outbox.repository.js';
import { type OutboxDraft, OutboxService } from './outbox.service.js';
import { InMemorySessionGateway } from './session-gateway.js';
import { TokenBuckets } from './token-bucket.js';

const text = (body: string): OutboxDraft => ({
  kind: 'text',
  toJid: '6281234567890@c.us',
  payload: { text: body, fingerprint: `fp-${body}` },
});

describe('outbox group commit', () => {
  let test: TestDatabase;
  let dir: string;
  const services: OutboxService[] = [];

  beforeAll(async () => {
    test = await createTestDatabase();
    dir = await mkdtemp(path.join(tmpdir(), 'outbox-batch-test-'));
  });
  afterEach(async () => {
    await Promise.all(services.splice(0).map((s) => s.close()));
    await test.database.query('DELETE FROM outbox_messages');
  });
  afterAll(async () => {
    await test.drop();
    await rm(dir, { recursive: true, force: true });
  });

  async function setup(repository: OutboxRepository, sendWaitMs = 2_000) {
    const engine = new SandboxEngine({ dir });
    const gateway = new InMemorySessionGateway();
    const make = (repo = repository) =>
      new OutboxService({
        repository: repo,
        sessions: gateway,
        buckets: new TokenBuckets({ capacity: 1_000, refillPerMinute: 1_000 }),
        metrics: createMetrics({ perAgent: false, collectProcessMetrics: false }),
        logger: createLogger({ level: 'silent' }),
        sendWaitMs,
        queueMaxPerAgent: 500,
      });
    const sut = make();
    services.push(sut);
    const connect = async (agentId: string) => {
      const session = engine.createSession(agentId) as SandboxSession;
      await session.start();
      session.connect('6281100000001');
      gateway.setReady(agentId, session);
    };
    return { sut, make, engine, connect };
  }

  /** The test database, counting the outbox INSERT and `sent` UPDATE statements. */
  function counting() {
    const counts = { inserts: 0, sentUpdates: 0 };
    const database: Database = {
      ...test.database,
      query: (sql, params) => {
        if (sql.includes('INSERT INTO outbox_messages')) counts.inserts += 1;
        if (sql.includes("status = 'sent'")) counts.sentUpdates += 1;
        return test.database.query(sql, params);
      },
    };
    return { counts, database };
  }

  it('writes concurrent submits with one INSERT and sends each agent FIFO across the batch', async () => {
    const { counts, database } = counting();
    const { sut, engine, connect } = await setup(new OutboxRepository(database));
    await connect('b1');
    await connect('b2');
    const bodies = Array.from({ length: 8 }, (_, i) => `m${i}`);
    const results = await Promise.all(bodies.map((b, i) => sut.submit(i % 2 ? 'b2' : 'b1', text(b))));
    expect(counts.inserts).toBe(1);
    expect(results.every((r) => r.status === 'sent' && r.delivered)).toBe(true);
    expect(new Set(results.map((r) => r.messageId)).size).toBe(8);
    expect(engine.sent('b1').map((s) => s.text)).toEqual(['m0', 'm2', 'm4', 'm6']);
    expect(engine.sent('b2').map((s) => s.text)).toEqual(['m1', 'm3', 'm5', 'm7']);
    expect(counts.sentUpdates).toBeLessThan(8);
    const rows = await test.database.query('SELECT status FROM outbox_messages');
    expect(rows.map((r) => r.status)).toEqual(Array(8).fill('sent'));
  });

  it('keeps idempotency exact inside one batch: one row, every request answered with it', async () => {
    const { counts, database } = counting();
    const { sut, engine, connect } = await setup(new OutboxRepository(database));
    await connect('idem');
    const results = await Promise.all(
      [1, 2, 3].map(() => sut.submit('idem', text('once'), { idempotencyKey: 'same' })),
    );
    expect(counts.inserts).toBe(1);
    expect(new Set(results.map((r) => r.messageId)).size).toBe(1);
    expect(engine.sent('idem')).toHaveLength(1);
  });

  it('answers sent but keeps the row `sending` when the batch UPDATE fails, and resends it at boot', async () => {
    class FailingSentUpdate extends OutboxRepository {
      override async markSentMany(): Promise<void> {
        throw new Error('database down');
      }
    }
    const { sut, make, engine, connect } = await setup(new FailingSentUpdate(test.database));
    await connect('lost');
    const result = await sut.submit('lost', text('keep me'));
    expect(result.status).toBe('sent');
    expect((await sut.get('lost', result.messageId)).status).toBe('sending');
    await sut.close();
    const next = make(new OutboxRepository(test.database));
    services.push(next);
    expect(await next.resumeAll()).toBe(1);
    await until(async () => (await next.get('lost', result.messageId)).status === 'sent');
    expect(engine.sent('lost').map((s) => s.text)).toEqual(['keep me', 'keep me']);
  });
});

describe('InsertBatcher', () => {
  const message = (id: string): NewOutboxMessage => ({
    id,
    agentId: 'a',
    kind: 'text',
    toJid: 'x@c.us',
    payload: { fingerprint: id },
    media: null,
    idempotencyKey: null,
    traceId: null,
  });

  it('retries each row on its own when the shared INSERT fails, so one bad row fails only its request', async () => {
    const single: string[] = [];
    const batcher = new InsertBatcher({
      insertMany: async () => {
        throw new Error('batch refused');
      },
      insert: async (m) => {
        single.push(m.id);
        if (m.id === 'bad') throw new Error('bad row');
        return null;
      },
    });
    const settled = await Promise.allSettled(['ok1', 'bad', 'ok2'].map((id) => batcher.insert(message(id))));
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(single.sort()).toEqual(['bad', 'ok1', 'ok2']);
  });

  it('passes a lone failed INSERT’s error through', async () => {
    const batcher = new InsertBatcher({
      insertMany: async () => {
        throw new Error('down');
      },
      insert: async () => null,
    });
    await expect(batcher.insert(message(randomUUID()))).rejects.toThrow('down');
  });
});
