import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { RequestDurations } from './request-durations.js';

const config = (registry: Registry) => ({
  name: 'http_request_duration_seconds',
  help: 'HTTP request duration, by method, route and status code',
  buckets: [0.001, 0.01, 0.1, 1],
  registers: [registry],
});

/** The same requests, as [method, route, status, seconds]. */
const requests: Array<[string, string, number, number]> = [
  ['POST', '/agents/:agentId/messages', 200, 0.0004],
  ['POST', '/agents/:agentId/messages', 200, 0.003],
  ['GET', '/health', 200, 0.0009],
  ['POST', '/agents/:agentId/messages', 429, 0.05],
  ['POST', '/agents/:agentId/messages', 200, 2.5], // past the last bucket: only +Inf, sum and count
  ['GET', '/health', 200, 0.001], // on a bound: counted in it
];

describe('RequestDurations', () => {
  it("writes exactly what prom-client's Histogram writes for the same requests", async () => {
    const reference = new Registry();
    const histogram = new Histogram({ ...config(reference), labelNames: ['method', 'route', 'status_code'] });
    const ours = new Registry();
    const durations = new RequestDurations(config(ours));
    for (const [method, route, status, seconds] of requests) {
      histogram.observe({ method, route, status_code: String(status) }, seconds);
      durations.record(method, route, status, seconds);
    }
    const text = await ours.metrics();
    expect(text).toBe(await reference.metrics());
    expect(text).toContain(
      'http_request_duration_seconds_bucket{le="0.01",method="POST",route="/agents/:agentId/messages",status_code="200"} 2',
    );
    expect(text).toContain(
      'http_request_duration_seconds_count{method="POST",route="/agents/:agentId/messages",status_code="200"} 3',
    );
    // The JSON form too, which prom-client builds from the same series.
    expect(await ours.getMetricsAsJSON()).toEqual(await reference.getMetricsAsJSON());
  });

  it('takes observations through prom-client’s observe() as well, and forgets them all on reset', async () => {
    const registry = new Registry();
    const durations = new RequestDurations(config(registry));
    durations.observe({ method: 'GET', route: '/x', status_code: 200 }, 0.002);
    durations.observe({ labels: { method: 'GET', route: '/x', status_code: 200 }, value: 0.2 });
    expect(await registry.metrics()).toContain(
      'http_request_duration_seconds_count{method="GET",route="/x",status_code="200"} 2',
    );
    expect(() => durations.observe({ method: 'GET' }, Number.NaN)).toThrow(TypeError);
    durations.reset();
    expect(await registry.metrics()).not.toContain('_count{');
  });
});
