// Requests waiting for their message's outcome, each until its own deadline (SEND_WAIT_MS), after which it answers
// 202 queued. A timer per request would be set and cleared thousands of times a second: one timer, armed for the
// earliest deadline, serves them all.
import type { Clock, Timer } from '../clock.js';

export type SendOutcome = { status: 'sent'; waMessageId: string | null } | { status: 'failed'; error: string };

interface Waiter {
  resolve: (outcome: SendOutcome | null) => void;
  /** clock.now() at which the wait ends with null. */
  deadline: number;
}

export class SendWaits {
  private readonly waiters = new Map<string, Waiter[]>();
  private expiry: { timer: Timer; at: number } | undefined;
  private closed = false;

  constructor(private readonly clock: Clock) {}

  /** Resolves with the message's outcome once it is sent or failed, or with null after `ms` or at close. */
  wait(id: string, ms: number): Promise<SendOutcome | null> {
    if (ms <= 0 || this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      const waiter = { resolve, deadline: this.clock.now() + ms };
      const list = this.waiters.get(id);
      if (list) list.push(waiter);
      else this.waiters.set(id, [waiter]);
      this.arm(waiter.deadline);
    });
  }

  /** Whether a request still waits for this message's outcome. */
  isWaiting(id: string): boolean {
    return this.waiters.has(id);
  }

  /** Answers everyone waiting on the message: with its outcome, or null when it will not be sent now. */
  settle(id: string, outcome: SendOutcome | null): void {
    const list = this.waiters.get(id);
    if (!list) return;
    this.waiters.delete(id);
    for (const waiter of list) waiter.resolve(outcome);
    if (this.waiters.size === 0) {
      this.expiry?.timer.cancel();
      this.expiry = undefined;
    }
  }

  /** Releases every waiter with null, and takes no new ones. */
  close(): void {
    this.closed = true;
    this.expiry?.timer.cancel();
    this.expiry = undefined;
    for (const id of [...this.waiters.keys()]) this.settle(id, null);
  }

  private arm(deadline: number): void {
    if (this.expiry && this.expiry.at <= deadline) return;
    this.expiry?.timer.cancel();
    const timer = this.clock.setTimeout(() => this.expire(), Math.max(0, deadline - this.clock.now()));
    this.expiry = { timer, at: deadline };
  }

  /** Releases every waiter whose time is up, and re-arms for the next deadline. */
  private expire(): void {
    this.expiry = undefined;
    const now = this.clock.now();
    let next = Number.POSITIVE_INFINITY;
    for (const [id, list] of this.waiters) {
      const waiting: Waiter[] = [];
      for (const waiter of list) {
        if (waiter.deadline > now) {
          waiting.push(waiter);
          next = Math.min(next, waiter.deadline);
        } else waiter.resolve(null);
      }
      if (waiting.length === 0) this.waiters.delete(id);
      else if (waiting.length !== list.length) this.waiters.set(id, waiting);
    }
    if (next !== Number.POSITIVE_INFINITY) this.arm(next);
  }
}
