import { describe, expect, it } from 'vitest';
import { fairShares, type MemberCapacity, planMoves, someoneShort } from './fair-share.js';

const member = (instanceId: string, maxSessions: number | null = null): MemberCapacity => ({ instanceId, maxSessions });
const sum = (shares: Map<string, number>) => [...shares.values()].reduce((a, b) => a + b, 0);

describe('fairShares', () => {
  it('splits equally without MAX_SESSIONS, the remainder one each by instanceId', () => {
    expect(fairShares(60, [member('a'), member('b'), member('c')])).toEqual(
      new Map([
        ['a', 20],
        ['b', 20],
        ['c', 20],
      ]),
    );
    // Whatever order the members come in, every member computes the same shares.
    const shares = fairShares(62, [member('c'), member('a'), member('b')]);
    expect(Object.fromEntries(shares)).toEqual({ a: 21, b: 21, c: 20 });
  });

  it('gives nothing to share when there are no sessions, and nobody a share when there are no members', () => {
    expect(fairShares(0, [member('a'), member('b')])).toEqual(
      new Map([
        ['a', 0],
        ['b', 0],
      ]),
    );
    expect(fairShares(10, [])).toEqual(new Map());
  });

  it('splits in proportion to MAX_SESSIONS, the remainder to the largest fractions', () => {
    expect(Object.fromEntries(fairShares(60, [member('a', 100), member('b', 50)]))).toEqual({ a: 40, b: 20 });
    // Quotas 6.67 and 3.33: the one left goes to the larger fraction.
    expect(Object.fromEntries(fairShares(10, [member('a', 100), member('b', 50)]))).toEqual({ a: 7, b: 3 });
  });

  it('weighs a member without MAX_SESSIONS as the mean of those with one', () => {
    // Caps 30 and 10: the mean is 20, so weights 30, 10, 20 over 60 sessions.
    expect(fairShares(60, [member('a', 30), member('b', 10), member('c')])).toEqual(
      new Map([
        ['a', 30],
        ['b', 10],
        ['c', 20],
      ]),
    );
  });

  it('never gives past MAX_SESSIONS, and spreads what a full member cannot take over the others', () => {
    const shares = fairShares(60, [member('a', 10), member('b'), member('c')]);
    expect(shares.get('a')).toBe(10);
    expect(shares.get('b')).toBe(25);
    expect(shares.get('c')).toBe(25);
    // Everyone full: the rest stays unowned.
    expect(fairShares(100, [member('a', 10), member('b', 20)])).toEqual(
      new Map([
        ['a', 10],
        ['b', 20],
      ]),
    );
  });

  it('adds up to the sessions exactly whenever the members have room (a property over many inputs)', () => {
    for (let sessions = 0; sessions <= 200; sessions += 7) {
      for (const caps of [
        [null, null, null],
        [5, null],
        [3, 7, 11],
        [1000, 1, null, null],
        [2, 2],
      ]) {
        const members = caps.map((cap, i) => member(`m${i}`, cap));
        const shares = fairShares(sessions, members);
        const capped = caps.every((cap) => cap !== null);
        const room = capped ? caps.reduce<number>((total, cap) => total + (cap ?? 0), 0) : Number.POSITIVE_INFINITY;
        expect(sum(shares)).toBe(Math.min(sessions, room));
        for (const [i, cap] of caps.entries()) if (cap !== null) expect(shares.get(`m${i}`)).toBeLessThanOrEqual(cap);
      }
    }
  });
});

describe('someoneShort', () => {
  it('is true when another member is two or more below its share', () => {
    const shares = new Map([
      ['a', 10],
      ['b', 10],
    ]);
    expect(someoneShort('a', shares, new Map([['b', 9]]))).toBe(false);
    expect(someoneShort('a', shares, new Map([['b', 8]]))).toBe(true);
    expect(someoneShort('a', shares, new Map())).toBe(true); // b holds nothing yet
    expect(someoneShort('b', shares, new Map([['b', 0]]))).toBe(true); // a holds nothing
    expect(someoneShort('a', new Map([['a', 10]]), new Map())).toBe(false); // itself does not count
  });
});

describe('planMoves', () => {
  const base = { maxSessions: null, free: 100, othersShort: false, maxAcquires: 20, maxReleases: 5 };

  it('takes free leases up to the share, bounded by the free ones and by the tick budget', () => {
    expect(planMoves({ ...base, owned: 0, share: 10 })).toEqual({ acquire: 10, release: 0 });
    expect(planMoves({ ...base, owned: 0, share: 10, free: 3 })).toEqual({ acquire: 3, release: 0 });
    expect(planMoves({ ...base, owned: 0, share: 100 })).toEqual({ acquire: 20, release: 0 });
  });

  it('stays still at its share, and one above it while nobody is more than one short', () => {
    expect(planMoves({ ...base, owned: 10, share: 10 })).toEqual({ acquire: 0, release: 0 });
    expect(planMoves({ ...base, owned: 11, share: 10 })).toEqual({ acquire: 0, release: 0 });
    expect(planMoves({ ...base, owned: 10, share: 10, othersShort: true })).toEqual({ acquire: 0, release: 0 });
  });

  it('gives up the one above its share when another member is more than one short', () => {
    // 40 sessions over 3 members (shares 14, 13, 13) at 15, 15, 10: without this, the third would stay at 10.
    expect(planMoves({ ...base, owned: 15, share: 14, othersShort: true })).toEqual({ acquire: 0, release: 1 });
  });

  it('gives up leases when more than one above its share, a few per tick, never going below the share', () => {
    expect(planMoves({ ...base, owned: 12, share: 10 })).toEqual({ acquire: 0, release: 2 });
    expect(planMoves({ ...base, owned: 40, share: 10 })).toEqual({ acquire: 0, release: 5 });
  });

  it('gives up anything past MAX_SESSIONS', () => {
    expect(planMoves({ ...base, owned: 11, share: 10, maxSessions: 10 })).toEqual({ acquire: 0, release: 1 });
  });

  it('does not move when it has no budget left', () => {
    expect(planMoves({ ...base, owned: 0, share: 10, maxAcquires: 0 })).toEqual({ acquire: 0, release: 0 });
  });
});
