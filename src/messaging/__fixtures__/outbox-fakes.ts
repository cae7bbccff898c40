// Fakes shared by the outbox's unit tests: timers fired by hand, a gate that holds writes, a transition factory.
import type { DispatchTimers } from '../outbox.dispatcher.js';
import type { OutboxTransition } from '../outbox.repository.js';

/** Timers that fire only when the test says so. */
export class FakeTimers implements DispatchTimers {
  readonly pending = new Map<number, { fn: () => void; ms: number }>();
  private next = 1;
  setTimeout(fn: () => void, ms: number): number {
    const id = this.next++;
    this.pending.set(id, { fn, ms });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  delays(): number[] {
    return [...this.pending.values()].map((t) => t.ms);
  }
  fire(handle: number): void {
    const timer = this.pending.get(handle);
    if (!timer) throw new Error(`no timer ${handle}`);
    this.pending.delete(handle);
    timer.fn();
  }
  fireAll(): void {
    const due = [...this.pending.values()];
    this.pending.clear();
    for (const t of due) t.fn();
  }
}

/** Holds whoever passes it, from `hold()` until `release()`. */
export class Gate {
  private gate: Promise<void> | null = null;
  private open: (() => void) | null = null;

  hold(): void {
    this.gate = new Promise((resolve) => {
      this.open = resolve;
    });
  }

  release(): void {
    this.open?.();
    this.gate = null;
    this.open = null;
  }

  async pass(): Promise<void> {
    if (this.gate) await this.gate;
  }
}

export const transition = (
  id: string,
  status: OutboxTransition['status'] = 'sent',
  attempts = 1,
): OutboxTransition => ({
  id,
  status,
  attempts,
  waMessageId: status === 'sent' ? `wa-${id}-${attempts}` : null,
  error: status === 'failed' ? 'boom' : null,
  at: 1_000 * attempts,
});
