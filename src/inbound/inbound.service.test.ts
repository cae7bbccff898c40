import { describe, expect, it } from 'vitest';
import { FakeClock } from '../__fixtures__/fake-clock.js';
import type { AgentDirectory, ReplySender } from '../ai/agent-ports.js';
import type { AiAnswer, AiCaller, AiRequest } from '../ai/ai-client.js';
import type { InboundMessage } from '../engines/engine.js';
import { AppError } from '../errors.js';
import { createLogger } from '../observability/logger.js';
import { createMetrics } from '../observability/metrics.js';
import { REPORT_INTERVAL_MS } from './developer-reporter.js';
import type { InboundOutcome } from './inbound.repository.js';
import { INBOUND_LIMITS, InboundService, type InboundServiceOptions } from './inbound.service.js';

const DEVELOPER = '6289900000000';
const DEVELOPER_JID = `${DEVELOPER}@c.us`;
const chat = (n: number) => `628120000${String(n).padStart(4, '0')}@c.us`;
const text = (id: string, chatJid: string, body = `text of ${id}`): InboundMessage => ({
  id,
  chatJid,
  senderJid: chatJid,
  text: body,
  type: 'text',
  isGroup: false,
  mentions: [],
  fromMe: false,
  timestamp: 0,
  pushName: null,
  chatName: null,
});

/** An AI whose every call waits until the test answers or fails it, by message id. */
class GatedAi implements AiCaller {
  readonly started: Array<{ agentId: string; id: string }> = [];
  private readonly open = new Map<string, { resolve: (a: AiAnswer) => void; reject: (e: unknown) => void }>();

  execute(request: AiRequest): Promise<AiAnswer> {
    const id = (request.metadata as { message_id: string }).message_id;
    this.started.push({ agentId: request.agentId, id });
    return new Promise((resolve, reject) => this.open.set(id, { resolve, reject }));
  }
  answer(id: string, reply: string | null = `re: ${id}`): void {
    this.open.get(id)?.resolve({ reply, latencyMs: 1 });
    this.open.delete(id);
  }
  fail(id: string, code: 'AI_TIMEOUT' | 'AI_DOWNSTREAM_ERROR' = 'AI_DOWNSTREAM_ERROR'): void {
    this.open.get(id)?.reject(new AppError(code));
    this.open.delete(id);
  }
  inFlight(agentId: string): string[] {
    return this.started.filter((s) => s.agentId === agentId && this.open.has(s.id)).map((s) => s.id);
  }
  startedIds(agentId?: string): string[] {
    return this.started.filter((s) => agentId === undefined || s.agentId === agentId).map((s) => s.id);
  }
}

function harness(options: Partial<InboundServiceOptions> = {}) {
  const clock = new FakeClock(Date.UTC(2026, 10, 25, 12));
  const ai = new GatedAi();
  const metrics = createMetrics({ perAgent: false, collectProcessMetrics: false });
  const sends: Array<{ agentId: string; to: string; text: string }> = [];
  let refuseReplies = false;
  const replies: ReplySender = {
    async sendText(agentId, to, body) {
      if (refuseReplies && to !== DEVELOPER_JID) throw new AppError('RATE_LIMITED');
      sends.push({ agentId, to, text: body });
      return { status: 'sent' };
    },
  };
  const directory: AgentDirectory = {
    aiSettings: async () => ({ apiKey: 'key', endpointUrlRun: null }),
    connection: () => ({ identity: { me: '6281100000000@c.us' } }),
  };
  const outcomes: Array<{ agentId: string; id: string; outcome: InboundOutcome }> = [];
  const records: Array<{ agentId: string; id: string; outcome: InboundOutcome }> = [];
  const claims: string[] = [];
  let claimFails = false;
  let trace = 0;
  const sut = new InboundService({
    directory,
    ai,
    replies,
    repository: {
      claim: async (_agentId, message) => {
        if (claimFails) throw new Error('connection refused');
        claims.push(message.id);
        return true;
      },
      setOutcome: async (agentId, id, outcome) => {
        outcomes.push({ agentId, id, outcome });
      },
      record: async (agentId, message, _at, outcome) => {
        records.push({ agentId, id: message.id, outcome });
      },
    },
    metrics,
    logger: createLogger({ level: 'silent' }),
    developerNumber: DEVELOPER,
    defaultCountryCode: '62',
    clock,
    newTraceId: () => `trace-${++trace}`,
    ...options,
  });
  const counted = async (outcome: string) =>
    (await metrics.messagesReceived.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
  const reports = () => sends.filter((s) => s.to === DEVELOPER_JID);
  return {
    sut,
    ai,
    clock,
    sends,
    reports,
    outcomes,
    records,
    claims,
    counted,
    failClaims: (fails: boolean) => {
      claimFails = fails;
    },
    refuseReplies: (refuse: boolean) => {
      refuseReplies = refuse;
    },
  };
}

/** Lets the pipeline's promise callbacks (claim, settings, AI call, reply) run. */
const settle = async () => {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
};

describe('InboundService concurrency', () => {
  it('runs at most AI_CONCURRENCY_PER_AGENT chats of one agent at once, and another agent is not held up', async () => {
    const { sut, ai } = harness();
    for (let i = 0; i < 40; i++) sut.handle('flooded', text(`F${i}`, chat(i)));
    sut.handle('quiet', text('Q1', chat(0)));
    sut.handle('quiet', text('Q2', chat(0)));
    sut.handle('quiet', text('Q3', chat(1)));
    await settle();
    expect(ai.inFlight('flooded')).toHaveLength(INBOUND_LIMITS.perAgentConcurrency);
    // Chats of one agent run side by side, each strictly in order: Q2 waits for Q1.
    expect(ai.inFlight('quiet')).toEqual(['Q1', 'Q3']);

    ai.answer('Q1');
    await settle();
    expect(ai.inFlight('quiet')).toEqual(['Q3', 'Q2']);
    // An answered chat's slot goes to the agent's next chat, not beyond the agent's limit.
    ai.answer('F0');
    await settle();
    expect(ai.inFlight('flooded')).toHaveLength(INBOUND_LIMITS.perAgentConcurrency);
    expect(ai.startedIds('flooded')).toContain(`F${INBOUND_LIMITS.perAgentConcurrency}`);
  });

  it('takes agents in turn when the process-wide cap is reached', async () => {
    const { sut, ai } = harness({ perAgentConcurrency: 4, maxConcurrency: 4 });
    for (let i = 0; i < 8; i++) sut.handle('a', text(`A${i}`, chat(i)));
    sut.handle('b', text('B0', chat(0)));
    sut.handle('b', text('B1', chat(1)));
    sut.handle('c', text('C0', chat(0)));
    await settle();
    expect(ai.startedIds()).toEqual(['A0', 'A1', 'A2', 'A3']);
    for (const id of ['A0', 'A1', 'A2', 'A3']) {
      ai.answer(id);
      await settle();
    }
    // Each freed slot goes to the next agent with work, round-robin, not to the agent that queued first.
    expect(ai.startedIds()).toEqual(['A0', 'A1', 'A2', 'A3', 'B0', 'C0', 'A4', 'B1']);
  });

  it("drops a flooded agent's own excess, not other agents' messages, and reports it once a minute", async () => {
    const { sut, ai, clock, reports, counted } = harness();
    const flood = 6_000;
    for (let i = 0; i < flood; i++) sut.handle('flooded', text(`F${i}`, chat(i % 200)));
    sut.handle('quiet', text('Q1', chat(0)));
    await settle();
    expect(ai.inFlight('quiet')).toEqual(['Q1']);
    const accepted = INBOUND_LIMITS.perAgentConcurrency + INBOUND_LIMITS.maxPendingPerAgent;
    expect(await counted('dropped')).toBe(flood - accepted);

    // The first drop is reported at once, in full; the rest are counted for the minute's summary.
    expect(reports()).toHaveLength(1);
    expect(reports()[0]?.agentId).toBe('flooded');
    expect(reports()[0]?.text).toBe(
      [
        '[Inbound message dropped]',
        'agent: flooded',
        `sender: ${chat(accepted % 200)}`,
        'reason: overloaded',
        `traceId: trace-${accepted + 1}`,
        `time: ${new Date(clock.now()).toISOString()}`,
        `text: text of F${accepted}`,
      ].join('\n'),
    );
    const firstAt = clock.now();
    await clock.advance(REPORT_INTERVAL_MS - 1);
    expect(reports()).toHaveLength(1);
    await clock.advance(1);
    expect(reports()).toHaveLength(2);
    expect(reports()[1]?.text).toBe(
      [
        '[Inbound report]',
        'agent: flooded',
        `since: ${new Date(firstAt).toISOString()}`,
        `time: ${new Date(firstAt + REPORT_INTERVAL_MS).toISOString()}`,
        `dropped: ${flood - accepted - 1} (overloaded ${flood - accepted - 1})`,
      ].join('\n'),
    );
    // Nothing more happened: no more reports, and no timer left behind.
    await clock.advance(10 * REPORT_INTERVAL_MS);
    expect(reports()).toHaveLength(2);
    expect(clock.pending()).toEqual([]);
    expect(reports().every((r) => r.agentId === 'flooded')).toBe(true);
  });

  it('reports a message dropped because the dedup table cannot be written', async () => {
    const { sut, reports, counted, failClaims } = harness();
    failClaims(true);
    sut.handle('agent-1', text('M1', chat(1), 'hello'));
    await sut.onIdle();
    expect(await counted('dropped')).toBe(1);
    expect(reports()).toEqual([
      expect.objectContaining({ agentId: 'agent-1', text: expect.stringContaining('reason: dedup_unavailable') }),
    ]);
  });

  it('reports a reply that could not be queued, and records it as dropped so a redelivery is tried again', async () => {
    const { sut, ai, reports, outcomes, refuseReplies } = harness();
    refuseReplies(true);
    sut.handle('agent-1', text('M1', chat(1)));
    await settle();
    ai.answer('M1');
    await sut.onIdle();
    expect(outcomes).toEqual([{ agentId: 'agent-1', id: 'M1', outcome: 'dropped' }]);
    expect(reports()).toEqual([expect.objectContaining({ text: expect.stringContaining('reason: reply_not_queued') })]);
  });

  it('sends the first AI failure of a minute in full and sums up the rest at the end of that minute', async () => {
    const { sut, ai, clock, reports, outcomes } = harness();
    const start = clock.now();
    for (const n of [1, 2, 3]) sut.handle('agent-1', text(`M${n}`, chat(n)));
    await settle();
    ai.fail('M1', 'AI_TIMEOUT');
    ai.fail('M2');
    ai.fail('M3', 'AI_TIMEOUT');
    await sut.onIdle();
    expect(outcomes.map((o) => o.outcome)).toEqual(['ai_error', 'ai_error', 'ai_error']);
    expect(reports().map((r) => r.text.split('\n')[0])).toEqual(['[AI failure]']);
    expect(reports()[0]?.text).toContain('reason: TIMEOUT');
    await clock.advance(REPORT_INTERVAL_MS);
    expect(reports()[1]?.text).toBe(
      [
        '[Inbound report]',
        'agent: agent-1',
        `since: ${new Date(start).toISOString()}`,
        `time: ${new Date(start + REPORT_INTERVAL_MS).toISOString()}`,
        'AI failures: 2 (ERROR 1, TIMEOUT 1)',
      ].join('\n'),
    );
    // A new minute: the next failure is reported at once again.
    await clock.advance(REPORT_INTERVAL_MS);
    sut.handle('agent-1', text('M4', chat(4)));
    await settle();
    ai.fail('M4');
    await sut.onIdle();
    expect(reports()).toHaveLength(3);
    expect(reports()[2]?.text).toContain('[AI failure]');
  });

  it('sends the summary still counting when it closes', async () => {
    const { sut, ai, reports, clock } = harness();
    for (const n of [1, 2]) sut.handle('agent-1', text(`M${n}`, chat(n)));
    await settle();
    ai.fail('M1');
    ai.fail('M2');
    await sut.onIdle();
    expect(reports()).toHaveLength(1);
    await sut.close();
    expect(reports()).toHaveLength(2);
    expect(reports()[1]?.text).toContain('AI failures: 1 (ERROR 1)');
    expect(clock.pending()).toEqual([]);
  });
});

describe('InboundService message store and history', () => {
  it('stores the messages that go to no claim, with why, and claims (and so stores) the others', async () => {
    const { sut, ai, records, claims } = harness();
    sut.handle('agent', { ...text('OWN', chat(1)), fromMe: true });
    sut.handle('agent', { ...text('IMG', chat(1)), type: 'image' });
    sut.handle('agent', text('ASK', chat(1)));
    await settle();
    expect(records).toEqual([
      { agentId: 'agent', id: 'OWN', outcome: 'ignored' },
      { agentId: 'agent', id: 'IMG', outcome: 'ignored' },
    ]);
    expect(claims).toEqual(['ASK']);
    ai.answer('ASK');
    await sut.onIdle();
  });

  it('sends the chat history as metadata.history when asked, and the request without it when it cannot be read', async () => {
    const asked: Array<{ chatJid: string; excludeId: string; limit: number }> = [];
    let fails = false;
    const requests: AiRequest[] = [];
    const ai: AiCaller = {
      async execute(request) {
        requests.push(request);
        return { reply: null, latencyMs: 1 };
      },
    };
    const { sut } = harness({
      ai,
      history: {
        limit: 2,
        reader: {
          async recentForAi(_agentId, chatJid, { excludeId, limit }) {
            asked.push({ chatJid, excludeId, limit });
            if (fails) throw new Error('database unavailable');
            return [{ direction: 'in', text: 'earlier', timestamp: '2026-11-25T11:00:00.000Z' }];
          },
        },
      },
    });
    sut.handle('agent', text('M1', chat(1)));
    await sut.onIdle();
    fails = true;
    sut.handle('agent', text('M2', chat(1)));
    await sut.onIdle();
    expect(asked).toEqual([
      { chatJid: chat(1), excludeId: 'M1', limit: 2 },
      { chatJid: chat(1), excludeId: 'M2', limit: 2 },
    ]);
    expect(requests[0]?.metadata).toMatchObject({
      history: [{ direction: 'in', text: 'earlier', timestamp: '2026-11-25T11:00:00.000Z' }],
    });
    expect(requests[1]?.metadata).not.toHaveProperty('history');
  });
});
