import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/__fixtures__/fake-clock.js';
import { createTestApp, type TestApp, useTestApp } from './helpers/app.js';
import { createTestDatabase, insertApiKey, type TestDatabase } from './helpers/database.js';
import { createFakeEngine } from './helpers/fake-engine.js';
import { until } from './helpers/messaging.js';

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

describe('/sessions', () => {
  const f = useTestApp();

  const create = (body: Record<string, unknown>, headers: Record<string, string> = f.t.admin, query = '') =>
    f.t.app.inject({ method: 'POST', url: `/sessions${query}`, headers, payload: body });

  const scan = (agentId: string, phone?: string) =>
    f.t.app.inject({
      method: 'POST',
      url: `/sandbox/agents/${agentId}/scan`,
      headers: f.t.admin,
      payload: phone ? { phone } : {},
    });

  it('replays the seed: create, status, QR, delete (with the admin key)', async () => {
    const created = await create({
      userId: 'ff2c9e4b-94fd-4120-9d95-cb4d9bac3a4c',
      agentId: 'support-bot',
      agentName: 'Support Bot',
      apikey: 'api-key',
    });
    expect(created.statusCode).toBe(200);
    const body = created.json();
    expect(body.traceId).toEqual(expect.any(String));
    expect(body.data).toMatchObject({
      agentId: 'support-bot',
      agentName: 'Support Bot',
      userId: 'ff2c9e4b-94fd-4120-9d95-cb4d9bac3a4c',
      engine: 'sandbox',
      status: 'awaiting_qr',
      endpointUrlRun: 'http://127.0.0.1:9/agents/support-bot/execute',
      liveState: { isReady: false, hasClient: true },
    });
    expect(JSON.stringify(body)).not.toContain('api-key');

    const qr = await f.t.app.inject({ method: 'POST', url: '/sessions/support-bot/qr', headers: f.t.admin });
    expect(qr.statusCode).toBe(200);
    const qrData = qr.json().data;
    expect(qrData.agentId).toBe('support-bot');
    expect(qrData.qr.contentType).toBe('image/png');
    expect(Buffer.from(qrData.qr.base64, 'base64').subarray(0, 8)).toEqual(PNG_MAGIC);
    expect(Date.parse(qrData.qrUpdatedAt)).not.toBeNaN();

    const status = await f.t.app.inject({ method: 'GET', url: '/sessions/support-bot', headers: f.t.admin });
    expect(status.json().data.liveState.qr).toEqual({ contentType: 'image/png', base64: qrData.qr.base64 });
    expect(status.json().data.liveState.sessionState).toBe('qr');

    const png = await f.t.app.inject({ method: 'GET', url: '/sessions/support-bot/qr.png', headers: f.t.admin });
    expect(png.statusCode).toBe(200);
    expect(png.headers['content-type']).toBe('image/png');
    expect(png.rawPayload.subarray(0, 8)).toEqual(PNG_MAGIC);

    const deleted = await f.t.app.inject({ method: 'DELETE', url: '/sessions/support-bot', headers: f.t.admin });
    expect(deleted.json().data).toEqual({ deleted: true });
    const again = await f.t.app.inject({ method: 'DELETE', url: '/sessions/support-bot', headers: f.t.admin });
    expect(again.statusCode).toBe(200);
    expect(again.json().data).toEqual({ deleted: false, alreadyRemoved: true });
    const gone = await f.t.app.inject({ method: 'GET', url: '/sessions/support-bot', headers: f.t.admin });
    expect(gone.statusCode).toBe(404);
    expect(gone.json().error.code).toBe('SESSION_NOT_FOUND');
  });

  it('connects when the phone scans, records it, and refuses a QR code afterwards', async () => {
    await create({ userId: 'u-scan', agentId: 'scan-bot', agentName: 'Scan', apikey: 'k-scan' });
    await f.t.app.inject({ method: 'POST', url: '/sessions/scan-bot/qr', headers: f.t.admin });
    const scanned = await scan('scan-bot', '+62 811-2222-3333');
    expect(scanned.statusCode).toBe(200);
    const status = (await f.t.app.inject({ method: 'GET', url: '/sessions/scan-bot', headers: f.t.admin })).json().data;
    expect(status.status).toBe('connected');
    expect(Date.parse(status.lastConnectedAt)).not.toBeNaN();
    expect(status.liveState).toMatchObject({
      isReady: true,
      sessionState: 'connected',
      me: '6281122223333@c.us',
      qr: null,
      lastError: null,
    });
    const qr = await f.t.app.inject({ method: 'POST', url: '/sessions/scan-bot/qr', headers: f.t.admin });
    expect(qr.statusCode).toBe(409);
    expect(qr.json().error.code).toBe('SESSION_ALREADY_CONNECTED');

    // POST /sessions on a connected agent leaves it as it is.
    const recreated = await create({ userId: 'u-scan', agentId: 'scan-bot', agentName: 'Scan 2', apikey: 'k-scan' });
    expect(recreated.json().data).toMatchObject({ agentName: 'Scan 2', liveState: { isReady: true } });
  });

  it('takes the key from api_keys, falls back to apikey, and refuses a request with neither', async () => {
    await insertApiKey(f.db.database, 'u-keys', 'old-token', true, new Date('2026-01-01T10:00:00Z'));
    await insertApiKey(f.db.database, 'u-keys', 'new-token', true, new Date('2026-01-01T11:00:00Z'));
    await insertApiKey(f.db.database, 'u-keys', 'inactive-token', false, new Date('2026-01-01T12:00:00Z'));
    await create({ userId: 'u-keys', agentId: 'keys-bot', agentName: 'Keys', apikey: 'ignored' });
    const own = await f.t.app.inject({
      method: 'GET',
      url: '/sessions/keys-bot',
      headers: { authorization: 'Bearer new-token' },
    });
    expect(own.statusCode).toBe(200);
    const ignored = await f.t.app.inject({
      method: 'GET',
      url: '/sessions/keys-bot',
      headers: { authorization: 'Bearer ignored' },
    });
    expect(ignored.statusCode).toBe(401);

    const neither = await create({ userId: 'u-nokey', agentId: 'nokey-bot', agentName: 'No key' });
    expect(neither.statusCode).toBe(400);
    expect(neither.json().error.code).toBe('INVALID_PAYLOAD');
    expect(neither.json().error.message).toMatch(/apikey/);
  });

  it('keeps an endpoint_url_run that is already set', async () => {
    await create({ userId: 'u-ep', agentId: 'ep-bot', agentName: 'Ep', apikey: 'k-ep' });
    await f.db.database.query(
      `UPDATE whatsapp_user SET endpoint_url_run = 'http://ai.example/custom' WHERE agent_id = 'ep-bot'`,
    );
    const again = await create({ userId: 'u-ep', agentId: 'ep-bot', agentName: 'Ep', apikey: 'k-ep' });
    expect(again.json().data.endpointUrlRun).toBe('http://ai.example/custom');
  });

  it('refuses an agentId held by another user', async () => {
    await create({ userId: 'owner', agentId: 'owned-bot', agentName: 'Owned', apikey: 'k-owned' });
    const res = await create({ userId: 'intruder', agentId: 'owned-bot', agentName: 'Mine', apikey: 'k2' });
    expect(res.statusCode).toBe(409);
    expect(res.json().error.code).toBe('AGENT_OWNED_BY_OTHER_USER');
  });

  it('accepts a numeric userId', async () => {
    const res = await create({ userId: 42, agentId: 'numeric-user', agentName: 'N', apikey: 'k-num' });
    expect(res.statusCode).toBe(200);
    expect(res.json().data.userId).toBe('42');
  });

  it.each([
    ['../x', '..%2Fx'],
    ['a/b', 'a%2Fb'],
    ['65 characters', 'a'.repeat(65)],
    ['non-ASCII', encodeURIComponent('bót')],
    ['a space', 'a%20b'],
  ])('refuses the agentId %s with 400 INVALID_AGENT_ID', async (_name, encoded) => {
    const res = await f.t.app.inject({ method: 'GET', url: `/sessions/${encoded}`, headers: f.t.admin });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('INVALID_AGENT_ID');
    const created = await create({ userId: 'u', agentId: decodeURIComponent(encoded), agentName: 'x', apikey: 'k' });
    expect(created.json().error.code).toBe('INVALID_AGENT_ID');
  });

  it('refuses an empty agentId and a 64-character one is fine', async () => {
    const empty = await create({ userId: 'u', agentId: '', agentName: 'x', apikey: 'k' });
    expect(empty.statusCode).toBe(400);
    expect(empty.json().error.code).toBe('INVALID_AGENT_ID');
    const long = await create({ userId: 'u-long', agentId: 'a'.repeat(64), agentName: 'x', apikey: 'k-long' });
    expect(long.statusCode).toBe(200);
  });

  it('refuses an apikey that is empty or holds whitespace, and flags one shorter than 16 characters', async () => {
    for (const apikey of ['', 'two words', 'tab\tkey', ' leading-space-0123456789', 'line\nbreak-0123456789']) {
      const res = await create({ userId: 'u-rules', agentId: 'rules-bot', agentName: 'Rules', apikey });
      expect(res.statusCode, JSON.stringify(apikey)).toBe(400);
      expect(res.json().error).toMatchObject({ code: 'INVALID_PAYLOAD', message: expect.stringContaining('apikey') });
    }
    // The seed's own example: accepted, warned about (without the key), and shown as weak.
    const weak = await create({ userId: 'u-rules', agentId: 'weak-bot', agentName: 'Weak', apikey: 'api-key' });
    expect(weak.statusCode).toBe(200);
    expect(weak.json().data.weakApiKey).toBe(true);
    const warning = f.t.logs.find((l) => l.event === 'auth.weak_api_key' && l.agentId === 'weak-bot');
    expect(warning?.level).toBe('warn');
    expect(JSON.stringify(warning)).not.toContain('api-key"');
    const strong = await create({
      userId: 'u-rules',
      agentId: 'strong-bot',
      agentName: 'Strong',
      apikey: 'a-long-random-key-0123456789',
    });
    expect(strong.json().data.weakApiKey).toBe(false);
    const listed = await f.t.app.inject({ method: 'GET', url: '/sessions?limit=200', headers: f.t.admin });
    const items = listed.json().data.items as { agentId: string; weakApiKey: boolean }[];
    expect(items.find((s) => s.agentId === 'weak-bot')?.weakApiKey).toBe(true);
    expect(listed.body).not.toContain('a-long-random-key-0123456789');
  });

  it('names the wrong field in a 400', async () => {
    const res = await create({ userId: 'u', agentId: 'typed-bot', agentName: 12, apikey: 'k' });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({ code: 'INVALID_PAYLOAD', message: expect.stringContaining('agentName') });
    const engine = await create({ userId: 'u', agentId: 'typed-bot', agentName: 'x', apikey: 'k', engine: 'telegram' });
    expect(engine.statusCode).toBe(400);
    expect(engine.json().error.message).toContain('engine');
  });

  it('lists sessions with pagination', async () => {
    for (const n of [1, 2, 3])
      await create({ userId: 'u-list', agentId: `list-${n}`, agentName: `L${n}`, apikey: 'k-l' });
    const page = await f.t.app.inject({ method: 'GET', url: '/sessions?limit=2&offset=0', headers: f.t.admin });
    expect(page.statusCode).toBe(200);
    const data = page.json().data;
    expect(data.items).toHaveLength(2);
    expect(data.limit).toBe(2);
    expect(data.total).toBeGreaterThanOrEqual(3);
    const all = await f.t.app.inject({ method: 'GET', url: `/sessions?limit=200`, headers: f.t.admin });
    const ids = all.json().data.items.map((s: { agentId: string }) => s.agentId);
    expect(ids).toEqual(expect.arrayContaining(['list-1', 'list-2', 'list-3']));
    const bad = await f.t.app.inject({ method: 'GET', url: '/sessions?limit=0', headers: f.t.admin });
    expect(bad.statusCode).toBe(400);
  });

  it('reconnect clears the login, keeps the row and shows a fresh QR code; 404 for an unknown agent', async () => {
    await create({ userId: 'u-rc', agentId: 'rc-bot', agentName: 'Rc', apikey: 'k-rc' });
    await f.t.app.inject({ method: 'POST', url: '/sessions/rc-bot/qr', headers: f.t.admin });
    await scan('rc-bot');
    expect(await f.t.container.sandbox?.hasStoredLogin('rc-bot')).toBe(true);
    const res = await f.t.app.inject({ method: 'POST', url: '/sessions/rc-bot/reconnect', headers: f.t.admin });
    expect(res.statusCode).toBe(200);
    expect(res.json().data).toMatchObject({ agentId: 'rc-bot', status: 'awaiting_qr', liveState: { isReady: false } });
    expect(await f.t.container.sandbox?.hasStoredLogin('rc-bot')).toBe(false);
    const qr = await f.t.app.inject({ method: 'POST', url: '/sessions/rc-bot/qr', headers: f.t.admin });
    expect(qr.statusCode).toBe(200);
    const missing = await f.t.app.inject({ method: 'POST', url: '/sessions/nobody/reconnect', headers: f.t.admin });
    expect(missing.statusCode).toBe(404);
  });

  it('delete logs out and removes the stored login', async () => {
    await create({ userId: 'u-del', agentId: 'del-bot', agentName: 'Del', apikey: 'k-del' });
    await f.t.app.inject({ method: 'POST', url: '/sessions/del-bot/qr', headers: f.t.admin });
    await scan('del-bot');
    const res = await f.t.app.inject({ method: 'DELETE', url: '/sessions/del-bot', headers: f.t.admin });
    expect(res.json().data).toEqual({ deleted: true });
    expect(await f.t.container.sandbox?.hasStoredLogin('del-bot')).toBe(false);
    const rows = await f.db.database.query(`SELECT 1 FROM whatsapp_user WHERE agent_id = 'del-bot'`);
    expect(rows).toHaveLength(0);
  });

  it('gives a pairing code on engines that have one', async () => {
    await create({ userId: 'u-pair', agentId: 'pair-bot', agentName: 'Pair', apikey: 'k-pair' });
    const res = await f.t.app.inject({
      method: 'POST',
      url: '/sessions/pair-bot/pairing-code',
      headers: f.t.admin,
      payload: { phone: '+62 811 000 111' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().data.code).toMatch(/^[A-Z0-9]{8}$/);
    const junk = await f.t.app.inject({
      method: 'POST',
      url: '/sessions/pair-bot/pairing-code',
      headers: f.t.admin,
      payload: { phone: 'call me' },
    });
    expect(junk.statusCode).toBe(400);
    expect(junk.json().error.code).toBe('INVALID_RECIPIENT');
  });

  describe('authentication', () => {
    beforeAll(async () => {
      await create({ userId: 'u-a', agentId: 'auth-a', agentName: 'A', apikey: 'key-of-a' });
      await create({ userId: 'u-b', agentId: 'auth-b', agentName: 'B', apikey: 'key-of-b' });
    });

    it('needs a key', async () => {
      const res = await f.t.app.inject({ method: 'GET', url: '/sessions/auth-a' });
      expect(res.statusCode).toBe(401);
      expect(res.json().error.code).toBe('UNAUTHORIZED');
      expect(res.json().error.traceId).toBe(res.headers['x-request-id']);
    });

    it('refuses a wrong key', async () => {
      const res = await f.t.app.inject({
        method: 'GET',
        url: '/sessions/auth-a',
        headers: { authorization: 'Bearer nope' },
      });
      expect(res.statusCode).toBe(401);
    });

    it("lets an agent's key read, reconnect and delete its own session, and nothing else", async () => {
      const own = { authorization: 'Bearer key-of-a' };
      expect((await f.t.app.inject({ method: 'GET', url: '/sessions/auth-a', headers: own })).statusCode).toBe(200);
      const other = await f.t.app.inject({ method: 'GET', url: '/sessions/auth-b', headers: own });
      expect(other.statusCode).toBe(403);
      expect(other.json().error.code).toBe('FORBIDDEN');
      const list = await f.t.app.inject({ method: 'GET', url: '/sessions', headers: own });
      expect(list.statusCode).toBe(403);
      const createOther = await create({ userId: 'u-a', agentId: 'auth-c', agentName: 'C', apikey: 'x' }, own);
      expect(createOther.statusCode).toBe(403);
      const pairing = await f.t.app.inject({
        method: 'POST',
        url: '/sessions/auth-a/pairing-code',
        headers: own,
        payload: { phone: '62811000111' },
      });
      expect(pairing.statusCode).toBe(403);
      expect((await f.t.app.inject({ method: 'POST', url: '/sessions/auth-a/qr', headers: own })).statusCode).toBe(200);
      expect(
        (await f.t.app.inject({ method: 'POST', url: '/sessions/auth-a/reconnect', headers: own })).statusCode,
      ).toBe(200);
      expect((await f.t.app.inject({ method: 'DELETE', url: '/sessions/auth-a', headers: own })).statusCode).toBe(200);
    });

    it('keeps the sandbox control surface for the admin', async () => {
      const res = await f.t.app.inject({
        method: 'GET',
        url: '/sandbox/agents/auth-b/sent',
        headers: { authorization: 'Bearer key-of-b' },
      });
      expect(res.statusCode).toBe(403);
    });
  });
});

describe('/sessions with engines that lack something', () => {
  let db: TestDatabase;
  let silent: TestApp;
  /** The silent app's clock: the QR wait times out when the test moves it, not after a real wait. */
  const silentClock = new FakeClock();
  const QR_WAIT_MS = 30_000;
  let noPairing: TestApp;
  /** Its own database: on PostgreSQL two apps on one would be two members sharing the sessions. */
  let noPairingDb: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
    noPairingDb = await createTestDatabase();
    silent = await createTestApp({
      database: db.database,
      env: { QR_WAIT_TIMEOUT_MS: String(QR_WAIT_MS) },
      overrides: { engines: { baileys: createFakeEngine({ showsQr: false }) }, clock: silentClock },
    });
    noPairing = await createTestApp({
      database: noPairingDb.database,
      overrides: { engines: { baileys: createFakeEngine({ showsQr: true }) } },
    });
  });
  afterAll(async () => {
    await silent?.close();
    await noPairing?.close();
    await db?.drop();
    await noPairingDb?.drop();
  });

  it('answers 504 QR_TIMEOUT when no QR code comes in time', async () => {
    await silent.app.inject({
      method: 'POST',
      url: '/sessions',
      headers: silent.admin,
      payload: { userId: 'u', agentId: 'mute', agentName: 'Mute', apikey: 'k', engine: 'baileys' },
    });
    let answered = false;
    const response = silent.app.inject({ method: 'POST', url: '/sessions/mute/qr', headers: silent.admin });
    void response.then(() => {
      answered = true;
    });
    // The wait starts once the row is read from the database.
    await until(() => silentClock.pending().includes(QR_WAIT_MS));
    await silentClock.advance(QR_WAIT_MS - 1);
    expect(answered).toBe(false);
    await silentClock.advance(1);
    const res = await response;
    expect(res.statusCode).toBe(504);
    expect(res.json().error.code).toBe('QR_TIMEOUT');
    const png = await silent.app.inject({ method: 'GET', url: '/sessions/mute/qr.png', headers: silent.admin });
    expect(png.statusCode).toBe(404);
  });

  it('answers 501 ENGINE_UNSUPPORTED for a pairing code the engine cannot give', async () => {
    const created = await noPairing.app.inject({
      method: 'POST',
      url: '/sessions?waitForQr=true',
      headers: noPairing.admin,
      payload: { userId: 'u2', agentId: 'nopair', agentName: 'No pairing', apikey: 'k', engine: 'baileys' },
    });
    expect(created.statusCode).toBe(200);
    expect(created.json().data.liveState.qr.contentType).toBe('image/png');
    const res = await noPairing.app.inject({
      method: 'POST',
      url: '/sessions/nopair/pairing-code',
      headers: noPairing.admin,
      payload: { phone: '6281234567890' },
    });
    expect(res.statusCode).toBe(501);
    expect(res.json().error.code).toBe('ENGINE_UNSUPPORTED');
  });
});
