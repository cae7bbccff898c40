// The outcomes of messages this member committed for agents another member dispatches (docs/cluster.md): the requests
// waiting for them are answered by polling their rows, one statement for all of them, while any request waits.
import type { Clock, Timer } from '../clock.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { OutboxRepository } from './outbox.repository.js';
import type { SendWaits } from './send-waits.js';

/** Often enough that an answer comes a few tens of milliseconds after the owner wrote the outcome. */
const POLL_MS = 50;

export interface RemoteOutcomesOptions {
  repository: Pick<OutboxRepository, 'outcomes'>;
  waits: Pick<SendWaits, 'settle' | 'isWaiting'>;
  clock: Clock;
  logger: Logger;
}

export class RemoteOutcomes {
  private readonly watched = new Set<string>();
  private timer: Timer | undefined;
  private closed = false;

  constructor(private readonly options: RemoteOutcomesOptions) {}

  /** Answers the requests waiting on this message once its row says sent or failed. */
  watch(id: string): void {
    if (this.closed || !this.options.waits.isWaiting(id)) return;
    this.watched.add(id);
    this.timer ??= this.options.clock.setTimeout(() => void this.poll(), POLL_MS);
  }

  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.timer = undefined;
    this.watched.clear();
  }

  private async poll(): Promise<void> {
    const { repository, waits, logger } = this.options;
    // A request that stopped waiting (its SEND_WAIT_MS passed: it answered 202) needs no more polling.
    for (const id of this.watched) if (!waits.isWaiting(id)) this.watched.delete(id);
    try {
      if (this.watched.size > 0) {
        for (const outcome of await repository.outcomes([...this.watched])) {
          this.watched.delete(outcome.id);
          waits.settle(
            outcome.id,
            outcome.status === 'sent'
              ? { status: 'sent', waMessageId: outcome.waMessageId ?? '' }
              : { status: 'failed', error: outcome.error ?? 'failed' },
          );
        }
      }
    } catch (err) {
      logger.warn({ event: 'outbox.remote_outcomes_failed', err: errorMessage(err) });
    }
    this.timer = undefined;
    if (!this.closed && this.watched.size > 0)
      this.timer = this.options.clock.setTimeout(() => void this.poll(), POLL_MS);
  }
}
