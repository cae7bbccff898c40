import { describe, expect, it } from 'vitest';
import { Batcher } from './batcher.js';

describe('Batcher', () => {
  it('runs the calls of one turn as one batch and hands each caller its own result', async () => {
    const batches: number[][] = [];
    const batcher = new Batcher<number, number>({
      run: async (items) => {
        batches.push(items);
        return items.map((n) => n * 10);
      },
    });
    const results = await Promise.all([batcher.add(1), batcher.add(2), batcher.add(3)]);
    expect(results).toEqual([10, 20, 30]);
    expect(batches).toEqual([[1, 2, 3]]);
    expect(await batcher.add(4)).toBe(40);
    expect(batches).toEqual([[1, 2, 3], [4]]);
  });

  it('splits at maxBatch and rejects every caller of a failed batch', async () => {
    const batches: number[][] = [];
    const batcher = new Batcher<number, number>({
      maxBatch: 2,
      run: async (items) => {
        batches.push(items);
        if (items.includes(3)) throw new Error('down');
        return items;
      },
    });
    const settled = await Promise.allSettled([batcher.add(1), batcher.add(2), batcher.add(3)]);
    expect(batches).toEqual([[1, 2], [3]]);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
  });

  it('with maxInFlight, holds what arrives while a batch runs and sends it as the next batch, in order', async () => {
    const batches: number[][] = [];
    const releases: Array<() => void> = [];
    const batcher = new Batcher<number, number>({
      maxInFlight: 1,
      run: async (items) => {
        batches.push(items);
        await new Promise<void>((resolve) => releases.push(resolve));
        return items;
      },
    });
    const first = batcher.add(1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(batches).toEqual([[1]]);
    const later = [batcher.add(2), batcher.add(3)];
    await new Promise((resolve) => setImmediate(resolve));
    expect(batches).toEqual([[1]]); // still running: 2 and 3 wait
    let idle = false;
    const idled = batcher.idle().then(() => {
      idle = true;
    });
    releases.shift()?.();
    expect(await first).toBe(1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(batches).toEqual([[1], [2, 3]]);
    expect(idle).toBe(false);
    releases.shift()?.();
    expect(await Promise.all(later)).toEqual([2, 3]);
    await idled;
    expect(idle).toBe(true);
  });
});
