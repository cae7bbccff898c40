// A clock that moves only when the test says so. Timers fire in the order they fall due; after each, the promise
// callbacks it caused run before the next one fires, as they would between two real timers.
import type { Clock, Timer } from '../clock.js';

interface Scheduled {
  id: number;
  at: number;
  fn: () => void;
  /** Set for setInterval: the period. */
  every: number | undefined;
}

/** One turn of the event loop: promise callbacks, then whatever they scheduled with setImmediate. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class FakeClock implements Clock {
  private time: number;
  private nextId = 1;
  private readonly timers = new Map<number, Scheduled>();

  /** Starts at `start` epoch ms (2026-01-01T00:00:00Z by default). */
  constructor(start = Date.UTC(2026, 0, 1)) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    return this.schedule(fn, ms, undefined);
  }

  setInterval(fn: () => void, ms: number): Timer {
    return this.schedule(fn, ms, Math.max(1, ms));
  }

  /** How many ms from now each pending timer fires, soonest first. */
  pending(): number[] {
    return this.ordered().map((timer) => timer.at - this.time);
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due on the way (also those scheduled meanwhile), each
   * at its own time, and letting the promise callbacks of each run before the next.
   */
  async advance(ms: number): Promise<void> {
    const target = this.time + ms;
    await turn();
    for (let fired = 0; ; fired++) {
      if (fired > 10_000) throw new Error('FakeClock: timers keep scheduling timers; is something looping?');
      const due = this.ordered()[0];
      if (!due || due.at > target) break;
      this.time = Math.max(this.time, due.at);
      this.fire(due);
      await turn();
    }
    this.time = target;
    await turn();
  }

  /** Moves time to the next timer and fires it (and any due at the same moment); false when none is pending. */
  async next(): Promise<boolean> {
    const due = this.ordered()[0];
    if (!due) return false;
    await this.advance(due.at - this.time);
    return true;
  }

  private schedule(fn: () => void, ms: number, every: number | undefined): Timer {
    const id = this.nextId++;
    this.timers.set(id, { id, at: this.time + Math.max(0, ms), fn, every });
    return { cancel: () => this.timers.delete(id) };
  }

  private fire(timer: Scheduled): void {
    if (timer.every === undefined) this.timers.delete(timer.id);
    else timer.at += timer.every;
    timer.fn();
  }

  /** By due time, then by the order they were set, as Node fires timers. */
  private ordered(): Scheduled[] {
    return [...this.timers.values()].sort((a, b) => a.at - b.at || a.id - b.id);
  }
}
