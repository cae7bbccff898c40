// An engine that cannot even begin a session (here: whatsapp-web with no browser) fails fast: the QR and pairing-code
// calls answer 503 ENGINE_UNAVAILABLE at once with the reason, the session says why and does not retry on its own,
// and /health/ready lists the engine as unavailable without failing readiness.
import { describe, expect, it } from 'vitest';
import { useTestApp } from './helpers/app.js';

const MISSING = '/nonexistent/chromium-for-this-test';

describe('an engine that cannot start', () => {
  const fixture = useTestApp({ env: { CHROME_PATH: MISSING } });

  it('answers the QR code and pairing code at once with 503 ENGINE_UNAVAILABLE, and stops retrying', async () => {
    const { t } = fixture;
    const created = await t.app.inject({
      method: 'POST',
      url: '/sessions',
      headers: t.admin,
      payload: {
        userId: 'u1',
        agentId: 'no-browser',
        agentName: 'No browser',
        apikey: 'key-no-browser-0123456789',
        engine: 'whatsapp-web',
      },
    });
    expect(created.statusCode).toBe(200);
    expect(created.json().data.liveState).toMatchObject({
      sessionState: 'unavailable',
      lastError: expect.stringContaining(MISSING),
    });

    const started = performance.now();
    const qr = await t.app.inject({ method: 'POST', url: '/sessions/no-browser/qr', headers: t.admin });
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(qr.statusCode).toBe(503);
    expect(qr.json().error).toMatchObject({ code: 'ENGINE_UNAVAILABLE', message: expect.stringContaining(MISSING) });

    const pairing = await t.app.inject({
      method: 'POST',
      url: '/sessions/no-browser/pairing-code',
      headers: t.admin,
      payload: { phone: '6281234567890' },
    });
    expect(pairing.statusCode).toBe(503);
    expect(pairing.json().error.code).toBe('ENGINE_UNAVAILABLE');

    const status = await t.app.inject({ method: 'GET', url: '/sessions/no-browser', headers: t.admin });
    expect(status.json().data).toMatchObject({
      lastError: expect.stringContaining(MISSING),
      liveState: { sessionState: 'unavailable', isReady: false },
    });
    expect(t.logs.filter((line) => line.event === 'session.reconnect_scheduled')).toEqual([]);
  });

  it('lists each engine in /health/ready, available or not with the reason, and stays ready', async () => {
    const ready = await fixture.t.app.inject({ method: 'GET', url: '/health/ready' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json().checks.engines).toEqual({
      'whatsapp-web': { available: false, reason: expect.stringContaining(MISSING) },
      baileys: { available: true, reason: null },
      sandbox: { available: true, reason: null },
    });
  });
});
