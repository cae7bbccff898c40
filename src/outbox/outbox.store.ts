// Every write the outbox makes goes through here: new rows and the outcomes of sends share one prepared statement
// and one commit per batch (group commit), one batch at a time, so that a row's writes land in the order they were
// made. Under load a batch carries the requests and outcomes of a whole database round trip.
import { Batcher } from '../db/batcher.js';
import { asError } from '../errors.js';
import type { NewOutboxMessage, OutboxRepository, OutboxTransition } from './outbox.repository.js';

type Item =
  | { kind: 'insert'; message: NewOutboxMessage }
  | { kind: 'transition'; transition: OutboxTransition }
  | { kind: 'barrier' };

/** An insert's result: true once written, false when its idempotency key was already used, or the error. */
type Result = boolean | Error | undefined;

export interface OutboxWriterOptions {
  repository: Pick<OutboxRepository, 'write'>;
  /** Called at commit, before any caller hears of it, with each row that was inserted. */
  onInserted(message: NewOutboxMessage): void;
  maxBatch?: number;
  /**
   * Least time between two statements while nobody waits for what is pending (10 ms): the rows of answered
   * requests and the outcomes of sends then share fewer, larger statements.
   */
  lingerMs?: number;
}

export class OutboxWriter {
  private readonly batcher: Batcher<Item, Result>;
  /** Rows handed in and not yet in a batch, by id: an outcome recorded meanwhile is folded into the row. */
  private readonly unbatched = new Map<string, NewOutboxMessage>();

  constructor(private readonly options: OutboxWriterOptions) {
    this.batcher = new Batcher({
      maxInFlight: 1,
      maxBatch: options.maxBatch ?? 500,
      lingerMs: options.lingerMs ?? 10,
      run: (items) => this.run(items),
    });
  }

  /**
   * Resolves once the row is committed with true, or with false when its agent already used its idempotency key. A
   * row nobody waits for yet (`urgent` false) may wait for the linger; `hurry()` ends it.
   */
  insert(message: NewOutboxMessage, urgent = true): Promise<boolean> {
    const written = this.batcher.add({ kind: 'insert', message }, urgent);
    this.unbatched.set(message.id, message);
    return written.then(insertResult);
  }

  /**
   * Hands an outcome to a row whose insert still waits for its batch: the row is inserted in that state, with no
   * write of its own, and the outcome shares the insert's fate. False when no such row waits: the outcome then needs
   * a `transition()` of its own.
   */
  fold(transition: OutboxTransition): boolean {
    const row = this.unbatched.get(transition.id);
    if (!row) return false;
    row.outcome = transition;
    return true;
  }

  /** Resolves once the transition is committed; rejects when its batch could not be written. Never urgent. */
  async transition(transition: OutboxTransition): Promise<void> {
    const result = await this.batcher.add({ kind: 'transition', transition }, false);
    if (result instanceof Error) throw result;
  }

  /** Resolves once everything handed in before it is written or has failed. */
  async barrier(): Promise<void> {
    await this.batcher.add({ kind: 'barrier' }).catch(() => {});
  }

  idle(): Promise<void> {
    return this.batcher.idle();
  }

  /** Someone waits for what is pending: no linger for it. */
  hurry(): void {
    this.batcher.hurry();
  }

  /** Writes handed in and not yet given to a batch. */
  get backlog(): number {
    return this.batcher.waiting;
  }

  private async run(items: Item[]): Promise<Result[]> {
    const inserts: NewOutboxMessage[] = [];
    for (const item of items) {
      if (item.kind !== 'insert') continue;
      this.unbatched.delete(item.message.id); // from here, an outcome is a transition of its own
      inserts.push(item.message);
    }
    // A batch can hold several transitions of one row (a retry, then the send); only the last one counts.
    const latest = new Map<string, OutboxTransition>();
    for (const item of items) if (item.kind === 'transition') latest.set(item.transition.id, item.transition);
    const transitions = [...latest.values()];
    if (inserts.length === 0 && transitions.length === 0) return items.map(() => undefined); // barriers only
    let keyed: Set<string>;
    try {
      keyed = await this.options.repository.write(inserts, transitions);
    } catch (err) {
      if (inserts.length + transitions.length <= 1) throw err;
      return this.runApart(items, inserts, transitions);
    }
    return items.map((item) => (item.kind === 'insert' ? this.inserted(item.message, keyed) : undefined));
  }

  /**
   * The shared statement failed: one bad row must not fail the writes it happened to be batched with, so each row
   * is written on its own, and each caller gets its own result or error (a transition's caller retries it).
   */
  private async runApart(
    items: Item[],
    inserts: NewOutboxMessage[],
    transitions: OutboxTransition[],
  ): Promise<Result[]> {
    const { repository } = this.options;
    const results = new Map<string, Result>();
    for (const transition of transitions) {
      results.set(
        transition.id,
        await repository.write([], [transition]).then(
          () => undefined,
          (err: unknown) => asError(err),
        ),
      );
    }
    for (const message of inserts) {
      results.set(
        message.id,
        await repository.write([message], []).then(
          (keyed) => this.inserted(message, keyed),
          (err: unknown) => asError(err),
        ),
      );
    }
    return items.map((item) => {
      if (item.kind === 'insert') return results.get(item.message.id);
      return item.kind === 'transition' ? results.get(item.transition.id) : undefined;
    });
  }

  /** `keyed`: the rows with an idempotency key that were inserted; a row without one was, once the write succeeded. */
  private inserted(message: NewOutboxMessage, keyed: Set<string>): boolean {
    if (message.idempotencyKey !== null && !keyed.has(message.id)) return false;
    this.options.onInserted(message);
    return true;
  }
}

function insertResult(result: Result): boolean {
  if (result instanceof Error) throw result;
  return result === true;
}
