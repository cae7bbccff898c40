import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/__fixtures__/fake-clock.js';
import { createTestApp, createTestDataDir, removeDir, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { connectAgent, sendText } from './helpers/messaging.js';

async function until<T>(read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`condition not met in ${timeoutMs} ms: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('session lifecycle across restarts and disconnects', () => {
  let db: TestDatabase;
  let dataDir: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = await createTestDataDir();
  });
  afterAll(async () => {
    await db?.drop();
    await removeDir(dataDir);
  });

  /** Another user's new agent, given an id an earlier agent had. */
  const createFor = (t: TestApp, userId: string, agentId: string) =>
    t.app.inject({
      method: 'POST',
      url: '/sessions',
      headers: t.admin,
      payload: { userId, agentId, agentName: 'new', apikey: `${userId}-key-0123456789` },
    });
  const status = async (t: TestApp, agentId: string) =>
    (await t.app.inject({ method: 'GET', url: `/sessions/${agentId}`, headers: t.admin })).json().data;

  it('restores a connected session after a restart, and not a logged-out or never-scanned one', async () => {
    const first = await createTestApp({ database: db.database, dataDir });
    await connectAgent(first, 'keeps');
    await connectAgent(first, 'leaves');
    await first.app.inject({
      method: 'POST',
      url: '/sessions',
      headers: first.admin,
      payload: { userId: 'u1', agentId: 'never', agentName: 'never', apikey: 'k' },
    });
    const unlinked = await first.app.inject({
      method: 'POST',
      url: '/sandbox/agents/leaves/disconnect',
      headers: first.admin,
      payload: { loggedOut: true },
    });
    expect(unlinked.statusCode).toBe(200);
    expect(await status(first, 'leaves')).toMatchObject({
      status: 'disconnected',
      lastError: 'logged out from the phone',
      liveState: { isReady: false, sessionState: 'logged_out' },
    });
    await first.close();

    const second = await createTestApp({ database: db.database, dataDir });
    try {
      const kept = await until(
        () => status(second, 'keeps'),
        (s) => s.liveState.isReady,
      );
      expect(kept).toMatchObject({ status: 'connected', liveState: { me: '6281100000000@c.us' } });
      expect((await status(second, 'leaves')).liveState).toMatchObject({ isReady: false, hasClient: false });
      expect((await status(second, 'never')).liveState).toMatchObject({ isReady: false, hasClient: false });
      const metrics = await second.app.inject({ method: 'GET', url: '/metrics' });
      expect(metrics.body).toMatch(/^whatsapp_sessions_active 1$/m);
    } finally {
      await second.close();
    }
  });

  it('reconnects by itself after a network drop, with backoff', async () => {
    const clock = new FakeClock();
    // random() = 0.5 puts the first delay at 3/4 of baseMs.
    const reconnectBackoff = { baseMs: 1_000, maxMs: 8_000, random: () => 0.5 };
    const t = await createTestApp({ database: db.database, dataDir, overrides: { clock, reconnectBackoff } });
    try {
      await connectAgent(t, 'flaky');
      const dropped = await t.app.inject({
        method: 'POST',
        url: '/sandbox/agents/flaky/disconnect',
        headers: t.admin,
        payload: {},
      });
      expect(dropped.statusCode).toBe(200);
      const during = await status(t, 'flaky');
      expect(during.status).toBe('disconnected');
      expect(Date.parse(during.lastDisconnectedAt)).not.toBeNaN();
      expect(during.liveState.sessionState).toBe('reconnecting');
      expect(clock.pending()).toContain(750);
      await clock.advance(749);
      expect((await status(t, 'flaky')).liveState.sessionState).toBe('reconnecting');
      await clock.advance(1);
      const back = await until(
        () => status(t, 'flaky'),
        (s) => s.status === 'connected' && s.liveState.isReady,
      );
      expect(back.lastError).toBeNull();
      expect(t.logs.some((l) => l.event === 'session.reconnect_scheduled' && l.agentId === 'flaky')).toBe(true);
    } finally {
      await t.close();
    }
  });

  it('forgets the login of a session deleted while it waits to reconnect: the id given again starts with a QR code', async () => {
    const clock = new FakeClock();
    const reconnectBackoff = { baseMs: 60_000, maxMs: 60_000, random: () => 0.5 };
    const t = await createTestApp({ database: db.database, dataDir, overrides: { clock, reconnectBackoff } });
    try {
      const agent = await connectAgent(t, 'deleted-flaky');
      expect((await sendText(t, agent, { to: '6281234567890', message: 'from the first owner' })).statusCode).toBe(200);
      await t.app.inject({
        method: 'POST',
        url: '/sandbox/agents/deleted-flaky/disconnect',
        headers: t.admin,
        payload: {},
      });
      expect((await status(t, 'deleted-flaky')).liveState.sessionState).toBe('reconnecting');
      const deleted = await t.app.inject({ method: 'DELETE', url: '/sessions/deleted-flaky', headers: t.admin });
      expect(deleted.statusCode).toBe(200);
      expect(await t.container.sandbox?.hasStoredLogin('deleted-flaky')).toBe(false);
      // Another user's agent given the same id is not logged in to that WhatsApp account.
      expect((await createFor(t, 'someone-else', 'deleted-flaky')).statusCode).toBe(200);
      // Nor does it see what the first one sent.
      const log = await t.app.inject({ method: 'GET', url: '/sandbox/agents/deleted-flaky/sent', headers: t.admin });
      expect(log.json().data).toEqual([]);
      await clock.advance(60_000);
      expect((await status(t, 'deleted-flaky')).liveState).toMatchObject({ isReady: false });
      expect((await status(t, 'deleted-flaky')).status).not.toBe('connected');
    } finally {
      await t.close();
    }
  });

  it('never logs a new agent in with a login an earlier agent of its id left behind', async () => {
    const t = await createTestApp({ database: db.database, dataDir });
    try {
      await connectAgent(t, 'reused-id');
      // Its row goes without its login, as when the deletion could not reach the login store.
      await db.database.query(`DELETE FROM whatsapp_user WHERE agent_id = 'reused-id'`);
      await t.container.supervisor.stop('reused-id', { logout: false, forget: true });
      expect(await t.container.sandbox?.hasStoredLogin('reused-id')).toBe(true);
      expect((await createFor(t, 'another-user', 'reused-id')).statusCode).toBe(200);
      expect(await t.container.sandbox?.hasStoredLogin('reused-id')).toBe(false);
    } finally {
      await t.close();
    }
  });

  it('does not start sessions of an engine that is not enabled', async () => {
    // The sandbox is off here: the sandbox sessions stored earlier are neither restored nor restartable.
    const t = await createTestApp({ database: db.database, dataDir, env: { WA_ENGINE: 'baileys' } });
    try {
      expect(t.container.supervisor.isRunning('keeps')).toBe(false);
      const res = await t.app.inject({ method: 'POST', url: '/sessions/keeps/reconnect', headers: t.admin });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.message).toContain('sandbox is not enabled');
    } finally {
      await t.close();
    }
  });
});
