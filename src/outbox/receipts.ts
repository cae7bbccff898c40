// WhatsApp's receipts of sent messages (server, delivered, read, played, and an error), recorded on their outbox rows.
//
// A receipt names its message by WhatsApp's id, which the row holds only once its `sent` state is written, and that
// state is written behind the send (outbox.store.ts): WhatsApp can be quicker. So:
//   1. Receipts gather in memory, merged per message, and are written in batches (one statement each, one batch at a
//      time, so that the first receipt of a kind is the one that stays).
//   2. Before a batch is written, the store is flushed: every outcome recorded before these receipts arrived is then in
//      the table, and a receipt that came between the send and the write of its `sent` state finds its row at once.
//   3. A receipt that still finds no row is kept in memory and tried again, 1 s, 2 s, 4 s … 30 s later (ten tries over
//      about 3 minutes): it came before the engine's send even returned, or the row's `sent` state could not be written
//      yet (the database was away; a batch that fails for that reason does not count as a try). At most 10,000 wait so,
//      the oldest going first past that. A receipt of a message that is not in the outbox (one sent from the phone
//      itself) ends there too.
// Memory rather than a table of unmatched receipts: a receipt arrives on the member that runs the session, which is the
// member that sent the message and holds its unwritten outcome, so the wait is a few milliseconds in the common case;
// when it is longer the database is away, and a table would not be writable either. A process that dies loses the
// receipts it had not written, as it would lose a receipt that arrived a moment before it died.
//
// A receipt implies those before it (a message read was delivered, one delivered reached the server): a read that came
// without a delivery receipt records both at its time, and a delivery receipt that comes after the read changes
// nothing. Times never go back: each is set once, by the first receipt that gives it.
import type { Clock, Timer } from '../clock.js';
import { isDatabaseUnavailable } from '../db/availability.js';
import type { MessageAck } from '../engines/engine.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { type OutboxRepository, type ReceiptUpdate, receiptKey } from './outbox.repository.js';
import type { OutboxStore } from './outbox.store.js';

/** The receipts in the order a message goes through them; each implies those before it. */
const IN_ORDER = ['server', 'delivered', 'read', 'played'] as const;
/** Receipts per statement. */
const MAX_BATCH = 500;
/** Receipts waiting for their row, at most. */
const MAX_WAITING = 10_000;
/** The waits before each new try of a receipt that found no row; past the last, it is given up. */
const RETRY_DELAYS_MS = [1_000, 2_000, 4_000, 8_000, 15_000, 30_000, 30_000, 30_000, 30_000, 30_000];
/** The error recorded for an `error` receipt that says nothing more. */
const UNKNOWN_ERROR = 'WhatsApp reported an error for the message';

/** A message's receipts not written yet. */
interface Pending extends ReceiptUpdate {
  key: string;
  /** Tries that found no row. */
  tries: number;
  /** clock.now() at which a waiting receipt is tried again. */
  due: number;
}

export interface OutboxReceiptsOptions {
  repository: Pick<OutboxRepository, 'writeReceipts'>;
  /** Flushed before each batch, so that the outcomes recorded before the receipts are in the table. */
  store: Pick<OutboxStore, 'flush'>;
  clock: Clock;
  logger: Logger;
  metrics: Pick<Metrics, 'countAck'>;
}

export class OutboxReceipts {
  /** What the next batch writes, by message. */
  private next = new Map<string, Pending>();
  /** Receipts that found no row yet, by message, until they are due again. Never holds a message `next` holds. */
  private readonly waiting = new Map<string, Pending>();
  /** Resolves once the batch that takes `next` is written. */
  private nextWritten: { promise: Promise<void>; resolve: () => void } | undefined;
  private writing: Promise<void> | undefined;
  private draining = false;
  private timer: Timer | undefined;
  private timerDue = Number.POSITIVE_INFINITY;
  private closed = false;

  constructor(private readonly options: OutboxReceiptsOptions) {}

  /** A receipt an engine reported for a message `agentId` sent; counted, then written behind. */
  record(agentId: string, ack: MessageAck): void {
    this.options.metrics.countAck(ack.status, agentId);
    if (this.closed) return;
    const key = receiptKey(agentId, ack.waMessageId);
    let pending = this.next.get(key);
    if (!pending) {
      // A receipt of a message that waits for its row brings it along now.
      pending = this.waiting.get(key) ?? newPending(key, agentId, ack.waMessageId);
      this.waiting.delete(key);
      this.next.set(key, pending);
    }
    apply(pending, ack, ack.at ?? this.options.clock.now());
    this.schedule();
  }

  /** Resolves once the receipts recorded before it have been tried (written, or left waiting for their row). */
  flush(): Promise<void> {
    if (this.next.size > 0) {
      if (!this.nextWritten) {
        let resolve = () => {};
        const promise = new Promise<void>((done) => {
          resolve = done;
        });
        this.nextWritten = { promise, resolve };
      }
      return this.nextWritten.promise;
    }
    return this.writing ?? Promise.resolve();
  }

  /** Tries the receipts still waiting one last time, writes what is recorded, and takes no more. */
  async close(): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    for (const [key, pending] of this.waiting) if (!this.next.has(key)) this.next.set(key, pending);
    this.waiting.clear();
    this.closed = true;
    if (this.next.size > 0) this.schedule();
    await this.flush();
  }

  private schedule(): void {
    if (this.draining) return;
    this.draining = true;
    // The rest of this turn's receipts join the batch.
    setImmediate(() => void this.drain());
  }

  private async drain(): Promise<void> {
    while (this.next.size > 0) {
      const batch = [...this.next.values()];
      this.next = new Map();
      const written = this.nextWritten;
      this.nextWritten = undefined;
      this.writing = this.write(batch);
      await this.writing;
      written?.resolve();
    }
    this.writing = undefined;
    this.draining = false;
  }

  /** Writes a batch; what finds no row waits to be tried again. Never throws. */
  private async write(batch: Pending[]): Promise<void> {
    await this.options.store.flush();
    for (let i = 0; i < batch.length; i += MAX_BATCH) {
      const chunk = batch.slice(i, i + MAX_BATCH);
      let found: Set<string>;
      try {
        found = await this.options.repository.writeReceipts(chunk);
      } catch (err) {
        this.options.logger.warn({
          event: 'outbox.receipts.write_failed',
          count: chunk.length,
          err: errorMessage(err),
        });
        // The database is away: the rows may well be there, so this try does not count.
        const counts = !isDatabaseUnavailable(err);
        for (const pending of chunk) this.keep(pending, counts);
        continue;
      }
      for (const pending of chunk) if (!found.has(pending.key)) this.keep(pending, true);
    }
  }

  /** A receipt that found no row waits to be tried again, unless it has had its tries. */
  private keep(pending: Pending, counts: boolean): void {
    if (counts) pending.tries += 1;
    const delay = RETRY_DELAYS_MS[Math.max(0, pending.tries - 1)];
    if (delay === undefined || this.closed) {
      this.options.logger.debug({
        event: 'outbox.receipt.unmatched',
        agentId: pending.agentId,
        waMessageId: pending.waMessageId,
      });
      return;
    }
    const newer = this.next.get(pending.key);
    if (newer) {
      // Receipts that came while this one was written go in the next batch: carry this one's (earlier) times there.
      absorb(newer, pending);
      return;
    }
    pending.due = this.options.clock.now() + delay;
    this.waiting.set(pending.key, pending);
    if (this.waiting.size > MAX_WAITING) {
      const [oldest] = this.waiting.keys();
      if (oldest !== undefined) this.waiting.delete(oldest);
      this.options.logger.warn({ event: 'outbox.receipts.overflow', max: MAX_WAITING });
    }
    this.arm(pending.due);
  }

  /** The one timer, for the earliest receipt due. */
  private arm(due: number): void {
    if (this.timer && this.timerDue <= due) return;
    this.timer?.cancel();
    this.timerDue = due;
    const { clock } = this.options;
    this.timer = clock.setTimeout(() => this.retryDue(), Math.max(0, due - clock.now()), { background: true });
  }

  private retryDue(): void {
    this.timer = undefined;
    this.timerDue = Number.POSITIVE_INFINITY;
    const now = this.options.clock.now();
    let earliest = Number.POSITIVE_INFINITY;
    for (const [key, pending] of this.waiting) {
      if (pending.due <= now) {
        this.waiting.delete(key);
        this.next.set(key, pending);
      } else earliest = Math.min(earliest, pending.due);
    }
    if (earliest < Number.POSITIVE_INFINITY) this.arm(earliest);
    if (this.next.size > 0) this.schedule();
  }
}

function newPending(key: string, agentId: string, waMessageId: string): Pending {
  return {
    key,
    agentId,
    waMessageId,
    server: null,
    delivered: null,
    read: null,
    played: null,
    error: null,
    errorAt: null,
    tries: 0,
    due: 0,
  };
}

/** Adds a receipt: its time, and that of every receipt it implies, where none is known yet (the first one wins). */
function apply(pending: Pending, ack: MessageAck, at: number): void {
  if (ack.status === 'error') {
    pending.error ??= ack.error || UNKNOWN_ERROR;
    pending.errorAt ??= at;
    return;
  }
  for (const status of IN_ORDER) {
    pending[status] ??= at;
    if (status === ack.status) return;
  }
}

/** Merges an earlier pending receipt of the same message into a later one: the earlier one's times win. */
function absorb(later: Pending, earlier: Pending): void {
  for (const status of IN_ORDER) later[status] = earlier[status] ?? later[status];
  if (earlier.error !== null) {
    later.error = earlier.error;
    later.errorAt = earlier.errorAt;
  }
  later.tries = Math.max(later.tries, earlier.tries);
}
