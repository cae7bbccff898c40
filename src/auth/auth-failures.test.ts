import { describe, expect, it } from 'vitest';
import { FakeClock } from '../__fixtures__/fake-clock.js';
import { FailureLimiter } from './auth-failures.js';

function setup(maxTracked?: number) {
  const clock = new FakeClock();
  const sut = new FailureLimiter({ clock, limit: 3, windowMs: 60_000, ...(maxTracked ? { maxTracked } : {}) });
  return { sut, clock };
}

describe('FailureLimiter', () => {
  it('lets a key fail up to the limit, then makes it wait for the end of its window', async () => {
    const { sut, clock } = setup();
    for (let i = 0; i < 3; i++) {
      expect(sut.retryAfter('ip:1.2.3.4')).toBe(0);
      sut.fail('ip:1.2.3.4');
    }
    expect(sut.retryAfter('ip:1.2.3.4')).toBe(60);
    await clock.advance(59_001);
    expect(sut.retryAfter('ip:1.2.3.4')).toBe(1);
    await clock.advance(999);
    expect(sut.retryAfter('ip:1.2.3.4')).toBe(0);
    // A fresh window: three more failures before the next wait.
    sut.fail('ip:1.2.3.4');
    expect(sut.retryAfter('ip:1.2.3.4')).toBe(0);
  });

  it('counts each key apart', () => {
    const { sut } = setup();
    for (let i = 0; i < 3; i++) sut.fail('agent:a');
    expect(sut.retryAfter('agent:a')).toBeGreaterThan(0);
    expect(sut.retryAfter('agent:b')).toBe(0);
  });

  it('forgets failures older than the window', async () => {
    const { sut, clock } = setup();
    sut.fail('k');
    sut.fail('k');
    await clock.advance(60_000);
    sut.fail('k');
    expect(sut.retryAfter('k')).toBe(0);
  });

  it('tracks a bounded number of keys, forgetting the oldest window first', async () => {
    const { sut, clock } = setup(100);
    for (let i = 0; i < 3; i++) sut.fail('victim');
    await clock.advance(1);
    for (let i = 0; i < 1_000; i++) sut.fail(`flood-${i}`);
    expect(sut.size).toBe(100);
    // The oldest window went first: a flood of new keys costs the one that started earliest.
    expect(sut.retryAfter('victim')).toBe(0);
    expect(sut.retryAfter('flood-999')).toBe(0);
  });
});
