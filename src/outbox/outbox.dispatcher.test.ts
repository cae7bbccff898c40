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

function setup(extra: Partial<EngineSession> = {}, maxFileSends?: number) {
  const clock = new FakeClock();
  const sent: string[] = [];
  const recorded: OutboxTransition[] = [];
  const session = {
    sendText: async (_to: string, text: string): Promise<SentMessage> => {
      sent.push(text);
      return { id: `wa-${sent.length}` };
    },
    ...extra,
  } as unknown as EngineSession;
  const sessions = new InMemorySessions();
  sessions.setReady('agent', session);
  const dispatcher = new OutboxDispatcher({
    repository: {
      media: async () => Buffer.from('%PDF-1.4'),
      setNotBefore: async (_id, at) => at,
      lastSentTo: async () => null,
    },
    store: { record: (transition) => void recorded.push(transition) },
    waits: { settle: () => {} },
    sessions,
    mayDispatch: () => true,
    buckets: new TokenBuckets({ capacity: 100, refillPerMinute: 6_000, clock }),
    metrics: createMetrics({ perAgent: false, collectProcessMetrics: false }),
    logger: createLogger({ level: 'silent' }),
    clock,
    maxFileSends,
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
  const file = (id: string, agentId = 'agent'): QueuedMessage => ({
    ...message(id),
    agentId,
    kind: 'document',
    payload: { mimeType: 'application/pdf', filename: `${id}.pdf` },
  });
  return { clock, dispatcher, sent, recorded, message, file, sessions, session };
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

describe('OutboxDispatcher, kinds beyond text', () => {
  it('fails a kind the engine lacks at once with ENGINE_UNSUPPORTED, and goes on with the next', async () => {
    const { dispatcher, recorded, sent, message, file } = setup();
    dispatcher.enqueue(file('doc'));
    dispatcher.enqueue({ ...message('place'), kind: 'location', payload: { location: { latitude: 1, longitude: 2 } } });
    dispatcher.enqueue(message('after'));
    await settle();
    expect(recorded.map((r) => [r.id, r.status, r.attempts])).toEqual([
      ['doc', 'failed', 1],
      ['place', 'failed', 1],
      ['after', 'sent', 1],
    ]);
    expect(recorded[0]?.error).toContain('cannot send document messages');
    expect(sent).toEqual(['text of after']);
  });

  it('sends at most maxFileSends files at once; the others wait for a place without a strike', async () => {
    const releases: Array<() => void> = [];
    const sending: string[] = [];
    const { clock, dispatcher, recorded, file, sessions, session } = setup(
      {
        sendMedia: async (_to, media) => {
          sending.push(media.filename ?? '');
          await new Promise<void>((resolve) => releases.push(resolve));
          return { id: `wa-${media.filename}` };
        },
      },
      1,
    );
    sessions.setReady('other', session);
    dispatcher.enqueue(file('a'));
    dispatcher.enqueue(file('b', 'other'));
    await settle();
    expect(sending).toEqual(['a.pdf']);
    await clock.advance(1_000);
    expect(sending).toEqual(['a.pdf']); // still held: its place is taken
    releases.shift()?.();
    await settle();
    // The waiting queue asks again within 100 ms of the clock.
    await clock.advance(100);
    expect(sending).toEqual(['a.pdf', 'b.pdf']);
    releases.shift()?.();
    await settle();
    expect(recorded.map((r) => [r.id, r.status, r.attempts])).toEqual([
      ['a', 'sent', 1],
      ['b', 'sent', 1],
    ]);
  });
});
