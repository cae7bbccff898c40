import { describe, expect, it } from 'vitest';
import { type SentMark, SentWriter } from './sent-writer.js';

describe('SentWriter (group commit of the sent UPDATE)', () => {
  it('writes the marks handed in together as one statement, in order', async () => {
    const writes: SentMark[][] = [];
    const writer = new SentWriter(async (marks) => {
      writes.push(marks);
    });
    await Promise.all([writer.mark('m1', 'w1'), writer.mark('m2', 'w2'), writer.mark('m3', 'w3')]);
    expect(writes).toEqual([
      [
        { id: 'm1', waMessageId: 'w1' },
        { id: 'm2', waMessageId: 'w2' },
        { id: 'm3', waMessageId: 'w3' },
      ],
    ]);
  });

  it('batches what arrives while a write runs into the next write', async () => {
    const writes: string[][] = [];
    let release: () => void = () => {};
    const writer = new SentWriter(async (marks) => {
      writes.push(marks.map((mark) => mark.id));
      if (writes.length === 1) await new Promise<void>((resolve) => (release = resolve));
    });
    const first = writer.mark('a', 'wa');
    await new Promise((resolve) => setImmediate(resolve));
    const later = [writer.mark('b', 'wb'), writer.mark('c', 'wc')];
    release();
    await Promise.all([first, ...later]);
    expect(writes).toEqual([['a'], ['b', 'c']]);
    await writer.idle();
  });

  it('rejects every mark of a failed batch, and keeps writing the next ones', async () => {
    let fail = true;
    const written: string[] = [];
    const writer = new SentWriter(async (marks) => {
      if (fail) throw new Error('database down');
      written.push(...marks.map((mark) => mark.id));
    });
    const failed = await Promise.allSettled([writer.mark('x', 'wx'), writer.mark('y', 'wy')]);
    expect(failed.map((result) => result.status)).toEqual(['rejected', 'rejected']);
    fail = false;
    await writer.mark('z', 'wz');
    expect(written).toEqual(['z']);
  });
});
