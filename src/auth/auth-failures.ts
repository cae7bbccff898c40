// Counts failed authentications per key (a client address, an agent) in fixed windows on the clock.
//
// Not @fastify/rate-limit: since 11.2 its createRateLimit() could count failures only (peek with
// { increment: false }, charge on a 401), but its store reads Date.now() rather than our clock, and every check is a
// promise, where the auth hook decides a known key today without one. This is the part of it we need: a fixed window
// per key, and a bounded map that forgets the oldest windows first.
import type { Clock } from '../clock.js';

export interface FailureLimiterOptions {
  clock: Clock;
  /** Failures allowed per window; the next attempt waits for the window to end. */
  limit: number;
  windowMs: number;
  /** Keys tracked at most; past it, the oldest window is forgotten (a flood of addresses cannot grow memory). */
  maxTracked?: number;
}

interface Window {
  failures: number;
  endsAt: number;
}

export class FailureLimiter {
  private readonly windows = new Map<string, Window>();
  private readonly maxTracked: number;

  constructor(private readonly options: FailureLimiterOptions) {
    this.maxTracked = options.maxTracked ?? 10_000;
  }

  /** Seconds until `key` may try again (for Retry-After), or 0 when it may now. */
  retryAfter(key: string): number {
    const window = this.windows.get(key);
    if (!window || window.failures < this.options.limit) return 0;
    const left = window.endsAt - this.options.clock.now();
    if (left > 0) return Math.ceil(left / 1000);
    this.windows.delete(key);
    return 0;
  }

  fail(key: string): void {
    const now = this.options.clock.now();
    const window = this.windows.get(key);
    if (window && window.endsAt > now) {
      window.failures += 1;
      return;
    }
    // A new window goes to the end of the map, so the map stays ordered by window start: the first is the oldest.
    this.windows.delete(key);
    this.windows.set(key, { failures: 1, endsAt: now + this.options.windowMs });
    if (this.windows.size > this.maxTracked) {
      const oldest = this.windows.keys().next();
      if (!oldest.done) this.windows.delete(oldest.value);
    }
  }

  get size(): number {
    return this.windows.size;
  }
}
