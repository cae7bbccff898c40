import { describe, expect, it } from 'vitest';
import { createMetrics } from './metrics.js';

const line = (text: string, prefix: string) => text.split('\n').find((l) => l.startsWith(prefix));

describe('createMetrics: the counts every message adds to', () => {
  it('shows queued and sent counts at each scrape, adding up across scrapes, beside direct increments', async () => {
    const metrics = createMetrics({ perAgent: false, collectProcessMetrics: false });
    metrics.countQueued('a');
    metrics.countQueued('b');
    metrics.countSent('text', 'a');
    metrics.outboxTransitions.inc({ state: 'failed' });
    let text = await metrics.registry.metrics();
    expect(line(text, 'whatsapp_outbox_messages_total{state="queued"}')).toBe(
      'whatsapp_outbox_messages_total{state="queued"} 2',
    );
    expect(line(text, 'whatsapp_outbox_messages_total{state="sent"}')).toBe(
      'whatsapp_outbox_messages_total{state="sent"} 1',
    );
    expect(line(text, 'whatsapp_outbox_messages_total{state="failed"}')).toBe(
      'whatsapp_outbox_messages_total{state="failed"} 1',
    );
    expect(line(text, 'whatsapp_messages_sent_total{type="text"}')).toBe('whatsapp_messages_sent_total{type="text"} 1');

    // A second scrape adds only what came since: nothing counted twice, nothing lost.
    metrics.countSent('image', 'b');
    metrics.countSent('text', 'b');
    text = await metrics.registry.metrics();
    expect(line(text, 'whatsapp_outbox_messages_total{state="sent"}')).toBe(
      'whatsapp_outbox_messages_total{state="sent"} 3',
    );
    expect(line(text, 'whatsapp_messages_sent_total{type="text"}')).toBe('whatsapp_messages_sent_total{type="text"} 2');
    expect(line(text, 'whatsapp_messages_sent_total{type="image"}')).toBe(
      'whatsapp_messages_sent_total{type="image"} 1',
    );
    expect((await metrics.messagesSent.get()).values.reduce((sum, v) => sum + v.value, 0)).toBe(3);
  });

  it('keeps agents apart when per-agent labels are on', async () => {
    const metrics = createMetrics({ perAgent: true, collectProcessMetrics: false });
    metrics.setKnownAgents((agentId) => agentId === 'a' || agentId === 'b');
    metrics.countSent('text', 'a');
    metrics.countSent('text', 'a');
    metrics.countSent('text', 'b');
    const text = await metrics.registry.metrics();
    expect(text).toContain('whatsapp_messages_sent_total{type="text",agent_id="a"} 2');
    expect(text).toContain('whatsapp_messages_sent_total{type="text",agent_id="b"} 1');
    expect(text).toContain('whatsapp_outbox_messages_total{state="sent",agent_id="a"} 2');
  });

  it('labels only the agents said to exist; the others are counted without a label', async () => {
    const metrics = createMetrics({ perAgent: true, collectProcessMetrics: false });
    expect(metrics.agentLabel('a')).toEqual({}); // none exists until the container says which do
    metrics.setKnownAgents((agentId) => agentId === 'a');
    expect(metrics.agentLabel('a')).toEqual({ agent_id: 'a' });
    metrics.errors.inc({ code: 'UNAUTHORIZED', ...metrics.agentLabel('made-up') });
    metrics.setQueueDepthSource(() => [
      ['a', 2],
      ['gone', 3],
    ]);
    const text = await metrics.registry.metrics();
    expect(text).toContain('whatsapp_errors_total{code="UNAUTHORIZED"} 1');
    expect(text).toContain('whatsapp_outbox_queue_depth{agent_id="a"} 2');
    expect(text).toContain('whatsapp_outbox_queue_depth 3');
    expect(text).not.toContain('made-up');
    expect(text).not.toContain('gone');
  });
});
