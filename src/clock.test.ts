import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { FakeClock } from './__fixtures__/fake-clock.js';
import { systemClock } from './clock.js';

describe('systemClock', () => {
  it('tells the time of Date.now()', () => {
    const before = Date.now();
    const now = systemClock.now();
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(Date.now());
  });

  it('fires a timeout once, and not after it was cancelled', async () => {
    const fired: string[] = [];
    systemClock.setTimeout(() => fired.push('kept'), 1);
    const cancelled = systemClock.setTimeout(() => fired.push('cancelled'), 1, { background: true });
    cancelled.cancel();
    await sleep(20);
    expect(fired).toEqual(['kept']);
  });

  it('repeats an interval until it is cancelled, and a second cancel is harmless', async () => {
    let ticks = 0;
    const timer = systemClock.setInterval(() => ticks++, 1, { background: true });
    while (ticks < 3) await sleep(2);
    timer.cancel();
    timer.cancel();
    const stopped = ticks;
    await sleep(20);
    expect(ticks).toBe(stopped);
  });
});

describe('FakeClock', () => {
  const START = Date.UTC(2026, 0, 1);

  it('starts at 2026-01-01 by default, or where it is told, and stands still until moved', async () => {
    expect(new FakeClock().now()).toBe(START);
    const clock = new FakeClock(1_000);
    await new Promise((resolve) => setImmediate(resolve));
    expect(clock.now()).toBe(1_000);
    await clock.advance(250);
    expect(clock.now()).toBe(1_250);
  });

  it('fires timers in the order they fall due, and those due together in the order they were set', async () => {
    const clock = new FakeClock();
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('c@30'), 30);
    clock.setTimeout(() => fired.push('a@10'), 10);
    clock.setTimeout(() => fired.push('b1@20'), 20);
    clock.setTimeout(() => fired.push('b2@20'), 20);
    await clock.advance(30);
    expect(fired).toEqual(['a@10', 'b1@20', 'b2@20', 'c@30']);
  });

  it('fires each timer at its own time, and ends at the target time', async () => {
    const clock = new FakeClock();
    const seen: number[] = [];
    clock.setTimeout(() => seen.push(clock.now() - START), 10);
    clock.setTimeout(() => seen.push(clock.now() - START), 25);
    await clock.advance(100);
    expect(seen).toEqual([10, 25]);
    expect(clock.now() - START).toBe(100);
  });

  it('fires nothing before it is due', async () => {
    const clock = new FakeClock();
    let fired = false;
    clock.setTimeout(() => {
      fired = true;
    }, 100);
    await clock.advance(99);
    expect(fired).toBe(false);
    await clock.advance(1);
    expect(fired).toBe(true);
  });

  it('fires a timer set from within a timer when it falls due within the same advance', async () => {
    const clock = new FakeClock();
    const fired: number[] = [];
    clock.setTimeout(() => {
      fired.push(clock.now() - START);
      clock.setTimeout(() => fired.push(clock.now() - START), 10);
      clock.setTimeout(() => fired.push(clock.now() - START), 100);
    }, 10);
    await clock.advance(50);
    expect(fired).toEqual([10, 20]);
    expect(clock.pending()).toEqual([60]);
  });

  it('fires a zero-delay timer set from within a timer in the same advance, after the one that set it', async () => {
    const clock = new FakeClock();
    const fired: string[] = [];
    clock.setTimeout(() => {
      fired.push('outer');
      clock.setTimeout(() => fired.push('inner'), 0);
    }, 5);
    await clock.advance(5);
    expect(fired).toEqual(['outer', 'inner']);
  });

  it('repeats an interval every period, interleaved with timeouts, until cancelled', async () => {
    const clock = new FakeClock();
    const fired: string[] = [];
    const interval = clock.setInterval(() => fired.push(`tick@${clock.now() - START}`), 10);
    clock.setTimeout(() => fired.push(`once@${clock.now() - START}`), 15);
    await clock.advance(35);
    expect(fired).toEqual(['tick@10', 'once@15', 'tick@20', 'tick@30']);
    expect(clock.pending()).toEqual([5]);
    interval.cancel();
    await clock.advance(100);
    expect(fired).toHaveLength(4);
  });

  it('lets an interval cancel itself from its own callback', async () => {
    const clock = new FakeClock();
    let ticks = 0;
    const interval = clock.setInterval(() => {
      ticks += 1;
      if (ticks === 2) interval.cancel();
    }, 10);
    await clock.advance(100);
    expect(ticks).toBe(2);
    expect(clock.pending()).toEqual([]);
  });

  it('does not loop on a zero-period interval: it fires once per ms', async () => {
    const clock = new FakeClock();
    let ticks = 0;
    clock.setInterval(() => ticks++, 0);
    await clock.advance(3);
    expect(ticks).toBe(4); // at 0, 1, 2 and 3 ms
  });

  it('cancels a timer before it fires; cancelling again, or after it fired, changes nothing', async () => {
    const clock = new FakeClock();
    const fired: string[] = [];
    const cancelled = clock.setTimeout(() => fired.push('cancelled'), 10);
    const kept = clock.setTimeout(() => fired.push('kept'), 10);
    cancelled.cancel();
    cancelled.cancel();
    await clock.advance(10);
    kept.cancel();
    expect(fired).toEqual(['kept']);
    expect(clock.pending()).toEqual([]);
  });

  it('lets a timer cancel a later one that falls due in the same advance', async () => {
    const clock = new FakeClock();
    const fired: string[] = [];
    const later = clock.setTimeout(() => fired.push('later'), 20);
    clock.setTimeout(() => {
      fired.push('first');
      later.cancel();
    }, 10);
    await clock.advance(30);
    expect(fired).toEqual(['first']);
  });

  it('lists pending timers as ms from now, soonest first, and empties as they fire', async () => {
    const clock = new FakeClock();
    expect(clock.pending()).toEqual([]);
    clock.setTimeout(() => {}, 300);
    clock.setInterval(() => {}, 100);
    clock.setTimeout(() => {}, 50);
    expect(clock.pending()).toEqual([50, 100, 300]);
    await clock.advance(60);
    expect(clock.pending()).toEqual([40, 240]);
    await clock.advance(240);
    expect(clock.pending()).toEqual([100]); // the interval's next tick
  });

  it('next() moves to the next timer and fires it with those due at the same moment', async () => {
    const clock = new FakeClock();
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('a'), 40);
    clock.setTimeout(() => fired.push('b'), 40);
    clock.setTimeout(() => fired.push('c'), 90);
    expect(await clock.next()).toBe(true);
    expect(fired).toEqual(['a', 'b']);
    expect(clock.now() - START).toBe(40);
    expect(await clock.next()).toBe(true);
    expect(fired).toEqual(['a', 'b', 'c']);
    expect(clock.now() - START).toBe(90);
    expect(await clock.next()).toBe(false);
    expect(clock.now() - START).toBe(90);
  });

  it('lets the promise callbacks a timer causes run before the next timer fires', async () => {
    const clock = new FakeClock();
    const steps: string[] = [];
    clock.setTimeout(() => {
      steps.push('first timer');
      // A chain of several promise hops, as an awaited async function makes.
      void Promise.resolve()
        .then(() => Promise.resolve())
        .then(async () => {
          await null;
          steps.push('its promise work');
        });
    }, 10);
    clock.setTimeout(() => steps.push('second timer'), 20);
    await clock.advance(20);
    expect(steps).toEqual(['first timer', 'its promise work', 'second timer']);
  });

  it('fires a timer that promise work after an earlier timer sets, within the same advance', async () => {
    const clock = new FakeClock();
    const fired: number[] = [];
    clock.setTimeout(() => {
      void Promise.resolve().then(() => {
        clock.setTimeout(() => fired.push(clock.now() - START), 5);
      });
    }, 10);
    await clock.advance(20);
    expect(fired).toEqual([15]);
  });

  it('runs pending promise callbacks before the first timer, so work started just before advance() is seen', async () => {
    const clock = new FakeClock();
    const fired: number[] = [];
    void Promise.resolve().then(() => {
      clock.setTimeout(() => fired.push(clock.now() - START), 10);
    });
    await clock.advance(10);
    expect(fired).toEqual([10]);
  });

  it('refuses to run forever when timers keep scheduling timers at the same moment', async () => {
    const clock = new FakeClock();
    const again = () => {
      clock.setTimeout(again, 0);
    };
    again();
    await expect(clock.advance(1)).rejects.toThrow(/keep scheduling timers/);
  });
});
