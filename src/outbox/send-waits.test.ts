import { describe, expect, it } from 'vitest';
import { FakeClock } from '../__fixtures__/fake-clock.js';
import { SendWaits } from './send-waits.js';

describe('SendWaits', () => {
  it('ends each wait at its own deadline, a shorter one begun after a longer one included', async () => {
    const clock = new FakeClock();
    const sut = new SendWaits(clock);
    const ended: string[] = [];
    const long = sut.wait('long', 300).then((outcome) => ended.push(`long:${outcome}`));
    const short = sut.wait('short', 20).then((outcome) => ended.push(`short:${outcome}`));
    expect(clock.pending()).toEqual([20]); // one timer, for the earliest deadline
    await clock.advance(20);
    await short;
    expect(ended).toEqual(['short:null']);
    expect(clock.pending()).toEqual([280]);
    await clock.advance(279);
    expect(ended).toEqual(['short:null']);
    await clock.advance(1);
    await long;
    expect(ended).toEqual(['short:null', 'long:null']);
    expect(clock.pending()).toEqual([]);
  });

  it('answers every waiter of a message with its outcome, and stops its timer when nobody waits', async () => {
    const clock = new FakeClock();
    const sut = new SendWaits(clock);
    const waits = [sut.wait('m1', 1_000), sut.wait('m1', 2_000)];
    sut.settle('m1', { status: 'sent', waMessageId: 'wa-1' });
    expect(await Promise.all(waits)).toEqual([
      { status: 'sent', waMessageId: 'wa-1' },
      { status: 'sent', waMessageId: 'wa-1' },
    ]);
    expect(clock.pending()).toEqual([]);
  });

  it('does not wait at all for 0 ms or once closed, and close releases everyone', async () => {
    const clock = new FakeClock();
    const sut = new SendWaits(clock);
    expect(await sut.wait('now', 0)).toBeNull();
    const waiting = sut.wait('m2', 60_000);
    sut.close();
    expect(await waiting).toBeNull();
    expect(await sut.wait('m3', 1_000)).toBeNull();
    expect(clock.pending()).toEqual([]);
  });
});
