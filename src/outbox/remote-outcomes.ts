// The outcomes of messages committed on one member and sent by another (docs/cluster.md). The owner tells them on
// `wamt_outbox_outcome` as soon as a send ends (before its row is written, as a local request hears it); the member
// whose request waits settles it from the notice. Should a notice be lost (a dropped connection, a member that died
// after its send), the waiting member also polls the rows it waits for, one statement for all of them.
import type { Clock, Timer } from '../clock.js';
import type { Database } from '../db/client.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { OutboxRepository } from './outbox.repository.js';
import type { SendOutcome, SendWaits } from './send-waits.js';

const CHANNEL = 'wamt_outbox_outcome';
/** The fallback: a lost notice costs this much. */
const POLL_MS = 250;
/** NOTIFY payloads stop at 8,000 bytes. */
const MAX_PAYLOAD = 7_500;

/** One outcome in a notice: [message id, 'sent', WhatsApp id] or [message id, 'failed', reason]. */
type Told = [id: string, status: 'sent' | 'failed', detail: string];

export interface RemoteOutcomesOptions {
  database: Pick<Database, 'query' | 'listen'>;
  repository: Pick<OutboxRepository, 'outcomes'>;
  waits: Pick<SendWaits, 'settle' | 'isWaiting'>;
  clock: Clock;
  logger: Logger;
}

export class RemoteOutcomes {
  private readonly watched = new Set<string>();
  private untold: Told[] = [];
  private telling: Promise<void> | undefined;
  private timer: Timer | undefined;
  private unlisten: (() => Promise<void>) | undefined;
  private closed = false;

  constructor(private readonly options: RemoteOutcomesOptions) {}

  /** Hears the outcomes other members tell. */
  async start(): Promise<void> {
    this.unlisten = await this.options.database.listen(
      CHANNEL,
      (payload) => this.heard(payload),
      () => void this.poll(),
    );
  }

  /** Answers the request waiting here on this message, committed here for an agent another member sends for. */
  watch(id: string): void {
    if (this.closed || !this.options.waits.isWaiting(id)) return;
    this.watched.add(id);
    this.timer ??= this.options.clock.setTimeout(() => void this.poll(), POLL_MS);
  }

  /** A send of this member ended, and no request waits for it here: the member where one may wait hears it. */
  tell(id: string, outcome: SendOutcome): void {
    if (this.closed) return;
    this.untold.push([id, outcome.status, outcome.status === 'sent' ? (outcome.waMessageId ?? '') : outcome.error]);
    this.telling ??= Promise.resolve()
      .then(() => this.flush())
      .finally(() => {
        this.telling = undefined;
      });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.timer?.cancel();
    this.timer = undefined;
    this.watched.clear();
    await this.telling;
    await this.unlisten?.();
  }

  private async flush(): Promise<void> {
    const told = this.untold;
    this.untold = [];
    for (const payload of chunks(told)) {
      try {
        await this.options.database.query('SELECT pg_notify($1, $2)', [CHANNEL, payload]);
      } catch (err) {
        // The waiting member polls the row once it is written.
        this.options.logger.debug({ event: 'outbox.tell_failed', err: errorMessage(err) });
      }
    }
  }

  private heard(payload: string): void {
    let told: Told[];
    try {
      told = JSON.parse(payload) as Told[];
    } catch {
      return;
    }
    if (!Array.isArray(told)) return;
    for (const [id, status, detail] of told) {
      if (!this.watched.delete(id)) continue;
      this.options.waits.settle(
        id,
        status === 'sent' ? { status: 'sent', waMessageId: detail || null } : { status: 'failed', error: detail },
      );
    }
  }

  private async poll(): Promise<void> {
    const { repository, waits, logger } = this.options;
    // A request that stopped waiting (its SEND_WAIT_MS passed: it answered 202) needs no more polling.
    for (const id of this.watched) if (!waits.isWaiting(id)) this.watched.delete(id);
    try {
      if (this.watched.size > 0) {
        for (const outcome of await repository.outcomes([...this.watched])) {
          if (!this.watched.delete(outcome.id)) continue;
          waits.settle(
            outcome.id,
            outcome.status === 'sent'
              ? { status: 'sent', waMessageId: outcome.waMessageId }
              : { status: 'failed', error: outcome.error ?? 'failed' },
          );
        }
      }
    } catch (err) {
      logger.warn({ event: 'outbox.remote_outcomes_failed', err: errorMessage(err) });
    }
    this.timer?.cancel();
    this.timer = undefined;
    if (!this.closed && this.watched.size > 0) {
      this.timer = this.options.clock.setTimeout(() => void this.poll(), POLL_MS);
    }
  }
}

/** The outcomes as JSON arrays, each under the NOTIFY payload limit. */
function chunks(told: Told[]): string[] {
  const payloads: string[] = [];
  let current: string[] = [];
  let size = 2;
  for (const entry of told) {
    const text = JSON.stringify(entry);
    if (current.length > 0 && size + text.length + 1 > MAX_PAYLOAD) {
      payloads.push(`[${current.join(',')}]`);
      current = [];
      size = 2;
    }
    current.push(text);
    size += text.length + 1;
  }
  if (current.length > 0) payloads.push(`[${current.join(',')}]`);
  return payloads;
}
