// Headers on every answer: nosniff everywhere, no-store where secrets, agents' data or users' files travel, no framing.
import { describe, expect, it } from 'vitest';
import { useTestApp } from './helpers/app.js';
import { connectAgent } from './helpers/messaging.js';

describe('security headers', () => {
  const f = useTestApp();

  it('sends nosniff and refuses framing on every answer, errors and 404s included', async () => {
    for (const [url, headers] of [
      ['/health', {}],
      ['/metrics', {}],
      ['/sessions', {}],
      ['/nope', {}],
      ['/dashboard/', {}],
      ['/docs', {}],
    ] as const) {
      const res = await f.t.app.inject({ method: 'GET', url, headers });
      expect(res.headers['x-content-type-options'], url).toBe('nosniff');
      expect(res.headers['x-frame-options'], url).toBe('DENY');
    }
  });

  it('keeps QR codes, pairing codes and every session or agent answer out of caches', async () => {
    const agent = await connectAgent(f.t, 'cache-bot');
    await f.t.app.inject({
      method: 'POST',
      url: '/sessions',
      headers: f.t.admin,
      payload: { userId: 'u-qr', agentId: 'qr-bot', agentName: 'QR', apikey: 'qr-key-0123456789' },
    });
    const answers = [
      await f.t.app.inject({ method: 'POST', url: '/sessions/qr-bot/qr', headers: f.t.admin }),
      await f.t.app.inject({ method: 'GET', url: '/sessions/qr-bot/qr.png', headers: f.t.admin }),
      await f.t.app.inject({ method: 'GET', url: '/sessions/qr-bot', headers: f.t.admin }),
      await f.t.app.inject({ method: 'GET', url: '/sessions', headers: f.t.admin }),
      await f.t.app.inject({
        method: 'POST',
        url: '/sessions/qr-bot/pairing-code',
        headers: f.t.admin,
        payload: { phone: '6281100011122' },
      }),
      await f.t.app.inject({
        method: 'POST',
        url: '/agents/cache-bot/messages',
        headers: agent.auth,
        payload: { to: '6281234567890', message: 'hi' },
      }),
      await f.t.app.inject({ method: 'GET', url: '/sessions/qr-bot' }),
      // Admin-level webhooks: a secret in the answer (a public address that is never called: disabled); media links: a
      // user's file (an unknown id here).
      await f.t.app.inject({
        method: 'POST',
        url: '/webhooks',
        headers: f.t.admin,
        payload: { url: 'https://93.184.215.14/in', enabled: false },
      }),
      await f.t.app.inject({ method: 'GET', url: '/webhooks', headers: f.t.admin }),
      await f.t.app.inject({ method: 'GET', url: '/media/0123456789abcdef0123456789abcdef?expires=1&sig=x' }),
    ];
    expect(answers.map((a) => a.statusCode)).toEqual([200, 200, 200, 200, 200, 200, 401, 201, 200, 403]);
    for (const [i, answer] of answers.entries())
      expect(answer.headers['cache-control'], `answer ${i}`).toBe('no-store');
    // Not on public, cacheable answers.
    const health = await f.t.app.inject({ method: 'GET', url: '/health' });
    expect(health.headers['cache-control']).toBeUndefined();
  });

  it('protects /docs from framing without touching its own page', async () => {
    const docs = await f.t.app.inject({ method: 'GET', url: '/docs/' });
    expect(docs.statusCode).toBe(200);
    expect(docs.headers['content-security-policy']).toBe("frame-ancestors 'none'");
    const dashboard = await f.t.app.inject({ method: 'GET', url: '/dashboard/' });
    expect(String(dashboard.headers['content-security-policy'])).toContain("script-src 'self'");
  });
});
