// Agent keys follow the shared api_keys table: deactivated, deleted or superseded keys stop working within
// KEY_SYNC_INTERVAL_MS (the clock moves it here), with no database query per request, also across a restart.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FakeClock } from '../src/__fixtures__/fake-clock.js';
import { createTestApp, createTestDataDir, removeDir, type TestApp } from './helpers/app.js';
import { createTestDatabase, insertApiKey, type TestDatabase } from './helpers/database.js';

const SYNC_MS = 5_000;

describe('agent key revocation', () => {
  let db: TestDatabase;
  let t: TestApp;
  let dataDir: string;
  const clock = new FakeClock();

  const build = () =>
    createTestApp({
      database: db.database,
      dataDir,
      env: { KEY_SYNC_INTERVAL_MS: String(SYNC_MS) },
      overrides: { clock },
    });

  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = await createTestDataDir();
    t = await build();
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
    await removeDir(dataDir);
  });

  const create = async (agentId: string, userId: string, apikey?: string) => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/sessions',
      headers: t.admin,
      payload: { userId, agentId, agentName: agentId, ...(apikey ? { apikey } : {}) },
    });
    expect(res.statusCode, res.body).toBe(200);
  };

  /** The agent surface answers 409 (not connected) to a valid key and 401 to any other. */
  const statusWith = async (agentId: string, key: string) =>
    (
      await t.app.inject({
        method: 'POST',
        url: `/agents/${agentId}/messages`,
        headers: { authorization: `Bearer ${key}` },
        payload: { to: '6281234567890', message: 'hi' },
      })
    ).statusCode;
  const opens = async (agentId: string, key: string) => (await statusWith(agentId, key)) === 409;

  /** Moves the clock to the next sync and waits for its pass, which PostgreSQL answers over a socket. */
  const nextSync = async (times = 1) => {
    for (let i = 0; i < times; i++) {
      const query = vi.spyOn(db.database, 'query');
      try {
        await clock.advance(SYNC_MS);
        const passes = query.mock.calls.flatMap(([sql], n) =>
          sql.includes('DISTINCT ON') ? [query.mock.results[n]?.value] : [],
        );
        expect(passes).toHaveLength(1);
        await Promise.allSettled(passes);
      } finally {
        query.mockRestore();
      }
      // The keys change in the turn that follows the read.
      await new Promise((resolve) => setImmediate(resolve));
    }
  };

  const storedKey = async (agentId: string) =>
    (await db.database.query('SELECT api_key, api_key_source FROM whatsapp_user WHERE agent_id = $1', [agentId]))[0];

  it('stops a key deactivated in api_keys within KEY_SYNC_INTERVAL_MS, without a query per request', async () => {
    await insertApiKey(db.database, 'u-deact', 'deact-key-0123456789');
    await create('deact-bot', 'u-deact');
    expect(await opens('deact-bot', 'deact-key-0123456789')).toBe(true);

    await db.database.query(`UPDATE api_keys SET is_active = false WHERE user_id = 'u-deact'`);
    // Until the next sync the cached key still works, and checking it asks nothing of the database.
    const query = vi.spyOn(t.container.database, 'query');
    const select = vi.spyOn(t.container.database.db, 'select');
    for (let i = 0; i < 20; i++) expect(await opens('deact-bot', 'deact-key-0123456789')).toBe(true);
    const keyQueries = query.mock.calls.filter(([sql]) => /api_keys|api_key\b/.test(sql));
    expect(keyQueries).toEqual([]);
    expect(select).not.toHaveBeenCalled();
    query.mockRestore();
    select.mockRestore();

    await nextSync();
    expect(await statusWith('deact-bot', 'deact-key-0123456789')).toBe(401);
    // The session endpoints follow the same keys.
    const own = await t.app.inject({
      method: 'GET',
      url: '/sessions/deact-bot',
      headers: { authorization: 'Bearer deact-key-0123456789' },
    });
    expect(own.statusCode).toBe(401);
  });

  it('stops a key deleted from api_keys', async () => {
    await insertApiKey(db.database, 'u-del', 'deleted-key-0123456789');
    await create('del-key-bot', 'u-del');
    expect(await opens('del-key-bot', 'deleted-key-0123456789')).toBe(true);
    await db.database.query(`DELETE FROM api_keys WHERE user_id = 'u-del'`);
    await nextSync();
    expect(await opens('del-key-bot', 'deleted-key-0123456789')).toBe(false);
  });

  it('replaces a key superseded by a newer active one, and saves the new one on the row', async () => {
    await insertApiKey(db.database, 'u-super', 'first-key-0123456789', true, new Date('2026-01-01T10:00:00Z'));
    await create('super-bot', 'u-super');
    await insertApiKey(db.database, 'u-super', 'second-key-0123456789', true, new Date('2026-01-01T11:00:00Z'));
    expect(await opens('super-bot', 'first-key-0123456789')).toBe(true);
    await nextSync();
    expect(await opens('super-bot', 'first-key-0123456789')).toBe(false);
    expect(await opens('super-bot', 'second-key-0123456789')).toBe(true);
    // The row follows the keys in memory, in the writes that end the pass (after the read this test waits for).
    await vi.waitFor(
      async () =>
        expect(await storedKey('super-bot')).toEqual({
          api_key: 'second-key-0123456789',
          api_key_source: 'api_keys',
        }),
      { timeout: 2_000, interval: 10 },
    );
  });

  it('keeps a key given by the admin at creation until api_keys has one for the user', async () => {
    await create('admin-key-bot', 'u-admin-key', 'given-by-admin-0123456789');
    await nextSync(3);
    expect(await opens('admin-key-bot', 'given-by-admin-0123456789')).toBe(true);
    expect(await storedKey('admin-key-bot')).toEqual({
      api_key: 'given-by-admin-0123456789',
      api_key_source: 'admin',
    });
    await insertApiKey(db.database, 'u-admin-key', 'from-api-keys-0123456789');
    await nextSync();
    expect(await opens('admin-key-bot', 'given-by-admin-0123456789')).toBe(false);
    expect(await opens('admin-key-bot', 'from-api-keys-0123456789')).toBe(true);
  });

  it("adopts what a look-up finds whatever key set it off: others' wrong keys cannot delay a rotation", async () => {
    await create('race-bot', 'u-race', 'race-old-key-0123456789');
    await insertApiKey(db.database, 'u-race', 'race-new-key-0123456789');
    // A stranger's wrong key spends the agent's look-up for this interval...
    expect(await statusWith('race-bot', 'a-wrong-key')).toBe(401);
    // ...and the owner's new key, right after (no sync in between), works all the same.
    expect(await opens('race-bot', 'race-new-key-0123456789')).toBe(true);
  });

  it('picks the same latest key at creation, in look-ups and in the sync, when two are equally recent', async () => {
    const at = new Date('2026-01-01T09:00:00Z');
    await insertApiKey(db.database, 'u-tie', 'aaa-tied-key-0123456789', true, at);
    await insertApiKey(db.database, 'u-tie', 'zzz-tied-key-0123456789', true, at);
    await create('tie-bot', 'u-tie');
    for (let i = 0; i < 3; i++) {
      expect(await statusWith('tie-bot', `wrong-${i}`)).toBe(401); // a look-up
      await nextSync();
      expect(await opens('tie-bot', 'zzz-tied-key-0123456789')).toBe(true);
      expect(await opens('tie-bot', 'aaa-tied-key-0123456789')).toBe(false);
    }
  });

  it('does not bring a revoked key back at boot, before any sync has run', async () => {
    await insertApiKey(db.database, 'u-boot', 'boot-key-0123456789');
    await create('boot-bot', 'u-boot');
    expect(await opens('boot-bot', 'boot-key-0123456789')).toBe(true);
    await db.database.query(`UPDATE api_keys SET is_active = false WHERE user_id = 'u-boot'`);
    await t.close();
    t = await build();
    expect(await opens('boot-bot', 'boot-key-0123456789')).toBe(false);
  });

  it('keeps the last known keys, and warns, while the database cannot be read', async () => {
    await insertApiKey(db.database, 'u-outage', 'outage-key-0123456789');
    await create('outage-bot', 'u-outage');
    const query = vi.spyOn(t.container.database, 'query').mockRejectedValue(new Error('connect ECONNREFUSED'));
    try {
      await clock.advance(SYNC_MS * 2);
      expect(await opens('outage-bot', 'outage-key-0123456789')).toBe(true);
    } finally {
      query.mockRestore();
    }
    expect(t.logs.some((l) => l.event === 'auth.key_sync.failed' && l.level === 'warn')).toBe(true);
  });

  it('stops the sync when the service closes', async () => {
    await t.close();
    const query = vi.spyOn(db.database, 'query');
    await clock.advance(SYNC_MS * 3);
    expect(query.mock.calls.filter(([sql]) => sql.includes('api_keys'))).toEqual([]);
    query.mockRestore();
    t = await build();
  });
});
