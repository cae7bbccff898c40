import { describe, expect, it } from 'vitest';
import { FakeClock } from '../__fixtures__/fake-clock.js';
import type { Database, Row } from '../db/client.js';
import { createLogger } from '../observability/logger.js';
import { RemoteOutcomes } from './remote-outcomes.js';
import { SendWaits } from './send-waits.js';

/** The two ends of NOTIFY in memory: what one member notifies, every listener hears (as PostgreSQL does). */
class FakeChannel {
  readonly notified: string[] = [];
  readonly outcomeReads: string[][] = [];
  rows = new Map<string, { status: 'sent' | 'failed'; waMessageId: string | null; error: string | null }>();
  private readonly handlers: Array<(payload: string) => void> = [];

  database(): Pick<Database, 'query' | 'listen'> {
    return {
      query: async (_sql: string, params?: unknown[]): Promise<Row[]> => {
        const payload = String(params?.[1]);
        this.notified.push(payload);
        for (const handler of this.handlers) handler(payload);
        return [];
      },
      listen: async (_channel, handler) => {
        this.handlers.push(handler);
        return async () => {
          this.handlers.splice(this.handlers.indexOf(handler), 1);
        };
      },
    };
  }

  repository() {
    return {
      outcomes: async (ids: readonly string[]) => {
        this.outcomeReads.push([...ids]);
        return ids.flatMap((id) => {
          const row = this.rows.get(id);
          return row ? [{ id, ...row }] : [];
        });
      },
    };
  }
}

function member(channel: FakeChannel, clock: FakeClock) {
  const waits = new SendWaits(clock);
  const remote = new RemoteOutcomes({
    database: channel.database(),
    repository: channel.repository(),
    waits,
    clock,
    logger: createLogger({ level: 'silent' }),
  });
  return { waits, remote };
}

describe('RemoteOutcomes', () => {
  it("answers a request waiting on another member from the owner's notice, without reading the table", async () => {
    const clock = new FakeClock();
    const channel = new FakeChannel();
    const receiver = member(channel, clock);
    const owner = member(channel, clock);
    await receiver.remote.start();
    await owner.remote.start();

    const answer = receiver.waits.wait('m-1', 5_000);
    receiver.remote.watch('m-1');
    owner.remote.tell('m-1', { status: 'sent', waMessageId: 'wa-1' });
    owner.remote.tell('m-other', { status: 'failed', error: 'nope' });

    expect(await answer).toEqual({ status: 'sent', waMessageId: 'wa-1' });
    // Both outcomes of the owner's tick went in one notice.
    expect(channel.notified).toHaveLength(1);
    expect(JSON.parse(channel.notified[0] ?? '[]')).toEqual([
      ['m-1', 'sent', 'wa-1'],
      ['m-other', 'failed', 'nope'],
    ]);
    await clock.advance(1_000);
    expect(channel.outcomeReads).toEqual([]); // nothing left to poll for
    await owner.remote.close();
    await receiver.remote.close();
  });

  it('falls back to reading the rows when a notice is lost, and stops once no request waits', async () => {
    const clock = new FakeClock();
    const channel = new FakeChannel();
    const receiver = member(channel, clock);
    await receiver.remote.start();

    const answer = receiver.waits.wait('m-2', 5_000);
    receiver.remote.watch('m-2');
    await clock.advance(250);
    expect(channel.outcomeReads).toEqual([['m-2']]);
    channel.rows.set('m-2', { status: 'failed', waMessageId: null, error: 'recipient refused' });
    await clock.advance(250);
    expect(await answer).toEqual({ status: 'failed', error: 'recipient refused' });

    // A request that gave up waiting (202) is not polled for.
    void receiver.waits.wait('m-3', 100);
    receiver.remote.watch('m-3');
    await clock.advance(1_000);
    expect(channel.outcomeReads.filter((ids) => ids.includes('m-3'))).toEqual([]);
    await receiver.remote.close();
  });

  it('splits a large tick of outcomes into notices under the payload limit', async () => {
    const clock = new FakeClock();
    const channel = new FakeChannel();
    const { remote } = member(channel, clock);
    for (let i = 0; i < 400; i++) {
      remote.tell(`00000000-0000-0000-0000-${String(i).padStart(12, '0')}`, { status: 'sent', waMessageId: `wa-${i}` });
    }
    await remote.close();
    expect(channel.notified.length).toBeGreaterThan(1);
    for (const payload of channel.notified) expect(payload.length).toBeLessThan(8_000);
    expect(channel.notified.flatMap((payload) => JSON.parse(payload) as unknown[])).toHaveLength(400);
  });
});
