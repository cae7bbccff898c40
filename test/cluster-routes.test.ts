// GET /cluster through the app: the members as this one sees them (admin key only), and the cluster metrics.
import { describe, expect, it } from 'vitest';
import { useTestApp } from './helpers/app.js';
import { usingPostgres } from './helpers/database.js';

describe('GET /cluster', () => {
  const f = useTestApp({ env: { INSTANCE_ID: 'route-member', INSTANCE_URL: 'http://10.0.0.7:3000/' } });

  it('lists the members with heartbeat age, capacity and owned sessions', async () => {
    const created = await f.t.app.inject({
      method: 'POST',
      url: '/sessions',
      headers: f.t.admin,
      payload: { userId: 'u1', agentId: 'cluster-bot', agentName: 'Bot', apikey: 'key-cluster-bot-0123456789' },
    });
    expect(created.statusCode).toBe(200);

    const res = await f.t.app.inject({ method: 'GET', url: '/cluster', headers: f.t.admin });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.traceId).toEqual(expect.any(String));
    expect(body.data).toMatchObject({ self: 'route-member', single: !usingPostgres() });
    const self = body.data.members.find((m: { self: boolean }) => m.self);
    expect(self).toMatchObject({
      instanceId: 'route-member',
      url: 'http://10.0.0.7:3000',
      maxSessions: null,
      live: true,
      self: true,
    });
    expect(self.heartbeatAgeMs).toBeGreaterThanOrEqual(0);
    expect(self.heartbeatAgeMs).toBeLessThan(10_000);
    // One process owns every session; on PostgreSQL, whatever leases it took so far.
    if (!usingPostgres()) expect(self.sessions).toBe(1);
    else expect(self.sessions).toBeGreaterThanOrEqual(0);
  });

  it('takes the admin key only', async () => {
    const anonymous = await f.t.app.inject({ method: 'GET', url: '/cluster' });
    expect(anonymous.statusCode).toBe(401);
    const agent = await f.t.app.inject({
      method: 'GET',
      url: '/cluster',
      headers: { authorization: 'Bearer key-cluster-bot-0123456789' },
    });
    expect(agent.statusCode).toBe(403);
  });

  it('exports the cluster metrics', async () => {
    const metrics = (await f.t.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^whatsapp_cluster_members 1$/m);
    expect(metrics).toContain('# TYPE whatsapp_cluster_owned_sessions gauge');
    expect(metrics).toContain('# TYPE whatsapp_cluster_handovers_total counter');
    expect(metrics).toContain('# TYPE whatsapp_cluster_lease_losses_total counter');
  });
});
