import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../observability/logger.js';
import { FakeTimers, Gate, transition } from './__fixtures__/outbox-fakes.js';
import type { NewOutboxMessage, OutboxTransition } from './outbox.repository.js';
import { TransitionLog } from './outbox.transitions.js';
import { OutboxWriter } from './outbox.writer.js';

/** A repository that records each write, can hold writes until released, and fails writes that carry given ids. */
class FakeRepository {
  readonly calls: OutboxTransition[][] = [];
  /** A write carrying one of these row ids fails (decided when the write is let through). */
  readonly failIds = new Set<string>();
  /** The next write carrying one of these row ids fails; the ones after it do not. */
  readonly failOnceIds = new Set<string>();
  readonly gate = new Gate();

  hold(): void {
    this.gate.hold();
  }

  release(): void {
    this.gate.release();
  }

  async write(_inserts: readonly NewOutboxMessage[], transitions: readonly OutboxTransition[]): Promise<Set<string>> {
    this.calls.push([...transitions]);
    await this.gate.pass();
    const bad = transitions.find((t) => this.failIds.has(t.id) || this.failOnceIds.has(t.id));
    for (const t of transitions) this.failOnceIds.delete(t.id);
    if (bad) throw new Error(`write failed: ${bad.id}`);
    return new Set();
  }

  /** The writes that carried a transition of this row. */
  writesOf(id: string): OutboxTransition[] {
    return this.calls.flatMap((call) => call.filter((t) => t.id === id));
  }
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

function setup() {
  const repository = new FakeRepository();
  // Writes go as soon as the one before ends: the order of writes is under test here, not the linger.
  const writer = new OutboxWriter({ repository, onInserted: () => {}, lingerMs: 0 });
  const timers = new FakeTimers();
  const lines: Array<Record<string, unknown>> = [];
  const destination = new PassThrough();
  destination.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
  });
  const logger = createLogger({ level: 'info', destination });
  const log = new TransitionLog({ writer, logger, timers, retryDelayMs: (attempt) => 100 * attempt });
  /** Lets every write handed in so far finish, and the log hear of its outcome. */
  const settle = async () => {
    await writer.idle();
    await tick();
  };
  const events = (event: string) => lines.filter((line) => line.event === event);
  return { repository, writer, timers, log, lines, events, settle };
}

describe('TransitionLog', () => {
  it('hands the outcome of a row not written yet to its insert, and tracks nothing for it', async () => {
    const { repository, writer, log, settle } = setup();
    repository.hold();
    const row: NewOutboxMessage = {
      id: 'a',
      agentId: 'bot',
      kind: 'text',
      toJid: '6281234567890@c.us',
      payload: { text: 'hi' },
      media: null,
      idempotencyKey: null,
      traceId: null,
    };
    const inserted = writer.insert(row, false);
    const sent = transition('a', 'sent', 1);
    log.record(sent);
    expect(row.outcome).toBe(sent);
    expect(log.pending('a')).toBeUndefined();
    expect(log.settledIds()).toEqual([]);
    repository.release();
    await inserted;
    await settle();
    expect(repository.calls).toEqual([[]]); // one write, the insert's, and no transition of its own
  });

  it('shows a transition as pending until its write completes', async () => {
    const { repository, log, settle } = setup();
    repository.hold();
    const sent = transition('a', 'sent', 1);
    log.record(sent);
    expect(log.pending('a')).toEqual(sent);
    await tick();
    expect(repository.calls).toEqual([[sent]]);
    expect(log.pending('a')).toBe(sent); // written, not committed yet
    expect(log.pending('b')).toBeUndefined();
    repository.release();
    await settle();
    expect(log.pending('a')).toBeUndefined();
  });

  it('shows the latest transition of a row while an older one is being written', async () => {
    const { repository, log, settle } = setup();
    repository.hold();
    const requeued = transition('a', 'queued', 1);
    const sent = transition('a', 'sent', 2);
    log.record(requeued);
    await tick();
    log.record(sent);
    expect(log.pending('a')).toBe(sent);
    repository.release();
    repository.hold(); // the newer one's write waits
    await tick();
    await tick();
    // The older write committed; the newer one is still on its way, and is what reads see.
    expect(repository.calls).toEqual([[requeued], [sent]]);
    expect(log.pending('a')).toBe(sent);
    expect(log.settledIds()).toEqual(['a']);
    repository.release();
    await settle();
    expect(log.pending('a')).toBeUndefined();
  });

  it('lists only unwritten sent and failed rows as settled', async () => {
    const { repository, log, settle } = setup();
    repository.hold();
    log.record(transition('q', 'queued', 1));
    log.record(transition('s', 'sent', 1));
    log.record(transition('f', 'failed', 3));
    expect(log.settledIds().sort()).toEqual(['f', 's']);
    repository.release();
    await settle();
    expect(log.settledIds()).toEqual([]);
    expect(log.pending('q')).toBeUndefined();
  });

  it('retries a failed write when its timer fires, with a growing delay, until it is written', async () => {
    const { repository, timers, log, events, settle } = setup();
    repository.failIds.add('a');
    const sent = transition('a', 'sent', 1);
    log.record(sent);
    await settle();
    expect(repository.calls).toHaveLength(1);
    expect(timers.delays()).toEqual([100]);
    expect(log.pending('a')).toBe(sent);
    expect(log.settledIds()).toEqual(['a']);
    expect(events('outbox.transition.error')).toEqual([
      expect.objectContaining({ level: 'error', messageId: 'a', status: 'sent', attempt: 1, err: 'write failed: a' }),
    ]);

    timers.fireAll();
    await settle();
    expect(repository.calls).toHaveLength(2);
    expect(timers.delays()).toEqual([200]);
    expect(events('outbox.transition.error').map((line) => line.attempt)).toEqual([1, 2]);

    repository.failIds.clear();
    timers.fireAll();
    await settle();
    expect(repository.calls).toEqual([[sent], [sent], [sent]]);
    expect(log.pending('a')).toBeUndefined();
    expect(log.settledIds()).toEqual([]);
    expect(timers.pending.size).toBe(0);
    expect(events('outbox.transition.error')).toHaveLength(2);
  });

  it('skips the retry of a transition once a newer one of the same row was recorded', async () => {
    const { repository, timers, log, settle } = setup();
    repository.failIds.add('a');
    const requeued = transition('a', 'queued', 1);
    log.record(requeued);
    await settle();
    expect(timers.pending.size).toBe(1);
    const [olderRetry] = [...timers.pending.keys()];

    // The newer transition fails too: both rows' timers wait.
    const sent = transition('a', 'sent', 2);
    log.record(sent);
    await settle();
    expect(timers.pending.size).toBe(2);
    expect(log.pending('a')).toBe(sent);

    repository.failIds.clear();
    timers.fire(olderRetry as number);
    await settle();
    expect(repository.writesOf('a')).toEqual([requeued, sent]); // the older one is not written again

    timers.fireAll();
    await settle();
    expect(repository.writesOf('a')).toEqual([requeued, sent, sent]);
    expect(log.pending('a')).toBeUndefined();
  });

  it('does not write an older transition over a newer one that was written before its retry', async () => {
    const { repository, timers, log, settle } = setup();
    repository.failIds.add('a');
    const requeued = transition('a', 'queued', 1);
    log.record(requeued);
    await settle();
    repository.failIds.clear();
    const sent = transition('a', 'sent', 2);
    log.record(sent);
    await settle();
    expect(log.pending('a')).toBeUndefined();
    expect(timers.pending.size).toBe(1);

    timers.fireAll();
    await settle();
    expect(repository.writesOf('a')).toEqual([requeued, sent]);
    expect(log.pending('a')).toBeUndefined();
    expect(timers.pending.size).toBe(0);
  });

  it('flush resolves once what was recorded before it is written', async () => {
    const { repository, log } = setup();
    repository.hold();
    log.record(transition('a'));
    await tick();
    let flushed = false;
    const flushing = log.flush().then(() => {
      flushed = true;
    });
    await tick();
    expect(flushed).toBe(false);
    repository.release();
    await flushing;
    expect(log.pending('a')).toBeUndefined();
  });

  it('on close, stops the retry timers and writes the unwritten transitions once more', async () => {
    const { repository, timers, log, events, settle } = setup();
    repository.failIds.add('a');
    repository.failIds.add('b');
    log.record(transition('a', 'sent', 1));
    await settle();
    log.record(transition('b', 'failed', 2));
    await settle();
    expect(timers.pending.size).toBe(2);
    expect(repository.calls).toHaveLength(2);

    repository.failIds.clear();
    await log.close();
    expect(timers.pending.size).toBe(0);
    expect(repository.calls).toHaveLength(3);
    expect(repository.calls[2]).toEqual([transition('a', 'sent', 1), transition('b', 'failed', 2)]);
    expect(log.pending('a')).toBeUndefined();
    expect(log.pending('b')).toBeUndefined();
    await tick();
    expect(events('outbox.transition.lost')).toEqual([]);
  });

  it('on close, drops with an outbox.transition.lost line what still fails, and retries it no more', async () => {
    const { repository, timers, log, events, settle } = setup();
    repository.failIds.add('a');
    log.record(transition('a', 'sent', 1));
    await settle();
    expect(timers.pending.size).toBe(1);

    await log.close();
    await tick();
    expect(timers.pending.size).toBe(0);
    expect(repository.writesOf('a')).toHaveLength(2); // the first write, and the one at close
    expect(log.pending('a')).toBeUndefined();
    expect(log.settledIds()).toEqual([]);
    expect(events('outbox.transition.lost')).toEqual([
      expect.objectContaining({ level: 'error', messageId: 'a', status: 'sent', err: 'write failed: a' }),
    ]);
    expect(events('outbox.transition.error')).toHaveLength(1);

    await settle();
    expect(repository.calls).toHaveLength(2);
  });

  it('writes a transition whose write was running when close() began, and failed, once more', async () => {
    const { repository, timers, log, events } = setup();
    repository.hold();
    repository.failOnceIds.add('a'); // the database blips during this one write, and is back for close's own
    log.record(transition('a', 'sent', 1));
    await tick();
    const closing = log.close();
    repository.release();
    await closing;
    await tick();
    expect(timers.pending.size).toBe(0);
    expect(repository.writesOf('a')).toHaveLength(2);
    expect(events('outbox.transition.lost')).toEqual([]);
    expect(log.pending('a')).toBeUndefined();
  });

  it('at close, loses only the transition that cannot be written, not the ones batched with it', async () => {
    const { repository, log, events, settle } = setup();
    repository.failIds.add('a');
    repository.failIds.add('b');
    log.record(transition('a', 'sent', 1));
    log.record(transition('b', 'sent', 1));
    await settle();
    repository.failIds.delete('b'); // b can be written now; a never can
    await log.close();
    await tick();
    expect(events('outbox.transition.lost').map((line) => line.messageId)).toEqual(['a']);
    expect(log.pending('b')).toBeUndefined();
  });
});
