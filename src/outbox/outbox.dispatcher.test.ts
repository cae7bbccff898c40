// The dispatcher never sends a message twice in one process: a read of the table that began before the message's
// outcome was written still shows it queued (a wake, a sweep, an adoption racing the send); the dispatcher tells such a
// read which messages it finished meanwhile (watchDone), and the outbox leaves them out (see also outbox.test.ts).
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
    repository: { media: async () => null, setNotBefore: async (_id, at) => at, lastSentTo: async () => null },
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
  it('tells a read of the table which messages it sent or failed while the read ran, and only those', async () => {
    const { dispatcher, sent, recorded, message } = setup();
    dispatcher.enqueue(message('before'));
    await settle();

    const watch = dispatcher.watchDone();
    dispatcher.enqueue(message('m1'));
    await settle();
    expect(sent).toEqual(['text of before', 'text of m1']);
    expect(recorded.map((r) => [r.id, r.status])).toEqual([
      ['before', 'sent'],
      ['m1', 'sent'],
    ]);
    // A read that began before m1's outcome was written may show it queued: the caller leaves it out.
    expect([...watch.done]).toEqual(['m1']);
    watch.stop();

    dispatcher.enqueue(message('m2'));
    await settle();
    expect([...watch.done]).toEqual(['m1']); // stopped: nothing more collected, nothing kept
  });

  it('queues a message it is handed twice once, and again once it is done (the caller decides)', async () => {
    const { dispatcher, sent, message } = setup();
    dispatcher.enqueue(message('m1'));
    dispatcher.enqueue(message('m1'));
    await settle();
    expect(sent).toEqual(['text of m1']);
    expect(dispatcher.holds('agent', 'm1')).toBe(false);
  });
});
