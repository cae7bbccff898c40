import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { connectionRefused } from '../../test/helpers/faulty-database.js';
import { FakeClock } from '../__fixtures__/fake-clock.js';
import type { AckStatus } from '../engines/engine.js';
import { type ReceiptUpdate, receiptKey } from './outbox.repository.js';
import { OutboxReceipts } from './receipts.js';

const logger = pino({ level: 'silent' });
const T0 = Date.UTC(2026, 0, 1);

/** The table as far as receipts go: rows by agent and WhatsApp id, updated as the repository's statement does. */
class FakeRows {
  readonly rows = new Map<string, Omit<ReceiptUpdate, 'agentId' | 'waMessageId'>>();
  readonly statements: ReceiptUpdate[][] = [];
  failures: Error[] = [];
  /** The next statement waits for it. */
  gate: Promise<void> | undefined;
  /** Runs once, after the next statement. */
  afterWrite: (() => void) | undefined;

  /** The row's `sent` state is written: receipts find it from now on. */
  sent(agentId: string, waMessageId: string): void {
    const empty = { server: null, delivered: null, read: null, played: null, error: null, errorAt: null };
    this.rows.set(receiptKey(agentId, waMessageId), empty);
  }

  row(agentId: string, waMessageId: string) {
    return this.rows.get(receiptKey(agentId, waMessageId));
  }

  readonly writeReceipts = async (updates: readonly ReceiptUpdate[]): Promise<Set<string>> => {
    const gate = this.gate;
    this.gate = undefined;
    await gate;
    this.statements.push([...updates]);
    const failure = this.failures.shift();
    if (failure) throw failure;
    const found = new Set<string>();
    for (const update of updates) {
      const key = receiptKey(update.agentId, update.waMessageId);
      const row = this.rows.get(key);
      if (!row) continue;
      found.add(key);
      row.server ??= update.server;
      row.delivered ??= update.delivered;
      row.read ??= update.read;
      row.played ??= update.played;
      row.error ??= update.error;
      row.errorAt ??= update.errorAt;
    }
    const after = this.afterWrite;
    this.afterWrite = undefined;
    after?.();
    return found;
  };
}

function setup() {
  const clock = new FakeClock(T0);
  const rows = new FakeRows();
  let flushes = 0;
  const counted: Array<[string, string]> = [];
  const receipts = new OutboxReceipts({
    repository: rows,
    store: {
      flush: async () => {
        flushes += 1;
      },
    },
    clock,
    logger,
    metrics: { countAck: (status, agentId) => counted.push([status, agentId]) },
  });
  const ack = (waMessageId: string, status: AckStatus, at?: number, agentId = 'a1') =>
    receipts.record(agentId, { waMessageId, status, ...(at === undefined ? {} : { at }), error: 'boom' });
  return { clock, rows, receipts, ack, counted, flushes: () => flushes };
}

describe('OutboxReceipts', () => {
  it('writes the receipts of a turn in one statement, after a flush of the store, and counts every one', async () => {
    const { rows, receipts, ack, counted, flushes } = setup();
    rows.sent('a1', 'W1');
    rows.sent('a2', 'W1');
    ack('W1', 'server', T0 + 1);
    ack('W1', 'delivered', T0 + 2);
    ack('W1', 'read', T0 + 3, 'a2');
    await receipts.flush();
    expect(flushes()).toBe(1);
    expect(rows.statements).toHaveLength(1);
    expect(rows.statements[0]).toHaveLength(2);
    expect(rows.row('a1', 'W1')).toMatchObject({ server: T0 + 1, delivered: T0 + 2, read: null, played: null });
    // A receipt implies those before it, at its own time.
    expect(rows.row('a2', 'W1')).toMatchObject({ server: T0 + 3, delivered: T0 + 3, read: T0 + 3, played: null });
    expect(counted).toEqual([
      ['server', 'a1'],
      ['delivered', 'a1'],
      ['read', 'a2'],
    ]);
  });

  it('never goes back: the first time of each receipt stays, a late or repeated one changes nothing', async () => {
    const { rows, receipts, ack } = setup();
    rows.sent('a1', 'W1');
    ack('W1', 'read', T0 + 10);
    ack('W1', 'delivered', T0 + 5); // same batch, after the read
    await receipts.flush();
    ack('W1', 'delivered', T0 + 20);
    ack('W1', 'read', T0 + 30);
    ack('W1', 'error', T0 + 40);
    ack('W1', 'error', T0 + 50);
    await receipts.flush();
    expect(rows.row('a1', 'W1')).toEqual({
      server: T0 + 10,
      delivered: T0 + 10,
      read: T0 + 10,
      played: null,
      error: 'boom',
      errorAt: T0 + 40,
    });
  });

  it('stamps a receipt without a time with the clock', async () => {
    const { rows, receipts, ack, clock } = setup();
    rows.sent('a1', 'W1');
    await clock.advance(1_234);
    ack('W1', 'delivered');
    await receipts.flush();
    expect(rows.row('a1', 'W1')?.delivered).toBe(T0 + 1_234);
  });

  it('keeps a receipt that finds no row and writes it once the row is there, with its own time', async () => {
    const { rows, receipts, ack, clock } = setup();
    ack('W1', 'delivered', T0 + 1);
    await receipts.flush();
    expect(rows.statements).toHaveLength(1);
    expect(clock.pending()).toEqual([1_000]);
    rows.sent('a1', 'W1');
    await clock.advance(1_000);
    await receipts.flush();
    expect(rows.statements).toHaveLength(2);
    expect(rows.row('a1', 'W1')).toMatchObject({ server: T0 + 1, delivered: T0 + 1 });
    expect(clock.pending()).toEqual([]);
  });

  it('a new receipt of a waiting message brings it along at once, earlier times first', async () => {
    const { rows, receipts, ack } = setup();
    ack('W1', 'server', T0 + 1);
    await receipts.flush();
    rows.sent('a1', 'W1');
    ack('W1', 'read', T0 + 9);
    await receipts.flush();
    expect(rows.row('a1', 'W1')).toMatchObject({ server: T0 + 1, delivered: T0 + 9, read: T0 + 9 });
  });

  it('gives a receipt that never finds its row up after ten tries, backing off to 30 s', async () => {
    const { rows, receipts, ack, clock } = setup();
    ack('NOT-OURS', 'read', T0);
    await receipts.flush();
    const waits: number[] = [];
    while (clock.pending().length > 0) {
      waits.push(clock.pending()[0] ?? 0);
      await clock.next();
      await receipts.flush();
    }
    expect(waits).toEqual([1_000, 2_000, 4_000, 8_000, 15_000, 30_000, 30_000, 30_000, 30_000, 30_000]);
    expect(rows.statements).toHaveLength(11);
  });

  it('does not count a try while the database is away, and writes once it answers', async () => {
    const { rows, receipts, ack, clock } = setup();
    rows.sent('a1', 'W1');
    rows.failures = Array.from({ length: 20 }, connectionRefused);
    ack('W1', 'played', T0 + 1);
    for (let i = 0; i < 20; i++) {
      await receipts.flush();
      expect(clock.pending()).toEqual([1_000]);
      await clock.next();
    }
    await receipts.flush();
    expect(rows.row('a1', 'W1')).toMatchObject({ played: T0 + 1, read: T0 + 1 });
  });

  it('a receipt that arrives while its message is written goes in the next batch, with the earlier times', async () => {
    const { rows, receipts, ack, clock } = setup();
    let release = () => {};
    rows.gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    // The row's `sent` state lands just after the first batch looked for it.
    rows.afterWrite = () => rows.sent('a1', 'W1');
    ack('W1', 'server', T0 + 1);
    await new Promise((resolve) => setImmediate(resolve)); // the first batch is under way
    ack('W1', 'delivered', T0 + 2);
    release();
    await receipts.flush();
    expect(rows.statements).toHaveLength(2);
    expect(rows.row('a1', 'W1')).toMatchObject({ server: T0 + 1, delivered: T0 + 2 });
    expect(clock.pending()).toEqual([]);
  });

  it('close() tries the waiting receipts once more, then takes no more', async () => {
    const { rows, receipts, ack, clock } = setup();
    ack('W1', 'delivered', T0 + 1);
    await receipts.flush();
    rows.sent('a1', 'W1');
    await receipts.close();
    expect(rows.row('a1', 'W1')).toMatchObject({ delivered: T0 + 1 });
    expect(clock.pending()).toEqual([]);
    ack('W1', 'read', T0 + 2);
    await receipts.flush();
    expect(rows.row('a1', 'W1')?.read).toBeNull();
  });
});
