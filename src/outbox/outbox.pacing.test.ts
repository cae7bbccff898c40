// Pacing in the dispatcher, on a fake clock: each paced message waits a random gap, shows the typing indicator for as
// long as its text needs, keeps its distance from the last message to the same recipient, and keeps its planned time
// on its row; an agent that is not paced never waits for one that is.
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../__fixtures__/fake-clock.js';
import type { EngineSession, SentMessage } from '../engines/engine.js';
import { createLogger } from '../observability/logger.js';
import { createMetrics } from '../observability/metrics.js';
import type { PacingProfile } from '../pacing/pacing.schemas.js';
import { InMemorySessions } from './__fixtures__/in-memory-sessions.js';
import { OutboxDispatcher, type QueuedMessage } from './outbox.dispatcher.js';
import { TokenBuckets } from './token-bucket.js';

const PROFILE: PacingProfile = {
  minGapMs: 2_000,
  maxGapMs: 8_000,
  typingMsPerChar: 40,
  maxTypingMs: 6_000,
  perRecipientGapMs: 20_000,
  newContactsPerDay: null,
};
const ALICE = '6281200000001@c.us';
const BOB = '6281200000002@c.us';

type Event = { agentId: string; kind: 'typing' | 'text'; to: string; text?: string; at: number };

interface SetupOptions {
  random?: () => number;
  profiles?: Record<string, PacingProfile | undefined>;
}

function setup({ random = () => 0, profiles = { paced: PROFILE } }: SetupOptions = {}) {
  const clock = new FakeClock();
  const events: Event[] = [];
  const sessions = new InMemorySessions();
  const sessionOf = (agentId: string) =>
    ({
      sendText: async (to: string, text: string): Promise<SentMessage> => {
        events.push({ agentId, kind: 'text', to, text, at: clock.now() });
        return { id: `wa-${events.length}` };
      },
      setTyping: async (to: string, typing: boolean) => {
        if (typing) events.push({ agentId, kind: 'typing', to, at: clock.now() });
      },
    }) as unknown as EngineSession;
  sessions.setReady('paced', sessionOf('paced'));
  sessions.setReady('fast', sessionOf('fast'));
  /** not_before of each row, as the table keeps it (the first value written wins). */
  const notBefore = new Map<string, number>();
  const lastSent = new Map<string, number>();
  const dispatcher = new OutboxDispatcher({
    repository: {
      media: async () => null,
      setNotBefore: async (id, at) => {
        if (!notBefore.has(id)) notBefore.set(id, at);
        return notBefore.get(id) ?? null;
      },
      lastSentTo: async (agentId, to) => lastSent.get(`${agentId} ${to}`) ?? null,
    },
    store: { record: () => {} },
    waits: { settle: () => {} },
    sessions,
    mayDispatch: () => true,
    buckets: new TokenBuckets({ capacity: 100, refillPerMinute: 6_000, clock }),
    metrics: createMetrics({ perAgent: false, collectProcessMetrics: false }),
    logger: createLogger({ level: 'silent' }),
    clock,
    pacing: { profile: (agentId) => profiles[agentId] ?? null, random },
  });
  let n = 0;
  const message = (
    agentId: string,
    text: string,
    toJid = ALICE,
    extra: Partial<QueuedMessage> = {},
  ): QueuedMessage => ({
    id: `m${++n}`,
    agentId,
    kind: 'text',
    toJid,
    payload: { text },
    attempts: 0,
    failures: 0,
    ...extra,
  });
  return { clock, dispatcher, events, message, notBefore, lastSent, sessions, start: clock.now() };
}

const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
};

describe('OutboxDispatcher pacing', () => {
  it('waits the gap, shows typing for len × typingMsPerChar before the send, and keeps the time on the row', async () => {
    const { clock, dispatcher, events, message, notBefore, start } = setup({ random: () => 0 });
    const text = 'x'.repeat(50); // 50 × 40 ms = 2 s of typing
    dispatcher.enqueue(message('paced', text));
    await settle();
    // Gap (min, since random is 0) + typing: the send is planned 2 s + 2 s ahead, and kept on the row.
    expect(notBefore.get('m1')).toBe(start + 4_000);
    expect(clock.pending()).toEqual([2_000]);
    expect(events).toEqual([]);

    await clock.advance(1_999);
    expect(events).toEqual([]);
    await clock.advance(1);
    await settle();
    expect(events).toEqual([{ agentId: 'paced', kind: 'typing', to: ALICE, at: start + 2_000 }]);
    await clock.advance(1_999);
    expect(events).toHaveLength(1);
    await clock.advance(1);
    await settle();
    expect(events.at(-1)).toEqual({ agentId: 'paced', kind: 'text', to: ALICE, text, at: start + 4_000 });
  });

  it('draws each gap within [minGapMs, maxGapMs], counted from the previous send', async () => {
    const draws = [0, 0.999_999, 0.5];
    const { clock, dispatcher, events, message } = setup({ random: () => draws.shift() ?? 0 });
    // Three recipients, so that only the gap applies; no text, so no typing.
    for (const to of ['6281200000011@c.us', '6281200000012@c.us', '6281200000013@c.us'])
      dispatcher.enqueue(message('paced', '', to));
    await settle();
    while (events.length < 3 && (await clock.next())) await settle();
    const sends = events.map((e) => e.at);
    expect(events.map((e) => e.kind)).toEqual(['text', 'text', 'text']);
    expect(sends[0]).toBe(Date.UTC(2026, 0, 1) + 2_000); // min
    expect((sends[1] ?? 0) - (sends[0] ?? 0)).toBe(8_000); // max, both ends included
    expect((sends[2] ?? 0) - (sends[1] ?? 0)).toBe(5_000); // 2 000 + floor(0.5 × 6 001)
  });

  it('caps the typing at maxTypingMs', async () => {
    const { clock, dispatcher, events, message, start } = setup();
    dispatcher.enqueue(message('paced', 'y'.repeat(1_000))); // 40 s of typing, capped at 6 s
    await settle();
    while (!events.some((e) => e.kind === 'text') && (await clock.next())) await settle();
    const [typing, sent] = events;
    expect(typing).toMatchObject({ kind: 'typing', at: start + 2_000 });
    expect(sent).toMatchObject({ kind: 'text', at: start + 8_000 });
  });

  it('spaces two messages to one recipient by perRecipientGapMs, from the table after a restart too', async () => {
    const { clock, dispatcher, events, message, lastSent, start } = setup();
    // The table says the last message to Alice went 5 s ago (an earlier process): the next waits 15 s more.
    lastSent.set(`paced ${ALICE}`, start - 5_000);
    dispatcher.enqueue(message('paced', '', ALICE));
    dispatcher.enqueue(message('paced', '', ALICE));
    dispatcher.enqueue(message('paced', '', BOB));
    await settle();
    while (events.length < 3 && (await clock.next())) await settle();
    expect(events.map((e) => [e.to, e.at - start])).toEqual([
      [ALICE, 15_000],
      // In memory now: 20 s after the first, though its gap (2 s) ended sooner.
      [ALICE, 35_000],
      // Bob only waits his gap after the previous send.
      [BOB, 37_000],
    ]);
  });

  it('honours a send time already on the row (a restart mid-wait): only what is left of it', async () => {
    const { clock, dispatcher, events, message, notBefore, start } = setup();
    notBefore.set('m1', start + 3_000);
    dispatcher.enqueue(message('paced', 'x'.repeat(25), ALICE, { notBefore: start + 3_000 })); // 1 s of typing
    await settle();
    expect(clock.pending()).toEqual([2_000]); // typing from 2 s, sending at 3 s: not a new gap from zero
    while (!events.some((e) => e.kind === 'text') && (await clock.next())) await settle();
    expect(events.map((e) => [e.kind, e.at - start])).toEqual([
      ['typing', 2_000],
      ['text', 3_000],
    ]);
  });

  it('sends a restarted message in the middle of its typing at once after the typing shown again', async () => {
    const { clock, dispatcher, events, message, start } = setup();
    dispatcher.enqueue(message('paced', 'x'.repeat(100), ALICE, { notBefore: start + 1_500 })); // 4 s of typing
    await settle();
    expect(events).toEqual([{ agentId: 'paced', kind: 'typing', to: ALICE, at: start }]);
    expect(clock.pending()).toEqual([1_500]);
    await clock.advance(1_500);
    await settle();
    expect(events.at(-1)).toMatchObject({ kind: 'text', at: start + 1_500 });
  });

  it('sends on time, without the indicator, through an engine that has no typing indicator', async () => {
    const { clock, dispatcher, events, message, sessions, start } = setup();
    sessions.setReady('paced', {
      sendText: async (to: string, text: string): Promise<SentMessage> => {
        events.push({ agentId: 'paced', kind: 'text', to, text, at: clock.now() });
        return { id: 'wa-1' };
      },
    } as unknown as EngineSession);
    dispatcher.enqueue(message('paced', 'x'.repeat(50)));
    await settle();
    while (events.length === 0 && (await clock.next())) await settle();
    expect(events).toEqual([{ agentId: 'paced', kind: 'text', to: ALICE, text: 'x'.repeat(50), at: start + 4_000 }]);
  });

  it('never holds an agent that is not paced while a paced one waits', async () => {
    const { clock, dispatcher, events, message } = setup();
    dispatcher.enqueue(message('paced', 'slow'));
    dispatcher.enqueue(message('fast', 'quick'));
    dispatcher.enqueue(message('fast', 'quicker'));
    await settle();
    expect(events.map((e) => [e.agentId, e.text])).toEqual([
      ['fast', 'quick'],
      ['fast', 'quicker'],
    ]);
    expect(clock.pending()).toHaveLength(1); // the paced agent's own timer, and nothing else
  });

  it('sends at once when the profile is switched off during a wait', async () => {
    const profiles: Record<string, PacingProfile | undefined> = { paced: PROFILE };
    const { dispatcher, events, message } = setup({ profiles });
    dispatcher.enqueue(message('paced', 'now'));
    await settle();
    expect(events).toEqual([]);
    profiles.paced = undefined;
    dispatcher.repace('paced');
    await settle();
    expect(events.map((e) => e.text)).toEqual(['now']);
  });
});
