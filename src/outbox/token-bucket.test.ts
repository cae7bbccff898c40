import { describe, expect, it } from 'vitest';
import { FakeClock } from '../__fixtures__/fake-clock.js';
import { TokenBucket, TokenBuckets } from './token-bucket.js';

describe('TokenBucket', () => {
  it('lets 100 through at once, then makes the 101st wait 600 ms at 100 per minute', async () => {
    const clock = new FakeClock();
    const sut = new TokenBucket({ capacity: 100, refillPerMinute: 100, clock });
    const waits = Array.from({ length: 100 }, () => sut.take());
    expect(waits.every((w) => w === 0)).toBe(true);
    expect(sut.take()).toBe(600);
    await clock.advance(599);
    expect(sut.take()).toBe(1);
    await clock.advance(1);
    expect(sut.take()).toBe(0);
    expect(sut.take()).toBe(600);
  });

  it('never holds more than its capacity however long it idles', async () => {
    const clock = new FakeClock();
    const sut = new TokenBucket({ capacity: 5, refillPerMinute: 60, clock });
    await clock.advance(3_600_000);
    for (let i = 0; i < 5; i++) expect(sut.take()).toBe(0);
    expect(sut.take()).toBe(1_000);
  });

  it('refills at the configured rate independently of the burst', async () => {
    const clock = new FakeClock();
    const sut = new TokenBucket({ capacity: 1, refillPerMinute: 6_000, clock });
    expect(sut.take()).toBe(0);
    expect(sut.msUntilToken()).toBe(10);
    await clock.advance(10);
    expect(sut.msUntilToken()).toBe(0);
    expect(sut.take()).toBe(0);
  });

  it('does not consume a token when it answers with a wait', async () => {
    const clock = new FakeClock();
    const sut = new TokenBucket({ capacity: 1, refillPerMinute: 60, clock });
    sut.take();
    expect(sut.take()).toBe(1_000);
    expect(sut.take()).toBe(1_000);
    await clock.advance(1_000);
    expect(sut.take()).toBe(0);
  });
});

describe('TokenBuckets', () => {
  it('keeps one bucket per agent', async () => {
    const clock = new FakeClock();
    const sut = new TokenBuckets({ capacity: 2, refillPerMinute: 60, clock });
    expect([sut.take('a'), sut.take('a'), sut.take('a')]).toEqual([0, 0, 1_000]);
    expect([sut.take('b'), sut.take('b')]).toEqual([0, 0]);
  });

  it('starts an agent over with a full bucket after delete', async () => {
    const clock = new FakeClock();
    const sut = new TokenBuckets({ capacity: 1, refillPerMinute: 60, clock });
    sut.take('a');
    expect(sut.msUntilToken('a')).toBe(1_000);
    sut.delete('a');
    expect(sut.take('a')).toBe(0);
  });
});
