// METRICS_PER_AGENT labels only agents that exist: ids from requests for unknown agents create no series.
import { describe, expect, it } from 'vitest';
import { useTestApp } from './helpers/app.js';
import { connectAgent, sendText } from './helpers/messaging.js';

describe('per-agent metrics', () => {
  const f = useTestApp({ env: { METRICS_PER_AGENT: 'true' } });

  it('labels the agents that exist, and no id a request made up', async () => {
    const agent = await connectAgent(f.t, 'metered-bot');
    expect((await sendText(f.t, agent, { to: '6281234567890', message: 'hi' })).statusCode).toBe(200);
    // An error of a real agent: it keeps its label.
    expect((await sendText(f.t, agent, { to: 'not-a-number', message: 'hi' })).statusCode).toBe(400);

    const madeUp = Array.from({ length: 20 }, (_, i) => `ghost-${i}-${Math.random().toString(36).slice(2, 8)}`);
    for (const agentId of madeUp) {
      await f.t.app.inject({ method: 'GET', url: `/sessions/${agentId}`, headers: f.t.admin });
      await f.t.app.inject({ method: 'POST', url: `/agents/${agentId}/messages`, payload: { to: '1', message: 'x' } });
      await f.t.app.inject({
        method: 'POST',
        url: `/agents/${agentId}/messages`,
        headers: { authorization: 'Bearer wrong-key-0123456789' },
        payload: { to: '6281234567890', message: 'x' },
      });
      await f.t.app.inject({
        method: 'POST',
        url: `/sandbox/agents/${agentId}/inbound`,
        headers: f.t.admin,
        payload: { from: '6281234567890', text: 'x' },
      });
    }

    const metrics = (await f.t.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).not.toContain('ghost-');
    expect(metrics).toMatch(/whatsapp_messages_sent_total\{type="text",agent_id="metered-bot"\} 1/);
    expect(metrics).toMatch(/whatsapp_errors_total\{code="INVALID_RECIPIENT",agent_id="metered-bot"\} 1/);
    expect(metrics).toMatch(/whatsapp_errors_total\{code="SESSION_NOT_FOUND"\} 20/);
    expect(metrics).toMatch(/whatsapp_errors_total\{code="UNAUTHORIZED"\} 40/);
  });
});
