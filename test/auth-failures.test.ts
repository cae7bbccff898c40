// Failed authentications are limited per client address and per agent: past AUTH_FAILURES_PER_MINUTE, 429
// TOO_MANY_AUTH_FAILURES with Retry-After until the minute's window ends (the clock moves it here).
import { beforeAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/__fixtures__/fake-clock.js';
import { useTestApp } from './helpers/app.js';

const LIMIT = 5;

describe('failed authentication limits', () => {
  const clock = new FakeClock();
  const f = useTestApp({ env: { AUTH_FAILURES_PER_MINUTE: String(LIMIT) }, overrides: { clock } });

  const get = (url: string, remoteAddress: string, key?: string) =>
    f.t.app.inject({
      method: 'GET',
      url,
      remoteAddress,
      headers: key === undefined ? {} : { authorization: `Bearer ${key}` },
    });

  beforeAll(async () => {
    for (const agentId of ['limit-a', 'limit-b', 'limit-c']) {
      const res = await f.t.app.inject({
        method: 'POST',
        url: '/sessions',
        headers: f.t.admin,
        payload: { userId: `u-${agentId}`, agentId, agentName: agentId, apikey: `key-${agentId}-0123456789` },
      });
      expect(res.statusCode).toBe(200);
    }
  });

  it('makes a client address that keeps failing wait, whatever key it sends next', async () => {
    for (let i = 0; i < LIMIT; i++)
      expect((await get('/sessions/limit-a', '10.0.0.1', `guess-${i}`)).statusCode).toBe(401);
    const blocked = await get('/sessions/limit-a', '10.0.0.1', 'guess-next');
    expect(blocked.statusCode).toBe(429);
    expect(blocked.json().error.code).toBe('TOO_MANY_AUTH_FAILURES');
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(blocked.headers['retry-after'])).toBeLessThanOrEqual(60);
    // Even the right key waits: a guess that hits cannot be told from one that misses.
    expect((await get('/sessions/limit-b', '10.0.0.1', 'key-limit-b-0123456789')).statusCode).toBe(429);
    expect((await get('/sessions', '10.0.0.1', f.t.admin.authorization.slice(7))).statusCode).toBe(429);
    // Other addresses are not concerned.
    expect((await get('/sessions/limit-b', '10.0.0.2', 'key-limit-b-0123456789')).statusCode).toBe(200);
    await clock.advance(60_000);
    expect((await get('/sessions/limit-b', '10.0.0.1', 'key-limit-b-0123456789')).statusCode).toBe(200);
  });

  it('makes an agent that keeps failing wait, from every address; the admin key still opens it', async () => {
    for (let i = 0; i < LIMIT; i++) {
      expect((await get('/sessions/limit-c', `10.1.0.${i}`, `guess-${i}`)).statusCode).toBe(401);
    }
    const blocked = await get('/sessions/limit-c', '10.1.1.1', 'key-limit-c-0123456789');
    expect(blocked.statusCode).toBe(429);
    expect(blocked.headers['retry-after']).toBeDefined();
    const agentRoute = await f.t.app.inject({
      method: 'POST',
      url: '/agents/limit-c/messages',
      remoteAddress: '10.1.1.2',
      headers: { authorization: 'Bearer key-limit-c-0123456789' },
      payload: { to: '6281234567890', message: 'hi' },
    });
    expect(agentRoute.statusCode).toBe(429);
    expect((await get('/sessions/limit-c', '10.1.1.1', f.t.admin.authorization.slice(7))).statusCode).toBe(200);
    expect((await get('/sessions/limit-b', '10.1.1.1', 'key-limit-b-0123456789')).statusCode).toBe(200);
    await clock.advance(60_000);
    expect((await get('/sessions/limit-c', '10.1.1.1', 'key-limit-c-0123456789')).statusCode).toBe(200);
  });

  it('counts only guesses: no key, or a valid key at the wrong agent, is not a failure', async () => {
    for (let i = 0; i < LIMIT * 3; i++) {
      expect((await get('/sessions/limit-a', '10.2.0.1')).statusCode).toBe(401);
      expect((await get('/sessions/limit-a', '10.2.0.1', 'key-limit-b-0123456789')).statusCode).toBe(403);
    }
    expect((await get('/sessions/limit-a', '10.2.0.1', 'key-limit-a-0123456789')).statusCode).toBe(200);
  });

  it('counts guesses at made-up agents against the address only', async () => {
    for (let i = 0; i < LIMIT; i++) {
      expect((await get(`/sessions/ghost-${i}`, '10.3.0.1', `guess-${i}`)).statusCode).toBe(401);
    }
    expect((await get('/sessions/ghost-0', '10.3.0.1', 'guess')).statusCode).toBe(429);
    expect((await get('/sessions/limit-a', '10.3.0.2', 'key-limit-a-0123456789')).statusCode).toBe(200);
    await clock.advance(60_000);
  });

  it('limits guesses at the admin key too', async () => {
    for (let i = 0; i < LIMIT; i++)
      expect((await get('/sessions', '10.4.0.1', `admin-guess-${i}`)).statusCode).toBe(401);
    expect((await get('/sessions', '10.4.0.1', 'admin-guess')).statusCode).toBe(429);
    await clock.advance(60_000);
  });
});

describe('failed authentication limits behind a reverse proxy (TRUST_PROXY)', () => {
  const f = useTestApp({ env: { AUTH_FAILURES_PER_MINUTE: String(LIMIT), TRUST_PROXY: '127.0.0.1' } });

  const viaProxy = (client: string, key: string) =>
    f.t.app.inject({
      method: 'GET',
      url: '/sessions',
      remoteAddress: '127.0.0.1',
      headers: { authorization: `Bearer ${key}`, 'x-forwarded-for': client },
    });

  it('counts the client the proxy names, not the proxy', async () => {
    for (let i = 0; i < LIMIT; i++) expect((await viaProxy('203.0.113.1', `guess-${i}`)).statusCode).toBe(401);
    expect((await viaProxy('203.0.113.1', 'guess')).statusCode).toBe(429);
    expect((await viaProxy('203.0.113.2', f.t.admin.authorization.slice(7))).statusCode).toBe(200);
    // A client that is not the trusted proxy cannot pick its address.
    const spoofed = await f.t.app.inject({
      method: 'GET',
      url: '/sessions',
      remoteAddress: '198.51.100.9',
      headers: { authorization: 'Bearer guess', 'x-forwarded-for': '203.0.113.3' },
    });
    expect(spoofed.statusCode).toBe(401);
  });
});
