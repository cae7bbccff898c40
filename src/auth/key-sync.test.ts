import { Writable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { FakeClock } from '../__fixtures__/fake-clock.js';
import { createLogger } from '../observability/logger.js';
import { AgentKeyStore } from './agent-keys.js';
import type { AgentKeyRow, AgentKeysRepository } from './agent-keys.repository.js';
import { createKeySync } from './key-sync.js';

const row = (agentId: string, fields: Partial<AgentKeyRow> = {}): AgentKeyRow => ({
  agentId,
  userId: `user-${agentId}`,
  apiKey: `key-${agentId}`,
  source: 'admin',
  latest: null,
  currentInApiKeys: null,
  ...fields,
});

function setup(rows: AgentKeyRow[]) {
  const clock = new FakeClock();
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk: Buffer, _encoding, callback) {
        for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line));
        callback();
      },
    }),
  });
  const state = { rows, fail: false };
  const repo = {
    all: vi.fn(async () => {
      if (state.fail) throw new Error('connect ECONNREFUSED');
      return state.rows.map((r) => ({ ...r }));
    }),
    save: vi.fn<AgentKeysRepository['save']>(async () => {}),
    saveSource: vi.fn<AgentKeysRepository['saveSource']>(async () => {}),
  };
  const store = new AgentKeyStore({
    // The lazy look-up reads the same api_keys as the sync.
    apiKeys: { latestActiveKey: async (userId) => state.rows.find((r) => r.userId === userId)?.latest ?? null },
    saveApiKey: async () => {},
    clock,
  });
  const sut = createKeySync({ store, repo, clock, logger, intervalMs: 5_000 });
  const opens = async (agentId: string, key: string) => (await store.check(agentId, key)) === 'ok';
  return { sut, store, repo, clock, logs, state, opens };
}

describe('key sync', () => {
  it('loads every agent at start, then follows api_keys every interval', async () => {
    const { sut, state, clock, opens, repo } = setup([row('a'), row('b', { source: 'api_keys', latest: 'key-b' })]);
    await sut.start();
    expect(await opens('a', 'key-a')).toBe(true);
    expect(await opens('b', 'key-b')).toBe(true);

    // b's key is deactivated and a gets a key in api_keys: nothing changes until the next pass...
    state.rows = [row('a', { latest: 'new-a' }), row('b', { source: 'api_keys', latest: null })];
    await clock.advance(4_999);
    expect(await opens('b', 'key-b')).toBe(true);
    // ...which revokes b, and moves a to its api_keys key (saved only while the row still holds the old one).
    await clock.advance(1);
    expect(await opens('b', 'key-b')).toBe(false);
    expect(await opens('a', 'key-a')).toBe(false);
    expect(await opens('a', 'new-a')).toBe(true);
    expect(repo.save).toHaveBeenCalledWith('a', 'new-a', 'api_keys', 'key-a');
    expect(repo.all).toHaveBeenCalledTimes(2);

    // b's key is active again: it works again.
    state.rows = [
      row('a', { apiKey: 'new-a', source: 'api_keys', latest: 'new-a' }),
      row('b', {
        source: 'api_keys',
        latest: 'key-b',
      }),
    ];
    await clock.advance(5_000);
    expect(await opens('b', 'key-b')).toBe(true);
    await sut.stop();
  });

  it('derives and saves the source of rows from before migration 0003', async () => {
    const { sut, repo, opens } = setup([
      row('old-shared', { source: null, currentInApiKeys: true }),
      row('old-admin', { source: null, currentInApiKeys: false }),
    ]);
    await sut.start();
    expect(await opens('old-shared', 'key-old-shared')).toBe(false);
    expect(await opens('old-admin', 'key-old-admin')).toBe(true);
    expect(repo.saveSource).toHaveBeenCalledWith('old-shared', 'api_keys', 'key-old-shared');
    expect(repo.saveSource).toHaveBeenCalledWith('old-admin', 'admin', 'key-old-admin');
    await sut.stop();
  });

  it('keeps the last known keys when a pass fails, and warns once', async () => {
    const { sut, state, clock, opens, logs } = setup([row('a')]);
    await sut.start();
    state.fail = true;
    await clock.advance(15_000);
    expect(await opens('a', 'key-a')).toBe(true);
    const warnings = logs.filter((l) => l.event === 'auth.key_sync.failed' && l.level === 'warn');
    expect(warnings).toHaveLength(1);
    state.fail = false;
    await clock.advance(5_000);
    expect(logs.some((l) => l.event === 'auth.key_sync.recovered')).toBe(true);
    await sut.stop();
  });

  it('lets a change made during a pass win, and drops agents whose row is gone', async () => {
    const { sut, store, state, repo, clock, opens } = setup([row('a'), row('gone')]);
    await sut.start();
    // While the next pass reads the database, the agent is created again with a new key.
    repo.all.mockImplementationOnce(async () => {
      store.set('a', 'user-a', 'recreated-key', 'admin');
      return state.rows.filter((r) => r.agentId === 'a');
    });
    await clock.advance(5_000);
    expect(await opens('a', 'recreated-key')).toBe(true);
    expect(store.has('gone')).toBe(false);
    await sut.stop();
  });

  it('stops with the container: no pass after stop', async () => {
    const { sut, repo, clock } = setup([row('a')]);
    await sut.start();
    await sut.stop();
    await clock.advance(60_000);
    expect(repo.all).toHaveBeenCalledTimes(1);
    expect(clock.pending()).toEqual([]);
  });
});
