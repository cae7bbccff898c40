import { describe, expect, it, vi } from 'vitest';
import { Gate, transition } from './__fixtures__/outbox-fakes.js';
import type { NewOutboxMessage, OutboxTransition } from './outbox.repository.js';
import { OutboxWriter } from './outbox.writer.js';

interface WriteCall {
  inserts: string[];
  transitions: OutboxTransition[];
}

/** A repository that records each write, can hold writes until released, and fails writes that carry given ids. */
class FakeRepository {
  readonly calls: WriteCall[] = [];
  readonly events: string[] = [];
  /** A write carrying one of these ids (insert or transition) fails. */
  readonly failIds = new Set<string>();
  /** Keyed inserts left out of the returned set, as when their idempotency key was already used. */
  readonly duplicates = new Set<string>();
  /** Every write fails. */
  down = false;
  running = 0;
  maxRunning = 0;
  readonly gate = new Gate();

  hold(): void {
    this.gate.hold();
  }

  release(): void {
    this.gate.release();
  }

  async write(inserts: readonly NewOutboxMessage[], transitions: readonly OutboxTransition[]): Promise<Set<string>> {
    // A row inserted with an outcome shows as id:status.
    const insertIds = inserts.map((m) => (m.outcome ? `${m.id}:${m.outcome.status}` : m.id));
    this.calls.push({ inserts: insertIds, transitions: [...transitions] });
    const call = this.calls.length;
    this.running += 1;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    this.events.push(`start:${call}`);
    try {
      await this.gate.pass();
      if (this.down) throw new Error(`database down (call ${call})`);
      const ids = [...inserts.map((m) => m.id), ...transitions.map((t) => t.id)];
      const bad = ids.find((id) => this.failIds.has(id));
      if (bad !== undefined) throw new Error(`write failed: ${bad} (call ${call})`);
      // As the repository does: only the inserted rows that carry an idempotency key come back.
      return new Set(inserts.filter((m) => m.idempotencyKey !== null && !this.duplicates.has(m.id)).map((m) => m.id));
    } finally {
      this.running -= 1;
      this.events.push(`end:${call}`);
    }
  }
}

const message = (id: string): NewOutboxMessage => ({
  id,
  agentId: 'bot',
  kind: 'text',
  toJid: '6281234567890@c.us',
  payload: { text: `body ${id}` },
  media: null,
  idempotencyKey: null,
  traceId: null,
});

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

function setup() {
  const repository = new FakeRepository();
  const onInserted = vi.fn<(message: NewOutboxMessage) => void>();
  const writer = new OutboxWriter({ repository, onInserted });
  return { repository, onInserted, writer };
}

describe('OutboxWriter', () => {
  it('writes the inserts and transitions of one turn in one call, and tells each insert it was written', async () => {
    const { repository, writer } = setup();
    const results = await Promise.all([
      writer.insert(message('a')),
      writer.transition(transition('x')),
      writer.insert(message('b')),
      writer.transition(transition('y', 'failed')),
    ]);
    expect(results).toEqual([true, undefined, true, undefined]);
    expect(repository.calls).toEqual([
      { inserts: ['a', 'b'], transitions: [transition('x'), transition('y', 'failed')] },
    ]);
  });

  it('holds what arrives while a write runs and writes it as the next single call, after it', async () => {
    const { repository, writer } = setup();
    repository.hold();
    const order: string[] = [];
    const first = writer.insert(message('a')).then((written) => order.push(`a:${written}`));
    await tick();
    expect(repository.calls).toHaveLength(1);

    const later = [
      writer.insert(message('b')).then((written) => order.push(`b:${written}`)),
      writer.transition(transition('x')).then(() => order.push('x')),
      writer.insert(message('c')).then((written) => order.push(`c:${written}`)),
    ];
    await tick();
    await tick();
    expect(repository.calls).toHaveLength(1); // the first write still runs: the others wait
    expect(order).toEqual([]);

    repository.release();
    await Promise.all([first, ...later]);
    expect(repository.calls).toEqual([
      { inserts: ['a'], transitions: [] },
      { inserts: ['b', 'c'], transitions: [transition('x')] },
    ]);
    expect(repository.events).toEqual(['start:1', 'end:1', 'start:2', 'end:2']);
    expect(repository.maxRunning).toBe(1);
    expect(order).toEqual(['a:true', 'b:true', 'x', 'c:true']);
  });

  it('writes only the latest transition of each row in a batch', async () => {
    const { repository, writer } = setup();
    const settled = await Promise.allSettled([
      writer.transition(transition('a', 'queued', 1)),
      writer.transition(transition('b', 'sent', 1)),
      writer.transition(transition('a', 'sent', 2)),
    ]);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    expect(repository.calls).toHaveLength(1);
    const written = repository.calls[0]?.transitions ?? [];
    expect(written).toHaveLength(2);
    expect(written).toContainEqual(transition('a', 'sent', 2));
    expect(written).toContainEqual(transition('b', 'sent', 1));
    expect(written).not.toContainEqual(transition('a', 'queued', 1));
  });

  it('calls onInserted at commit, before the insert resolves; a keyed row left out resolves false without it', async () => {
    const { repository, writer, onInserted } = setup();
    repository.duplicates.add('b');
    const order: string[] = [];
    onInserted.mockImplementation((m) => order.push(`inserted:${m.id}`));
    const keyed = (id: string) => ({ ...message(id), idempotencyKey: `key-${id}` });
    const a = writer.insert(keyed('a')).then((written) => order.push(`resolved:a:${written}`));
    const b = writer.insert(keyed('b')).then((written) => order.push(`resolved:b:${written}`));
    const c = writer.insert(message('c')).then((written) => order.push(`resolved:c:${written}`));
    await Promise.all([a, b, c]);
    expect(order).toEqual(['inserted:a', 'inserted:c', 'resolved:a:true', 'resolved:b:false', 'resolved:c:true']);
    expect(onInserted).toHaveBeenCalledTimes(2);
    expect(onInserted).toHaveBeenCalledWith(keyed('a'));
  });

  it('when the shared write fails, writes each row on its own, so only the bad one fails', async () => {
    const { repository, writer, onInserted } = setup();
    repository.failIds.add('bad');
    const [good, bad, x, y, barrier] = await Promise.allSettled([
      writer.insert(message('good')),
      writer.insert(message('bad')),
      writer.transition(transition('x')),
      writer.transition(transition('y', 'failed')),
      writer.barrier(),
    ]);
    expect(good).toEqual({ status: 'fulfilled', value: true });
    expect(bad).toEqual({ status: 'rejected', reason: new Error('write failed: bad (call 5)') });
    expect(x).toEqual({ status: 'fulfilled', value: undefined });
    expect(y).toEqual({ status: 'fulfilled', value: undefined });
    expect(barrier).toEqual({ status: 'fulfilled', value: undefined });
    expect(repository.calls).toEqual([
      { inserts: ['good', 'bad'], transitions: [transition('x'), transition('y', 'failed')] },
      { inserts: [], transitions: [transition('x')] },
      { inserts: [], transitions: [transition('y', 'failed')] },
      { inserts: ['good'], transitions: [] },
      { inserts: ['bad'], transitions: [] },
    ]);
    expect(repository.maxRunning).toBe(1);
    expect(onInserted).toHaveBeenCalledTimes(1);
    expect(onInserted).toHaveBeenCalledWith(message('good'));
  });

  it('rejects only the caller of a transition that cannot be written, and still writes the others', async () => {
    const { repository, writer } = setup();
    repository.failIds.add('y');
    const [good, x, y] = await Promise.allSettled([
      writer.insert(message('good')),
      writer.transition(transition('x')),
      writer.transition(transition('y')),
    ]);
    expect(good).toEqual({ status: 'fulfilled', value: true });
    expect(x).toEqual({ status: 'fulfilled', value: undefined });
    expect(y).toEqual({ status: 'rejected', reason: new Error('write failed: y (call 3)') });
    expect(repository.calls.slice(1)).toEqual([
      { inserts: [], transitions: [transition('x')] },
      { inserts: [], transitions: [transition('y')] },
      { inserts: ['good'], transitions: [] },
    ]);
  });

  it('rejects a lone insert with its error and does not write it twice', async () => {
    const { repository, writer, onInserted } = setup();
    repository.failIds.add('a');
    await expect(writer.insert(message('a'))).rejects.toThrow('write failed: a (call 1)');
    expect(repository.calls).toHaveLength(1);
    expect(onInserted).not.toHaveBeenCalled();
  });

  it('resolves barrier only once what was handed in before it is written', async () => {
    const { repository, writer } = setup();
    repository.hold();
    const order: string[] = [];
    const inserted = writer.insert(message('a')).then(() => order.push('insert'));
    const transitioned = writer.transition(transition('x')).then(() => order.push('transition'));
    await tick();
    const barrier = writer.barrier().then(() => order.push('barrier'));
    await tick();
    await tick();
    expect(order).toEqual([]);
    repository.release();
    await barrier;
    await Promise.all([inserted, transitioned]);
    expect(order).toEqual(['insert', 'transition', 'barrier']);
    expect(repository.calls[0]).toEqual({ inserts: ['a'], transitions: [transition('x')] });
  });

  it('resolves barrier, without rejecting, when the writes before it fail', async () => {
    const { repository, writer } = setup();
    repository.down = true;
    // A batch of one insert and the barrier: the failed write is not split.
    const [lone, loneBarrier] = await Promise.allSettled([writer.insert(message('a')), writer.barrier()]);
    expect(lone.status).toBe('rejected');
    expect(loneBarrier).toEqual({ status: 'fulfilled', value: undefined });

    // A batch that is split after the shared write fails, and every split write fails too.
    const [insert, moved, barrier] = await Promise.allSettled([
      writer.insert(message('b')),
      writer.transition(transition('x')),
      writer.barrier(),
    ]);
    expect(insert.status).toBe('rejected');
    expect(moved.status).toBe('rejected');
    expect(barrier).toEqual({ status: 'fulfilled', value: undefined });

    // A barrier alone, while the database is down.
    await expect(writer.barrier()).resolves.toBeUndefined();
  });

  it('inserts a row whose send ended before its batch was written in that state: one write, no update', async () => {
    const { repository, writer } = setup();
    repository.hold();
    const busy = writer.insert(message('a'));
    await tick(); // a's batch is being written; what follows waits for the next one
    const inserted = writer.insert(message('b'));
    expect(writer.fold(transition('b', 'queued'))).toBe(true);
    expect(writer.fold(transition('b'))).toBe(true); // the latest outcome is the one written
    expect(writer.fold(transition('a'))).toBe(false); // a's batch is under way: a's outcome needs a write of its own
    const earlier = writer.transition(transition('a'));
    repository.release();
    await Promise.all([busy, inserted, earlier]);
    expect(repository.calls).toEqual([
      { inserts: ['a'], transitions: [] },
      { inserts: ['b:sent'], transitions: [transition('a')] },
    ]);
  });

  it('fails the outcome folded into an insert with the insert, and writes the rest of the batch', async () => {
    const { repository, writer } = setup();
    repository.failIds.add('bad');
    const insert = writer.insert(message('bad'));
    expect(writer.fold(transition('bad'))).toBe(true);
    const [failed, other] = await Promise.allSettled([insert, writer.insert(message('good'))]);
    expect(failed.status).toBe('rejected');
    expect(other).toEqual({ status: 'fulfilled', value: true });
    // The shared write, then each row on its own: the folded outcome only ever went with its row.
    expect(repository.calls).toEqual([
      { inserts: ['bad:sent', 'good'], transitions: [] },
      { inserts: ['bad:sent'], transitions: [] },
      { inserts: ['good'], transitions: [] },
    ]);
  });

  it('folds nothing once the row is written: an outcome after that is a transition of its own', async () => {
    const { repository, writer } = setup();
    await writer.insert(message('a'));
    expect(writer.fold(transition('a'))).toBe(false);
    await writer.transition(transition('a'));
    expect(repository.calls).toEqual([
      { inserts: ['a'], transitions: [] },
      { inserts: [], transitions: [transition('a')] },
    ]);
  });

  it('does not call the database for a batch of barriers only', async () => {
    const { repository, writer } = setup();
    await writer.barrier();
    expect(repository.calls).toEqual([]);
  });
});
