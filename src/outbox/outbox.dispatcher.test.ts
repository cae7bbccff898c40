// The dispatcher never sends a message twice in one process: a read of the table that began before the message's
// outcome was written still shows it queued (a wake, a sweep, an adoption racing the send), and queuing it again from
// that read would send it a second time.
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../__fixtures__/fake-clock.js';
import type { EngineSession, SentMessage } from '../engines/engine.js';
import { createLogger } from '../observability/logger.js';
import { createMetrics } from '../observability/metrics.js';
import { InMemorySessions } from './__fixtures__/in-memory-sessions.js';
import { OutboxDispatcher, type QueuedMessage } from './outbox.dispatcher.js';
import type { OutboxTransition } from './outbox.repository.js';
import { TokenBuckets } from './token-bucket.js';

function setup() {
  const clock = new FakeClock();
  const sent: string[] = [];
  const recorded: OutboxTransition[] = [];
  const session = {
    sendText: async (_to: string, text: string): Promise<SentMessage> => {
      sent.push(text);
      return { id: `wa-${sent.length}` };
    },
  } as unknown as EngineSession;
  const sessions = new InMemorySessions();
  sessions.setReady('agent', session);
  const dispatcher = new OutboxDispatcher({
    repository: { media: async () => null },
    store: { record: (transition) => void recorded.push(transition) },
    waits: { settle: () => {} },
    sessions,
    mayDispatch: () => true,
    buckets: new TokenBuckets({ capacity: 100, refillPerMinute: 6_000, clock }),
    metrics: createMetrics({ perAgent: false, collectProcessMetrics: false }),
    logger: createLogger({ level: 'silent' }),
    clock,
  });
  const message = (id: string): QueuedMessage => ({
    id,
    agentId: 'agent',
    kind: 'text',
    toJid: '6281200000001@c.us',
    payload: { text: `text of ${id}` },
    attempts: 0,
    failures: 0,
  });
  return { clock, dispatcher, sent, recorded, message };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('OutboxDispatcher', () => {
  it('does not queue again a message it sent, as a read that began before its outcome was written would', async () => {
    const { dispatcher, sent, recorded, message } = setup();
    dispatcher.enqueue(message('m1'));
    await settle();
    expect(sent).toEqual(['text of m1']);
    expect(recorded.map((r) => [r.id, r.status])).toEqual([['m1', 'sent']]);

    // The stale read: the row, still queued in the table, handed in again.
    dispatcher.enqueue(message('m1'));
    dispatcher.enqueue(message('m2'));
    await settle();
    expect(sent).toEqual(['text of m1', 'text of m2']);
    expect(dispatcher.holds('agent', 'm1')).toBe(false);
  });

  it('forgets what it sent after a minute, and queues a message it never sent at any time', async () => {
    const { clock, dispatcher, sent, message } = setup();
    dispatcher.enqueue(message('m1'));
    await settle();
    await clock.advance(61_000);
    dispatcher.enqueue(message('m2')); // and m1 leaves the memory, as m2 is remembered
    await settle();
    dispatcher.enqueue(message('m1'));
    await settle();
    expect(sent).toEqual(['text of m1', 'text of m2', 'text of m1']);
  });
});
