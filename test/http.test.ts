import { describe, expect, it, vi } from 'vitest';
import { useTestApp } from './helpers/app.js';

describe('HTTP conventions, health and metrics', () => {
  const f = useTestApp();

  it('answers /health with status, uptime and timestamp', async () => {
    const res = await f.t.app.inject({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      status: 'ok',
      uptime: expect.any(Number),
      timestamp: expect.any(String),
      traceId: res.headers['x-request-id'],
    });
  });

  it('answers /health/ready with 200, and 503 when the database is down or the service drains', async () => {
    expect((await f.t.app.inject({ method: 'GET', url: '/health/ready' })).statusCode).toBe(200);
    const ping = vi.spyOn(f.t.container.database, 'ping').mockRejectedValueOnce(new Error('connection refused'));
    const down = await f.t.app.inject({ method: 'GET', url: '/health/ready' });
    expect(down.statusCode).toBe(503);
    expect(down.json().checks).toMatchObject({ database: 'down', draining: false });
    ping.mockRestore();
    f.t.container.draining = true;
    try {
      const draining = await f.t.app.inject({ method: 'GET', url: '/health/ready' });
      expect(draining.statusCode).toBe(503);
      expect(draining.json().checks).toMatchObject({ database: 'ok', draining: true });
    } finally {
      f.t.container.draining = false;
    }
  });

  it('serves Prometheus metrics with the seed names and request durations', async () => {
    await f.t.app.inject({ method: 'GET', url: '/sessions/nobody', headers: f.t.admin });
    const res = await f.t.app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/plain');
    expect(res.body).toContain('# TYPE whatsapp_sessions_active gauge');
    expect(res.body).toContain('# TYPE whatsapp_errors_total counter');
    expect(res.body).toMatch(/whatsapp_errors_total\{code="SESSION_NOT_FOUND"\} [1-9]/);
    expect(res.body).toMatch(
      /http_request_duration_seconds_count\{method="GET",route="\/sessions\/:agentId",status_code="404"\} [1-9]/,
    );
  });

  it('uses a valid X-Request-Id as the traceId and replaces an invalid one', async () => {
    const given = await f.t.app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': 'req-123' } });
    expect(given.headers['x-request-id']).toBe('req-123');
    expect(given.json().traceId).toBe('req-123');
    const tooLong = await f.t.app.inject({
      method: 'GET',
      url: '/health',
      headers: { 'x-request-id': 'x'.repeat(129) },
    });
    expect(tooLong.headers['x-request-id']).not.toBe('x'.repeat(129));
    expect(tooLong.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const lines = f.t.logs.filter((l) => l.traceId === 'req-123');
    expect(lines.length).toBeGreaterThan(0);
  });

  it('answers unknown routes with a JSON 404', async () => {
    const res = await f.t.app.inject({ method: 'GET', url: '/nope?x=1' });
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toEqual({
      code: 'NOT_FOUND',
      message: 'No route for GET /nope',
      traceId: expect.any(String),
    });
  });

  it('refuses a body that is not JSON, and one that is too large', async () => {
    const broken = await f.t.app.inject({
      method: 'POST',
      url: '/sessions',
      headers: { ...f.t.admin, 'content-type': 'application/json' },
      payload: '{"userId":',
    });
    expect(broken.statusCode).toBe(400);
    expect(broken.json().error.code).toBe('INVALID_PAYLOAD');
    const big = await f.t.app.inject({
      method: 'POST',
      url: '/sessions',
      headers: { ...f.t.admin, 'content-type': 'application/json' },
      payload: JSON.stringify({ userId: 'u', agentId: 'big', agentName: 'x'.repeat(1_100_000) }),
    });
    expect(big.statusCode).toBe(413);
    expect(big.json().error.code).toBe('PAYLOAD_TOO_LARGE');
  });

  it('hides the details of an internal error and logs them', async () => {
    const spy = vi.spyOn(f.t.container.sessions, 'list').mockRejectedValueOnce(new Error('secret connection string'));
    const res = await f.t.app.inject({ method: 'GET', url: '/sessions', headers: f.t.admin });
    spy.mockRestore();
    expect(res.statusCode).toBe(500);
    expect(res.json().error).toEqual({
      code: 'INTERNAL_ERROR',
      message: 'Internal server error.',
      traceId: res.headers['x-request-id'],
    });
    expect(res.body).not.toContain('secret');
    const logged = f.t.logs.find((l) => l.traceId === res.headers['x-request-id'] && l.event === 'http.error');
    expect(JSON.stringify(logged)).toContain('secret connection string');
  });

  it('puts agentId on request logs and never logs keys', async () => {
    await f.t.app.inject({
      method: 'POST',
      url: '/sessions',
      headers: f.t.admin,
      payload: { userId: 'u', agentId: 'log-bot', agentName: 'Log', apikey: 'very-secret-agent-key' },
    });
    await f.t.app.inject({
      method: 'GET',
      url: '/sessions/log-bot',
      headers: { authorization: 'Bearer very-secret-agent-key' },
    });
    expect(f.t.logs.some((l) => l.agentId === 'log-bot' && typeof l.traceId === 'string')).toBe(true);
    const all = JSON.stringify(f.t.logs);
    expect(all).not.toContain('very-secret-agent-key');
    expect(all).not.toContain('test-admin-key-0123456789');
  });
});

describe('METRICS_TOKEN and SESSIONS_AUTH=none', () => {
  const f = useTestApp({ env: { METRICS_TOKEN: 'metrics-secret', SESSIONS_AUTH: 'none' } });

  it('protects /metrics with the token', async () => {
    expect((await f.t.app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
    const wrong = await f.t.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer nope' } });
    expect(wrong.statusCode).toBe(401);
    const ok = await f.t.app.inject({
      method: 'GET',
      url: '/metrics',
      headers: { authorization: 'Bearer metrics-secret' },
    });
    expect(ok.statusCode).toBe(200);
  });

  it('opens the session endpoints, as the seed did, and warns at boot', async () => {
    const res = await f.t.app.inject({
      method: 'POST',
      url: '/sessions',
      payload: { userId: 'u', agentId: 'open-bot', agentName: 'Open', apikey: 'k' },
    });
    expect(res.statusCode).toBe(200);
    expect((await f.t.app.inject({ method: 'GET', url: '/sessions/open-bot' })).statusCode).toBe(200);
    const warning = f.t.logs.find((l) => l.event === 'auth.sessions_open' && l.level === 'warn');
    // In plain words: what anyone on the network can do.
    expect(warning?.msg).toMatch(/anyone who can reach this port can take over any agent/i);
    // The sandbox control surface still needs the admin key.
    expect((await f.t.app.inject({ method: 'GET', url: '/sandbox/agents/open-bot/sent' })).statusCode).toBe(401);
  });
});
