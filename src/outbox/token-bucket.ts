// Per-agent token buckets: each agent may send `burst` messages at once, then `perMinute` messages a minute.
import type { Clock } from '../clock.js';

export interface TokenBucketOptions {
  /** How many tokens the bucket holds: the burst. */
  capacity: number;
  /** Tokens added per minute. */
  refillPerMinute: number;
  clock: Pick<Clock, 'now'>;
}

export class TokenBucket {
  private tokens: number;
  private updatedAt: number;
  private readonly perMs: number;

  constructor(private readonly options: TokenBucketOptions) {
    this.tokens = options.capacity;
    this.updatedAt = options.clock.now();
    this.perMs = options.refillPerMinute / 60_000;
  }

  /** Takes a token and returns 0, or takes nothing and returns how many ms until one is available. */
  take(): number {
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return this.msUntilToken();
  }

  /** How many ms until a token is available (0 when one is). */
  msUntilToken(): number {
    this.refill();
    // ceil: waking a millisecond early would find 0.99 tokens and schedule a pointless 1 ms timer.
    return this.tokens >= 1 ? 0 : Math.ceil((1 - this.tokens) / this.perMs);
  }

  private refill(): void {
    const now = this.options.clock.now();
    const elapsed = now - this.updatedAt;
    if (elapsed > 0) this.tokens = Math.min(this.options.capacity, this.tokens + elapsed * this.perMs);
    this.updatedAt = now;
  }
}

/** One bucket per agent, created on first use. */
export class TokenBuckets {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(private readonly options: TokenBucketOptions) {}

  take(agentId: string): number {
    return this.bucket(agentId).take();
  }

  msUntilToken(agentId: string): number {
    return this.bucket(agentId).msUntilToken();
  }

  delete(agentId: string): void {
    this.buckets.delete(agentId);
  }

  private bucket(agentId: string): TokenBucket {
    let bucket = this.buckets.get(agentId);
    if (!bucket) {
      bucket = new TokenBucket(this.options);
      this.buckets.set(agentId, bucket);
    }
    return bucket;
  }
}
