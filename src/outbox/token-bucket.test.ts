import { describe, expect, it } from 'vitest';
import { TokenBucket, TokenBuckets } from './token-bucket.js';

function fakeClock(start = 1_000) {
  let now = start;
  return {
    now: () => now,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

describe('TokenBucket', () => {
  it('lets 100 through at once, then makes the 101st wait 600 ms at 100 per minute', () => {
    const clock = fakeClock();
    const sut = new TokenBucket({ capacity: 100, refillPerMinute: 100, now: clock.now });
    const waits = Array.from({ length: 100 }, () => sut.take());
    expect(waits.every((w) => w === 0)).toBe(true);
    expect(sut.take()).toBe(600);
    clock.advance(599);
    expect(sut.take()).toBe(1);
    clock.advance(1);
    expect(sut.take()).toBe(0);
    expect(sut.take()).toBe(600);
  });

  it('never holds more than its capacity however long it idles', () => {
    const clock = fakeClock();
    const sut = new TokenBucket({ capacity: 5, refillPerMinute: 60, now: clock.now });
    clock.advance(3_600_000);
    for (let i = 0; i < 5; i++) expect(sut.take()).toBe(0);
    expect(sut.take()).toBe(1_000);
  });

  it('refills at the configured rate independently of the burst', () => {
    const clock = fakeClock();
    const sut = new TokenBucket({ capacity: 1, refillPerMinute: 6_000, now: clock.now });
    expect(sut.take()).toBe(0);
    expect(sut.msUntilToken()).toBe(10);
    clock.advance(10);
    expect(sut.msUntilToken()).toBe(0);
    expect(sut.take()).toBe(0);
  });

  it('does not consume a token when it answers with a wait', () => {
    const clock = fakeClock();
    const sut = new TokenBucket({ capacity: 1, refillPerMinute: 60, now: clock.now });
    sut.take();
    expect(sut.take()).toBe(1_000);
    expect(sut.take()).toBe(1_000);
    clock.advance(1_000);
    expect(sut.take()).toBe(0);
  });
});

describe('TokenBuckets', () => {
  it('keeps one bucket per agent', () => {
    const clock = fakeClock();
    const sut = new TokenBuckets({ capacity: 2, refillPerMinute: 60, now: clock.now });
    expect([sut.take('a'), sut.take('a'), sut.take('a')]).toEqual([0, 0, 1_000]);
    expect([sut.take('b'), sut.take('b')]).toEqual([0, 0]);
  });

  it('starts an agent over with a full bucket after delete', () => {
    const clock = fakeClock();
    const sut = new TokenBuckets({ capacity: 1, refillPerMinute: 60, now: clock.now });
    sut.take('a');
    expect(sut.msUntilToken('a')).toBe(1_000);
    sut.delete('a');
    expect(sut.take('a')).toBe(0);
  });
});
