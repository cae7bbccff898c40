import { describe, expect, it } from 'vitest';
import { ChatQueue, type ChatQueueOptions } from './chat-queue.js';

/** A task the test finishes by hand, and a log of when each one started. */
const LIMITS = {
  perAgentConcurrency: 32,
  maxConcurrency: 32,
  maxPendingPerChat: 100,
  maxPendingPerAgent: 1000,
  maxPending: 1000,
};

function harness(options: Partial<ChatQueueOptions> = {}) {
  const queue = new ChatQueue({ ...LIMITS, ...options });
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
    queue.push('agent', 'a', task('a1'));
    queue.push('agent', 'a', task('a2'));
    queue.push('agent', 'a', task('a3'));
    queue.push('agent', 'b', task('b1'));
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
    const { queue, started, task, finish } = harness({ maxConcurrency: 2, maxPendingPerChat: 10, maxPending: 10 });
    queue.push('agent', 'a', task('a1'));
    queue.push('agent', 'a', task('a2'));
    queue.push('agent', 'b', task('b1'));
    queue.push('agent', 'c', task('c1'));
    expect(started).toEqual(['a1', 'b1']);
    await finish('a1');
    // c waited longer than a's second message, so it goes first
    expect(started).toEqual(['a1', 'b1', 'c1']);
    await finish('b1');
    expect(started).toEqual(['a1', 'b1', 'c1', 'a2']);
  });

  it('refuses tasks past the per-chat and total bounds', () => {
    const { queue, task } = harness({ maxConcurrency: 1, maxPendingPerChat: 2, maxPending: 3 });
    expect(queue.push('agent', 'a', task('a1'))).toBeNull(); // running, not waiting
    expect(queue.push('agent', 'a', task('a2'))).toBeNull();
    expect(queue.push('agent', 'a', task('a3'))).toBeNull();
    expect(queue.push('agent', 'a', task('a4'))).toBe('chat');
    expect(queue.push('agent', 'b', task('b1'))).toBeNull();
    expect(queue.push('agent', 'c', task('c1'))).toBe('process');
    expect(queue.size).toBe(4);
  });

  it('lets a task give its slot back early while its chat stays locked', async () => {
    const queue = new ChatQueue({ ...LIMITS, maxConcurrency: 1 });
    const log: string[] = [];
    let finishA1 = () => {};
    queue.push('agent', 'a', async (releaseSlot) => {
      log.push('a1 start');
      releaseSlot();
      await new Promise<void>((resolve) => {
        finishA1 = resolve;
      });
      log.push('a1 end');
    });
    queue.push('agent', 'a', async () => {
      log.push('a2');
    });
    queue.push('agent', 'b', async () => {
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
    const queue = new ChatQueue(LIMITS);
    const ran: string[] = [];
    queue.push('agent', 'a', async () => {
      throw new Error('boom');
    });
    queue.push('agent', 'a', async () => {
      ran.push('second');
    });
    await queue.onIdle();
    expect(ran).toEqual(['second']);
  });

  it('keeps at most `perAgentConcurrency` tasks of one agent running, while other agents go on', async () => {
    const { queue, started, task, finish } = harness({ perAgentConcurrency: 2 });
    for (const name of ['x1', 'x2', 'x3', 'x4']) queue.push('x', name, task(name));
    queue.push('y', 'y1', task('y1'));
    queue.push('y', 'y2', task('y2'));
    queue.push('y', 'y3', task('y3'));
    expect(started).toEqual(['x1', 'x2', 'y1', 'y2']);
    await finish('x2');
    expect(started).toEqual(['x1', 'x2', 'y1', 'y2', 'x3']);
    await finish('y1');
    expect(started).toEqual(['x1', 'x2', 'y1', 'y2', 'x3', 'y3']);
  });

  it('gives the freed slots to the agents with work in turn when the process cap is reached', async () => {
    const { queue, started, task, finish } = harness({ perAgentConcurrency: 3, maxConcurrency: 3 });
    for (const name of ['a1', 'a2', 'a3', 'a4', 'a5']) queue.push('a', name, task(name));
    queue.push('b', 'b1', task('b1'));
    queue.push('b', 'b2', task('b2'));
    queue.push('c', 'c1', task('c1'));
    expect(started).toEqual(['a1', 'a2', 'a3']);
    for (const name of ['a1', 'a2', 'a3', 'b1', 'c1']) await finish(name);
    expect(started).toEqual(['a1', 'a2', 'a3', 'b1', 'c1', 'a4', 'b2', 'a5']);
  });

  it("refuses an agent's tasks past its own bound while other agents are still taken", () => {
    const { queue, task } = harness({ perAgentConcurrency: 1, maxPendingPerAgent: 2 });
    expect(queue.push('x', 'a', task('x1'))).toBeNull(); // running, not waiting
    expect(queue.push('x', 'b', task('x2'))).toBeNull();
    expect(queue.push('x', 'c', task('x3'))).toBeNull();
    expect(queue.push('x', 'd', task('x4'))).toBe('agent');
    expect(queue.push('y', 'a', task('y1'))).toBeNull();
    expect(queue.push('y', 'b', task('y2'))).toBeNull();
    expect(queue.size).toBe(5);
  });

  it('lets a released slot go to another agent while the chat keeps its own order', async () => {
    const queue = new ChatQueue({ ...LIMITS, perAgentConcurrency: 1 });
    const log: string[] = [];
    let finishX1 = () => {};
    queue.push('x', 'a', async (releaseSlot) => {
      log.push('x1 start');
      releaseSlot();
      await new Promise<void>((resolve) => {
        finishX1 = resolve;
      });
      log.push('x1 end');
    });
    queue.push('x', 'a', async () => {
      log.push('x2');
    });
    queue.push('x', 'b', async () => {
      log.push('x3');
    });
    await new Promise((resolve) => setImmediate(resolve));
    // The agent's slot went to its other chat; its first chat waits for x1.
    expect(log).toEqual(['x1 start', 'x3']);
    finishX1();
    await queue.onIdle();
    expect(log).toEqual(['x1 start', 'x3', 'x1 end', 'x2']);
  });
});
