import { describe, expect, it } from 'vitest';
import { ChatQueue } from './chat-queue.js';

/** A task the test finishes by hand, and a log of when each one started. */
function harness(options = { concurrency: 32, maxPendingPerChat: 100, maxPending: 1000 }) {
  const queue = new ChatQueue(options);
  const started: string[] = [];
  const finishers = new Map<string, () => void>();
  const task = (name: string) => () =>
    new Promise<void>((resolve) => {
      started.push(name);
      finishers.set(name, resolve);
    });
  const finish = async (name: string) => {
    finishers.get(name)?.();
    // let the queue's continuation run
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { queue, started, task, finish };
}

describe('ChatQueue', () => {
  it('runs one chat strictly in order and does not hold other chats back', async () => {
    const { queue, started, task, finish } = harness();
    queue.push('a', task('a1'));
    queue.push('a', task('a2'));
    queue.push('a', task('a3'));
    queue.push('b', task('b1'));
    expect(started).toEqual(['a1', 'b1']);
    await finish('b1');
    await finish('a1');
    expect(started).toEqual(['a1', 'b1', 'a2']);
    await finish('a2');
    await finish('a3');
    expect(started).toEqual(['a1', 'b1', 'a2', 'a3']);
    await queue.onIdle();
    expect(queue.size).toBe(0);
  });

  it('keeps at most `concurrency` tasks running and takes waiting chats in turn', async () => {
    const { queue, started, task, finish } = harness({ concurrency: 2, maxPendingPerChat: 10, maxPending: 10 });
    queue.push('a', task('a1'));
    queue.push('a', task('a2'));
    queue.push('b', task('b1'));
    queue.push('c', task('c1'));
    expect(started).toEqual(['a1', 'b1']);
    await finish('a1');
    // c waited longer than a's second message, so it goes first
    expect(started).toEqual(['a1', 'b1', 'c1']);
    await finish('b1');
    expect(started).toEqual(['a1', 'b1', 'c1', 'a2']);
  });

  it('refuses tasks past the per-chat and total bounds', () => {
    const { queue, task } = harness({ concurrency: 1, maxPendingPerChat: 2, maxPending: 3 });
    expect(queue.push('a', task('a1'))).toBe(true); // running, not waiting
    expect(queue.push('a', task('a2'))).toBe(true);
    expect(queue.push('a', task('a3'))).toBe(true);
    expect(queue.push('a', task('a4'))).toBe(false);
    expect(queue.push('b', task('b1'))).toBe(true);
    expect(queue.push('c', task('c1'))).toBe(false);
    expect(queue.size).toBe(4);
  });

  it('lets a task give its slot back early while its chat stays locked', async () => {
    const queue = new ChatQueue({ concurrency: 1, maxPendingPerChat: 10, maxPending: 10 });
    const log: string[] = [];
    let finishA1 = () => {};
    queue.push('a', async (releaseSlot) => {
      log.push('a1 start');
      releaseSlot();
      await new Promise<void>((resolve) => {
        finishA1 = resolve;
      });
      log.push('a1 end');
    });
    queue.push('a', async () => {
      log.push('a2');
    });
    queue.push('b', async () => {
      log.push('b1');
    });
    await new Promise((resolve) => setImmediate(resolve));
    // b got the freed slot; a2 still waits for a1
    expect(log).toEqual(['a1 start', 'b1']);
    expect(queue.size).toBe(2);
    finishA1();
    await queue.onIdle();
    expect(log).toEqual(['a1 start', 'b1', 'a1 end', 'a2']);
  });

  it('goes on with the chat after a task throws', async () => {
    const queue = new ChatQueue({ concurrency: 4, maxPendingPerChat: 10, maxPending: 10 });
    const ran: string[] = [];
    queue.push('a', async () => {
      throw new Error('boom');
    });
    queue.push('a', async () => {
      ran.push('second');
    });
    await queue.onIdle();
    expect(ran).toEqual(['second']);
  });
});
