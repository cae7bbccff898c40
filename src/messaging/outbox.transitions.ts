// The outcome of each send attempt, written behind the dispatcher: the next send does not wait for the write, a
// failed write is retried, and until a transition is written it is what reads see.
import { errorMessage } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { DispatchTimers } from './outbox.dispatcher.js';
import type { OutboxTransition } from './outbox.repository.js';
import type { OutboxWriter } from './outbox.writer.js';

export interface TransitionLogOptions {
  /** Writes in order, one batch at a time, so that a row's transitions land in the order they happened. */
  writer: Pick<OutboxWriter, 'fold' | 'transition' | 'barrier' | 'idle'>;
  logger: Logger;
  timers: DispatchTimers;
  /** Wait before writing a failed batch's transitions again (attempt n, 1-based). */
  retryDelayMs?: (attempt: number) => number;
}

export class TransitionLog {
  /** Recorded and not yet committed, by row id: the latest transition of each row. */
  private readonly unwritten = new Map<string, OutboxTransition>();
  private readonly retries = new Set<unknown>();
  private readonly retryDelayMs: (attempt: number) => number;
  /** No more retry timers: what fails waits for close's last write. */
  private closing = false;
  /** That last write is under way: what fails now is lost. */
  private closed = false;

  constructor(private readonly options: TransitionLogOptions) {
    this.retryDelayMs = options.retryDelayMs ?? ((attempt) => Math.min(30_000, 500 * 2 ** attempt));
  }

  record(transition: OutboxTransition): void {
    // A row not written yet takes its outcome along (a send that ended before the row's batch): nothing to track
    // here, since no read can see the row before it is written, in that state.
    if (this.options.writer.fold(transition)) return;
    this.unwritten.set(transition.id, transition);
    this.write(transition, 1);
  }

  /**
   * Resolves once every transition recorded so far is committed, or known to have failed (it then stays pending).
   * A read of the table that starts after this, overlaid with `pending`, sees every outcome reported before it.
   */
  flush(): Promise<void> {
    return this.options.writer.barrier();
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
   * Stops retrying and writes what is still unwritten one last time, including what fails while close waits for
   * the writes under way.
   */
  async close(): Promise<void> {
    this.closing = true;
    for (const handle of this.retries) this.options.timers.clearTimeout(handle);
    this.retries.clear();
    await this.options.writer.idle();
    this.closed = true;
    for (const transition of this.unwritten.values()) this.write(transition, 1);
    await this.options.writer.idle();
  }

  private write(transition: OutboxTransition, attempt: number): void {
    const current = () => this.unwritten.get(transition.id) === transition;
    this.options.writer.transition(transition).then(
      () => {
        if (current()) this.unwritten.delete(transition.id);
      },
      (err: unknown) => {
        if (!current()) return; // a later transition of the row replaces this one
        const { logger, timers } = this.options;
        const context = { messageId: transition.id, status: transition.status, err: errorMessage(err) };
        if (this.closed) {
          // The send happened; the row stays `queued` and is sent again after a restart (at least once).
          this.unwritten.delete(transition.id);
          logger.error({ event: 'outbox.transition.lost', ...context });
          return;
        }
        logger.error({ event: 'outbox.transition.error', attempt, ...context });
        if (this.closing) return;
        const handle = timers.setTimeout(() => {
          this.retries.delete(handle);
          if (current()) this.write(transition, attempt + 1);
        }, this.retryDelayMs(attempt));
        this.retries.add(handle);
      },
    );
  }
}
