// Every write the outbox makes goes through here, and every state of a message that is not durable yet lives here.
//
// A message's row, as this process sees it:
//   committing         insert() was called: the row waits for the next batch, or its batch's commit is running. It
//                      holds a place in its agent's queue (committing()), and nothing is sent. When the commit fails,
//                      or has not ended after commitTimeoutMs, the caller gets the error (503 DATABASE_UNAVAILABLE when
//                      the database cannot answer) and the message is never sent: a row still waiting is left out of
//                      its batch, and one whose commit lands after its caller gave up is marked failed at once.
//   queued             committed: onCommitted() has handed it to the dispatcher, before its caller hears of it; the
//                      store forgets it.
//   outcome unwritten  an attempt ended (sent, failed, or queued again for a retry) and its UPDATE is not committed
//                      yet: reads see it through pending(), and a write that fails is tried again with backoff until
//                      it lands. A process that dies meanwhile leaves the row queued: it is sent again after a restart.
//   written            the table holds the latest state; the store forgets it.
//
// Writes go in batches (group commit): what arrives while the commits in flight run goes together in the next one,
// so a lone request waits only for its own commit, and a busy second costs a few statements, not one per message. A
// row with a file goes alone, in a lane of its own, as wide as the files in flight may be (MEDIA_IN_FLIGHT_MAX), so
// that megabytes of one agent's files never slow the batch that carries everyone's texts, nor another agent's file.
import type { Clock, Timer } from '../clock.js';
import { databaseUnavailable, isDatabaseUnavailable, mayHaveCommitted } from '../db/availability.js';
import { Batcher } from '../db/batcher.js';
import { asError, errorMessage } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { NewOutboxMessage, OutboxRepository, OutboxTransition } from './outbox.repository.js';

export interface OutboxStoreOptions {
  repository: Pick<OutboxRepository, 'write'>;
  /** Files committing at once (MEDIA_IN_FLIGHT_MAX): no file waits for another agent's to start. */
  fileCommitsInFlight?: number;
  clock: Clock;
  logger: Logger;
  /** Called with each committed row, in commit order, before its caller hears of it. */
  onCommitted(row: NewOutboxMessage): void;
  /** Longest wait for a row's commit before its caller gets 503 and the message is given up. */
  commitTimeoutMs: number;
  maxBatch?: number;
  /** Wait before writing a failed outcome again (attempt n, 1-based). */
  retryDelayMs?: (attempt: number) => number;
}

/** A row between insert() and the end of its commit. */
interface Committing {
  row: NewOutboxMessage;
  /** clock.now() past which its caller stops waiting. */
  deadline: number;
  /** Its caller has its answer (or gave up); later results change nothing for the caller. */
  answered: boolean;
  /** Its caller gave up before the commit ended: the message must never be sent. */
  abandoned: boolean;
  answer(result: boolean | Error): void;
}

type Item =
  | { kind: 'insert'; entry: Committing }
  | { kind: 'transition'; transition: OutboxTransition }
  | { kind: 'barrier' };

/** An item's outcome: an insert's true/false (committed, or its idempotency key was used), or the error. */
type Result = boolean | Error | undefined;

/**
 * Batches committing at once (2). With one, a request that arrives during a commit waits for it, then for its own;
 * with two, it rarely waits for more than its own, and the next batch still gathers meanwhile. More in flight make
 * smaller batches, each with its fixed cost (measured: no faster at 32 connections, slower at 256).
 */
const COMMITS_IN_FLIGHT = 2;

/**
 * A file's row goes alone, in a lane of its own: its megabytes never ride in (and never slow) the shared batch that
 * carries every other agent's texts. Files committing at once, unless told (fileCommitsInFlight).
 */
const FILE_COMMITS_IN_FLIGHT = 8;

/**
 * A sequence of batches. Each hands its results over once the batch formed before it has, in the same order: for
 * the shared lane, the lane's order (`handedOver`); for files, each agent's own order (`handedOverBy`), so that a
 * small file never waits for another agent's large one to be handed over.
 */
interface Lane {
  batcher: Batcher<Item, Result>;
  handedOver: Promise<void>;
  handedOverBy?: Map<string, Promise<void>>;
}

/** A row's commit may take its timeout once more for every this many bytes of file (commitTimeoutMs()). */
const FILE_BYTES_PER_TIMEOUT = 10 * 1024 * 1024;

const TIMED_OUT = 'not sent: the database did not confirm the write in time';
const LOST_CONNECTION = 'not sent: the connection to the database broke while the write was under way';

/**
 * How long a row's caller waits for the commit of a file of `size` bytes: its chunks are one statement each (each
 * bounded by the database's statement timeout), so a large file gets the timeout once more for every 10 MB it carries.
 * Past that the commit stops before its next statement, so no file's commit runs much longer.
 */
export function fileCommitTimeoutMs(commitTimeoutMs: number, size: number): number {
  return commitTimeoutMs * (1 + Math.floor(size / FILE_BYTES_PER_TIMEOUT));
}

export class OutboxStore {
  /** Texts, outcomes and barriers. */
  private readonly shared: Lane;
  /** Rows that carry a file, one per batch. */
  private readonly files: Lane;
  /** Rows committing, by agent: they count toward the agent's queue room. */
  private readonly committingByAgent = new Map<string, number>();
  /** Rows committing, oldest first (deadlines in order), read from `head`; one timer watches the oldest. */
  private commitQueue: Committing[] = [];
  private head = 0;
  private commitTimer: Timer | undefined;
  /** Outcomes recorded and not committed yet, by row id: the latest of each row. */
  private readonly unwritten = new Map<string, OutboxTransition>();
  private readonly retries = new Set<Timer>();
  private readonly retryDelayMs: (attempt: number) => number;
  /** No more retry timers: what fails waits for close's last write. */
  private closing = false;
  /** That last write is under way: what fails now is lost. */
  private closed = false;

  constructor(private readonly options: OutboxStoreOptions) {
    this.shared = this.lane(COMMITS_IN_FLIGHT, options.maxBatch ?? 500);
    this.files = this.lane(options.fileCommitsInFlight ?? FILE_COMMITS_IN_FLIGHT, 1, true);
    this.retryDelayMs = options.retryDelayMs ?? ((attempt) => Math.min(30_000, 500 * 2 ** attempt));
  }

  /**
   * Commits a new row, `queued`. Resolves true once it is committed (and handed to onCommitted), false when its agent
   * already used its idempotency key; rejects when it could not be committed, and then it is never sent.
   */
  insert(row: NewOutboxMessage): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      let fileTimer: Timer | undefined;
      const entry: Committing = {
        row,
        deadline: this.options.clock.now() + this.options.commitTimeoutMs,
        answered: false,
        abandoned: false,
        answer: (result) => {
          if (entry.answered) return;
          entry.answered = true;
          fileTimer?.cancel();
          this.release(row.agentId);
          this.watchCommits();
          if (result instanceof Error) reject(result);
          else resolve(result);
        },
      };
      this.committingByAgent.set(row.agentId, this.committing(row.agentId) + 1);
      if (row.media) {
        // A file's deadline grows with its size (commitTimeoutMs()): it keeps a timer of its own, so that the queue
        // of the others stays in deadline order.
        const timeoutMs = this.commitTimeoutMs(row);
        entry.deadline = this.options.clock.now() + timeoutMs;
        fileTimer = this.options.clock.setTimeout(() => this.expire([entry]), timeoutMs);
      } else {
        this.commitQueue.push(entry);
        this.watchCommits();
      }
      (row.media ? this.files : this.shared).batcher.add({ kind: 'insert', entry }).then(
        (result) => entry.answer(result ?? false),
        (err: unknown) => entry.answer(asError(err)),
      );
    });
  }

  /** How long a row's caller waits for its commit (fileCommitTimeoutMs). */
  private commitTimeoutMs(row: NewOutboxMessage): number {
    const size = row.media ? (Buffer.isBuffer(row.media) ? row.media.length : row.media.size) : 0;
    return fileCommitTimeoutMs(this.options.commitTimeoutMs, size);
  }

  /** The agent's rows whose commit has not ended: they hold places in its queue. */
  committing(agentId: string): number {
    return this.committingByAgent.get(agentId) ?? 0;
  }

  /** Records an attempt's outcome; it is written behind, and pending() shows it until then. */
  record(transition: OutboxTransition): void {
    this.unwritten.set(transition.id, transition);
    this.write(transition, 1);
  }

  /** The row's latest state while it is not committed yet; undefined once the table has it. */
  pending(id: string): OutboxTransition | undefined {
    return this.unwritten.get(id);
  }

  /** Rows whose sent or failed state is not committed yet: still `queued` in the table, but not to be dropped. */
  settledIds(): string[] {
    return [...this.unwritten.values()].filter((t) => t.status !== 'queued').map((t) => t.id);
  }

  /**
   * Resolves once every outcome recorded before it is written, or known to have failed (it then stays pending): a
   * read of the table that starts after this, overlaid with pending(), sees every outcome recorded before it.
   * Outcomes go in the shared lane only, so no read waits for a file's commit.
   */
  flush(): Promise<void> {
    return this.shared.batcher
      .add({ kind: 'barrier' })
      .catch(() => undefined)
      .then(() => undefined);
  }

  /** Resolves once nothing is waiting for a batch and no batch runs. */
  async idle(): Promise<void> {
    await Promise.all([this.shared.batcher.idle(), this.files.batcher.idle()]);
  }

  /**
   * Stops retrying and writes what is still unwritten one last time, including what fails while close waits for
   * the writes under way.
   */
  async close(): Promise<void> {
    this.closing = true;
    for (const timer of this.retries) timer.cancel();
    this.retries.clear();
    await this.idle();
    this.closed = true;
    for (const transition of this.unwritten.values()) this.write(transition, 1);
    await this.idle();
    this.commitTimer?.cancel();
    this.commitTimer = undefined;
  }

  private write(transition: OutboxTransition, attempt: number): void {
    const current = () => this.unwritten.get(transition.id) === transition;
    const written = this.shared.batcher.add({ kind: 'transition', transition }).catch(asError);
    void written.then((result) => {
      if (!(result instanceof Error)) {
        if (current()) this.unwritten.delete(transition.id);
        return;
      }
      if (!current()) return; // a later outcome of the row replaces this one
      const { logger, clock } = this.options;
      const context = { messageId: transition.id, status: transition.status, err: errorMessage(result) };
      if (this.closed) {
        // The send happened; the row stays `queued` and is sent again after a restart (at least once).
        this.unwritten.delete(transition.id);
        logger.error({ event: 'outbox.transition.lost', ...context });
        return;
      }
      logger.error({ event: 'outbox.transition.error', attempt, ...context });
      if (this.closing) return;
      const timer = clock.setTimeout(
        () => {
          this.retries.delete(timer);
          if (current()) this.write(transition, attempt + 1);
        },
        this.retryDelayMs(attempt),
        { background: true },
      );
      this.retries.add(timer);
    });
  }

  /**
   * One batch: its new rows and the latest outcome of each row, in one statement and one commit. Batches commit side
   * by side, but hand their results over in the order they were formed: committed rows reach the dispatcher in the
   * order they were accepted (FIFO), and a barrier resolves only after every batch formed before it. Never throws.
   */
  private async run(lane: Lane, items: Item[]): Promise<Result[]> {
    const first = items[0];
    const agentId = first?.kind === 'insert' ? first.entry.row.agentId : '';
    const earlier = lane.handedOverBy ? (lane.handedOverBy.get(agentId) ?? Promise.resolve()) : lane.handedOver;
    let handOver = () => {};
    const mine = new Promise<void>((resolve) => {
      handOver = resolve;
    });
    if (lane.handedOverBy) lane.handedOverBy.set(agentId, mine);
    else lane.handedOver = mine;
    try {
      const results = await this.writeBatch(items);
      await earlier;
      return results();
    } finally {
      handOver();
      if (lane.handedOverBy?.get(agentId) === mine) lane.handedOverBy.delete(agentId);
    }
  }

  /** `byAgent`: batches of one row each, handed over in each agent's order rather than the lane's. */
  private lane(maxInFlight: number, maxBatch: number, byAgent = false): Lane {
    const lane: Lane = {
      batcher: new Batcher({ maxInFlight, maxBatch, run: (items) => this.run(lane, items) }),
      handedOver: Promise.resolve(),
      ...(byAgent ? { handedOverBy: new Map<string, Promise<void>>() } : {}),
    };
    return lane;
  }

  /** Writes a batch; returns how to hand its results over (committed rows go to the dispatcher then). */
  private async writeBatch(items: Item[]): Promise<() => Result[]> {
    const inserts: Committing[] = [];
    const latest = new Map<string, OutboxTransition>();
    for (const item of items) {
      // A row whose caller already gave up is left out: it was never committed, so it can never be sent.
      if (item.kind === 'insert' && !item.entry.abandoned) inserts.push(item.entry);
      // A batch can hold several outcomes of one row (a retry, then the send); only the last one counts.
      else if (item.kind === 'transition') latest.set(item.transition.id, item.transition);
    }
    const transitions = [...latest.values()];
    if (inserts.length === 0 && transitions.length === 0) return () => items.map(() => undefined);
    let keyed: Set<string>;
    try {
      // A file's commit stops between two chunks once its caller has given up: no row is written for it then.
      const [file] = inserts;
      keyed = await this.options.repository.write(
        inserts.map((entry) => entry.row),
        transitions,
        file?.row.media ? () => file.abandoned : undefined,
      );
    } catch (err) {
      const unavailable = isDatabaseUnavailable(err);
      // The connection broke after the statement left: rows the server committed after all must not go out later,
      // since their callers hear 503. Each is marked failed once the database answers again (a row that is not
      // there is left alone).
      if (unavailable && mayHaveCommitted(err)) for (const entry of inserts) this.giveUp(entry, LOST_CONNECTION);
      // The database cannot answer: every write of the batch has failed alike, and trying each alone would only
      // make each caller wait longer for the same answer.
      if (unavailable || inserts.length + transitions.length <= 1) {
        const failure = failureOf(err);
        return () => items.map((item) => (item.kind === 'barrier' ? undefined : failure));
      }
      return this.writeApart(items, inserts, transitions);
    }
    const written = new Set(inserts);
    return () =>
      items.map((item) => {
        if (item.kind !== 'insert') return undefined;
        return written.has(item.entry) ? this.committed(item.entry, keyed) : false;
      });
  }

  /**
   * The shared statement failed for a reason of its own (a row the database refuses): one bad row must not fail the
   * writes it happened to be batched with, so each is written alone and each caller gets its own result.
   */
  private async writeApart(
    items: Item[],
    inserts: Committing[],
    transitions: OutboxTransition[],
  ): Promise<() => Result[]> {
    const { repository } = this.options;
    const failures = new Map<string, Error>();
    const keyedBy = new Map<Committing, Set<string>>();
    for (const transition of transitions) {
      await repository.write([], [transition]).catch((err: unknown) => failures.set(transition.id, failureOf(err)));
    }
    for (const entry of inserts) {
      await repository.write([entry.row], []).then(
        (keyed) => keyedBy.set(entry, keyed),
        (err: unknown) => failures.set(entry.row.id, failureOf(err)),
      );
    }
    return () =>
      items.map((item) => {
        if (item.kind === 'transition') return failures.get(item.transition.id);
        if (item.kind !== 'insert') return undefined;
        const keyed = keyedBy.get(item.entry);
        return keyed ? this.committed(item.entry, keyed) : (failures.get(item.entry.row.id) ?? false);
      });
  }

  /** `keyed`: the inserted rows that carry an idempotency key; a row without one was inserted once the write succeeded. */
  private committed(entry: Committing, keyed: Set<string>): boolean {
    const { row } = entry;
    if (row.idempotencyKey !== null && !keyed.has(row.id)) return false;
    if (entry.abandoned) {
      // Its caller heard 503: it must not go out, now or after a restart.
      this.giveUp(entry, TIMED_OUT);
      return true;
    }
    this.options.onCommitted(row);
    return true;
  }

  /** Marks a row whose caller heard 503 as failed, in case it is in the table: it must never be sent. */
  private giveUp(entry: Committing, reason: string): void {
    const at = this.options.clock.now();
    this.record({ id: entry.row.id, status: 'failed', attempts: 0, waMessageId: null, error: reason, at });
  }

  private release(agentId: string): void {
    const left = this.committing(agentId) - 1;
    if (left > 0) this.committingByAgent.set(agentId, left);
    else this.committingByAgent.delete(agentId);
  }

  /** Arms the one timer for the oldest unanswered commit, dropping answered ones from the front. */
  private watchCommits(): void {
    while (this.head < this.commitQueue.length && this.commitQueue[this.head]?.answered) this.head += 1;
    if (this.head > 1_024 && this.head * 2 > this.commitQueue.length) {
      this.commitQueue = this.commitQueue.slice(this.head);
      this.head = 0;
    }
    const oldest = this.commitQueue[this.head];
    if (!oldest) {
      this.commitQueue = [];
      this.head = 0;
      this.commitTimer?.cancel();
      this.commitTimer = undefined;
      return;
    }
    if (this.commitTimer) return;
    const { clock } = this.options;
    this.commitTimer = clock.setTimeout(
      () => {
        this.commitTimer = undefined;
        this.expireCommits();
      },
      Math.max(0, oldest.deadline - clock.now()),
    );
  }

  /** Gives up on the commits past their deadline: their callers get 503, and their messages are never sent. */
  private expireCommits(): void {
    const now = this.options.clock.now();
    const expired: Committing[] = [];
    for (let i = this.head; i < this.commitQueue.length; i++) {
      const entry = this.commitQueue[i];
      if (!entry || entry.answered) continue;
      if (entry.deadline > now) break;
      expired.push(entry);
    }
    this.expire(expired);
    this.watchCommits();
  }

  private expire(expired: readonly Committing[]): void {
    for (const entry of expired) {
      if (entry.answered) continue;
      entry.abandoned = true;
      this.options.logger.warn({ event: 'outbox.commit.timeout', agentId: entry.row.agentId, messageId: entry.row.id });
      entry.answer(databaseUnavailable(undefined, 'The database did not commit the message in time: it was not sent.'));
    }
  }
}

/** What an insert's caller is told: 503 when the database cannot answer, the error itself otherwise. */
function failureOf(err: unknown): Error {
  return isDatabaseUnavailable(err)
    ? databaseUnavailable(err, 'The database could not commit the message: it was not sent.')
    : asError(err);
}
