// The inbound pipeline end to end below HTTP: a sandbox session, the real AI client against a local AI stub,
// the real dedup table, and a reply sender that stands in for the outbox by sending through the session.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../src/__fixtures__/fake-clock.js';
import type { AgentAiSettings, AgentDirectory, ReplySender } from '../src/ai/agent-ports.js';
import { AiClient } from '../src/ai/ai-client.js';
import { systemClock } from '../src/clock.js';
import { PURGE_INTERVAL_MS, startRetention } from '../src/db/retention.js';
import type { InboundMessage } from '../src/engines/engine.js';
import { SandboxEngine } from '../src/engines/sandbox/sandbox.engine.js';
import { AppError } from '../src/errors.js';
import { InboundRepository } from '../src/inbound/inbound.repository.js';
import { InboundService } from '../src/inbound/inbound.service.js';
import { createLogger } from '../src/observability/logger.js';
import { createMetrics, type Metrics } from '../src/observability/metrics.js';
import { type AiBehaviour, type AiServer, refusedUrl, replyWith, startAiServer } from './helpers/ai-server.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

/** Generous: a loaded CI machine must not turn a slow poll into a failure. */
const POLL = { timeout: 10_000, interval: 20 };

const AGENT = 'bot-1';
const BOT_PHONE = '6281100000000';
const BOT_LID = '99887766554433@lid';
const USER = '6281234567890@c.us';
const OTHER_USER = '6281234500000@c.us';
const GROUP = '120363025000000001@g.us';
const DEVELOPER = '6289900000000';
const NOW = new Date('2026-11-25T12:00:00.000Z');

type Delivery = Omit<InboundMessage, 'id'> & { id?: string };
const privateText = (text: string, overrides: Partial<Delivery> = {}): Delivery => ({
  chatJid: USER,
  senderJid: USER,
  text,
  type: 'text',
  isGroup: false,
  mentions: [],
  fromMe: false,
  timestamp: NOW.getTime(),
  pushName: 'Ann',
  chatName: null,
  ...overrides,
});
/** A stored message with this id, for the repository's own tests. */
const withId = (id: string): InboundMessage => ({ ...privateText('hi'), id });
const groupText = (text: string, overrides: Partial<Delivery> = {}): Delivery =>
  privateText(text, { chatJid: GROUP, isGroup: true, chatName: 'Team', ...overrides });

describe('inbound pipeline', () => {
  let db: TestDatabase;
  let ai: AiServer;
  let engine: SandboxEngine;
  let metrics: Metrics;
  let settings: AgentAiSettings | null;
  let typingFails: boolean;
  let inbound: InboundService;
  const sendCalls: Array<{ to: string; text: string; traceId: string }> = [];

  const directory: AgentDirectory = {
    aiSettings: async () => settings,
    connection: (agentId) => {
      const session = engine.session(agentId);
      if (session?.state !== 'connected') return null;
      return {
        identity: { me: `${BOT_PHONE}@c.us`, lid: BOT_LID },
        setTyping: async (chat, typing) => {
          if (typingFails) throw new Error('typing is broken');
          await session.setTyping(chat, typing);
        },
      };
    },
  };
  /** When set, sends wait for it, as they do when the outbox's rate limit holds them. */
  let outboxGate: Promise<void> | null = null;
  /** Replies to users refused from now on, as the outbox refuses them when the agent's queue is full. */
  let outboxFull = false;
  const replies: ReplySender = {
    async sendText(agentId, to, text, { quotedMessageId, traceId }) {
      sendCalls.push({ to, text, traceId });
      if (outboxFull && to !== `${DEVELOPER}@c.us`) throw new AppError('RATE_LIMITED');
      await outboxGate;
      const session = engine.session(agentId);
      if (!session) throw new Error('no session');
      await session.sendText(to, text, { quotedMessageId });
      return { status: 'sent' };
    },
  };

  const buildInbound = (aiTimeoutMs = 2_000, perAgentConcurrency?: number) => {
    const logger = createLogger({ level: 'silent' });
    return new InboundService({
      perAgentConcurrency,
      directory,
      ai: new AiClient({ aiBackendUrl: ai.url, timeoutMs: aiTimeoutMs, metrics, logger, clock: systemClock }),
      replies,
      repository: new InboundRepository(db.database),
      metrics,
      logger,
      developerNumber: DEVELOPER,
      defaultCountryCode: '62',
      clock: new FakeClock(NOW.getTime()),
      newTraceId: (() => {
        let n = 0;
        return () => `trace-${++n}`;
      })(),
    });
  };
  const deliver = (message: Delivery) => engine.deliver(AGENT, message);
  const sent = () => engine.sent(AGENT);
  const texts = () => sent().filter((entry) => entry.kind === 'text');
  const counted = async (outcome: string) =>
    (await metrics.messagesReceived.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;

  beforeAll(async () => {
    db = await createTestDatabase();
    ai = await startAiServer();
  });
  afterAll(async () => {
    await ai.close();
    await db.drop();
  });
  beforeEach(async () => {
    engine = new SandboxEngine();
    const session = engine.createSession(AGENT);
    await session.start();
    await engine.scan(AGENT, BOT_PHONE);
    metrics = createMetrics({ perAgent: false, collectProcessMetrics: false });
    settings = { apiKey: 'agent-key-1', endpointUrlRun: null };
    typingFails = false;
    outboxGate = null;
    outboxFull = false;
    sendCalls.length = 0;
    ai.requests.length = 0;
    ai.respond(replyWith('Hello from AI'));
    inbound = buildInbound();
    session.on('message', (message) => inbound.handle(AGENT, message));
  });
  afterEach(async () => {
    await inbound.close();
    await engine.close();
  });

  it('sends a private message to the AI with the exact body and headers, replies, and clears typing', async () => {
    const id = deliver(privateText('What are your hours?'));
    await inbound.onIdle();

    expect(ai.requests).toHaveLength(1);
    const [request] = ai.requests;
    expect(request?.path).toBe(`/agents/${AGENT}/execute`);
    expect(request?.headers.authorization).toBe('Bearer agent-key-1');
    expect(request?.headers['content-type']).toBe('application/json');
    expect(request?.headers['x-request-id']).toBe('trace-1');
    expect(request?.body).toEqual({
      input: 'What are your hours?',
      parameters: { max_steps: 5 },
      session_id: '6281234567890',
      metadata: {
        whatsapp_name: 'Ann',
        chat_name: null,
        chat_jid: USER,
        sender_jid: USER,
        message_id: id,
        is_group: false,
        agent_id: AGENT,
        // One identity per person: the number, the LID where known, the JID as received.
        sender: { phone: '6281234567890', lid: null, jid: USER, pushName: 'Ann' },
      },
    });
    expect(
      sent().map(({ kind, to, typing, text, quotedMessageId }) => ({ kind, to, typing, text, quotedMessageId })),
    ).toEqual([
      { kind: 'typing', to: USER, typing: true, text: undefined, quotedMessageId: undefined },
      { kind: 'typing', to: USER, typing: false, text: undefined, quotedMessageId: undefined },
      { kind: 'text', to: USER, typing: undefined, text: 'Hello from AI', quotedMessageId: undefined },
    ]);
    expect(sendCalls[0]?.traceId).toBe('trace-1');
    expect(await counted('replied')).toBe(1);
    const rows = await db.database.query('SELECT outcome FROM inbound_messages WHERE wa_message_id = $1', [id]);
    expect(rows).toEqual([{ outcome: 'replied' }]);
  });

  it('uses endpoint_url_run when the agent has one', async () => {
    settings = { apiKey: 'agent-key-1', endpointUrlRun: `${ai.url}/custom/run` };
    deliver(privateText('hi'));
    await inbound.onIdle();
    expect(ai.requests.map((r) => r.path)).toEqual(['/custom/run']);
  });

  it.each<[string, Partial<Delivery>]>([
    ['the bot JID', { mentions: [`${BOT_PHONE}@c.us`] }],
    ['the bot LID', { mentions: [BOT_LID] }],
    ['the bot number in the text', { text: `@${BOT_PHONE} what is the plan?` }],
  ])('answers a group message that mentions %s, quoting it, with the group as session_id', async (_name, extra) => {
    const id = deliver(groupText('what is the plan?', { senderJid: USER, ...extra }));
    await inbound.onIdle();
    expect(ai.requests).toHaveLength(1);
    expect(ai.requests[0]?.body).toMatchObject({
      session_id: GROUP,
      metadata: { chat_jid: GROUP, sender_jid: USER, is_group: true, chat_name: 'Team' },
    });
    expect(texts()).toEqual([expect.objectContaining({ to: GROUP, text: 'Hello from AI', quotedMessageId: id })]);
  });

  it.each<[string, Delivery]>([
    ['a group message without mention', groupText('hi all')],
    ['a group message mentioning someone else', groupText('hi', { mentions: [OTHER_USER] })],
    ['a status update', privateText('story', { chatJid: 'status@broadcast' })],
    ['a broadcast list', privateText('promo', { chatJid: '1234567890@broadcast' })],
    ['a channel post', privateText('news', { chatJid: '120363000000000000@newsletter' })],
    ['our own message', privateText('sent from the phone', { fromMe: true })],
    ['an image', privateText('caption', { type: 'image' })],
    ['a voice note', privateText('', { type: 'audio' })],
  ])('ignores %s without calling the AI', async (_name, message) => {
    deliver(message);
    await inbound.onIdle();
    expect(ai.requests).toHaveLength(0);
    expect(sent()).toEqual([]);
    expect(await counted('ignored')).toBe(1);
  });

  it('answers a message delivered twice only once, also after a restart', async () => {
    deliver(privateText('hi', { id: 'DUP1' }));
    deliver(privateText('hi', { id: 'DUP1' }));
    await inbound.onIdle();
    expect(ai.requests).toHaveLength(1);
    expect(await counted('duplicate')).toBe(1);

    // A new pipeline on the same database, as after a process restart.
    await inbound.close();
    inbound = buildInbound();
    engine
      .session(AGENT)
      ?.removeAllListeners('message')
      .on('message', (m) => inbound.handle(AGENT, m));
    deliver(privateText('hi', { id: 'DUP1' }));
    await inbound.onIdle();
    expect(ai.requests).toHaveLength(1);
    expect(texts()).toHaveLength(1);
  });

  /** A new pipeline on the same database, as after a process restart. */
  const restart = async () => {
    await inbound.close();
    inbound = buildInbound();
    engine
      .session(AGENT)
      ?.removeAllListeners('message')
      .on('message', (m) => inbound.handle(AGENT, m));
  };
  const outcomeOf = async (id: string) =>
    (await db.database.query('SELECT outcome FROM inbound_messages WHERE wa_message_id = $1', [id]))[0]?.outcome;

  it('tries again a message whose AI call failed when WhatsApp delivers it again, and answers it once', async () => {
    ai.respond({ kind: 'json', status: 500, body: {} });
    deliver(privateText('hi', { id: 'RETRY1' }));
    await inbound.onIdle();
    expect(await outcomeOf('RETRY1')).toBe('ai_error');
    expect(texts().filter((t) => t.to === USER)).toEqual([]);

    // The redelivery gets another try, and this time the AI answers.
    ai.respond(replyWith('Hello from AI'));
    deliver(privateText('hi', { id: 'RETRY1' }));
    await inbound.onIdle();
    expect(ai.requests).toHaveLength(2);
    expect(await outcomeOf('RETRY1')).toBe('replied');
    expect(texts().filter((t) => t.to === USER)).toHaveLength(1);

    // Once answered, never again: not in this process, not after a restart.
    deliver(privateText('hi', { id: 'RETRY1' }));
    await inbound.onIdle();
    await restart();
    deliver(privateText('hi', { id: 'RETRY1' }));
    await inbound.onIdle();
    expect(ai.requests).toHaveLength(2);
    expect(texts().filter((t) => t.to === USER)).toHaveLength(1);
    expect(await outcomeOf('RETRY1')).toBe('replied');
  });

  it('tries again, after a restart too, a message whose reply could not be queued', async () => {
    outboxFull = true;
    deliver(privateText('hi', { id: 'RETRY2' }));
    await inbound.onIdle();
    expect(await outcomeOf('RETRY2')).toBe('dropped');
    expect(texts().filter((t) => t.to === USER)).toEqual([]);

    outboxFull = false;
    await restart();
    deliver(privateText('hi', { id: 'RETRY2' }));
    await inbound.onIdle();
    expect(ai.requests).toHaveLength(2);
    expect(
      texts()
        .filter((t) => t.to === USER)
        .map((t) => t.text),
    ).toEqual(['Hello from AI']);
    expect(await outcomeOf('RETRY2')).toBe('replied');
  });

  it('answers three quick messages of one chat in order while another chat is not held up', async () => {
    let openGate = () => {};
    const gate = new Promise<void>((resolve) => {
      openGate = resolve;
    });
    ai.respond(async (request): Promise<AiBehaviour> => {
      const body = request.body as { input: string };
      if (body.input === 'one') await gate;
      return replyWith(`re: ${body.input}`);
    });
    deliver(privateText('one'));
    deliver(privateText('two'));
    deliver(privateText('three'));
    deliver(privateText('other', { chatJid: OTHER_USER, senderJid: OTHER_USER }));

    // The other chat is answered while the first chat's first message is still with the AI.
    await expect.poll(() => texts().map((t) => t.text), POLL).toEqual(['re: other']);
    // The two chats run side by side, so the AI may see either first; 'two' and 'three' wait behind 'one'.
    await expect
      .poll(() => ai.requests.map((r) => (r.body as { input: string }).input).sort(), POLL)
      .toEqual(['one', 'other']);

    openGate();
    await inbound.onIdle();
    expect(texts().map((t) => `${t.to} ${t.text}`)).toEqual([
      `${OTHER_USER} re: other`,
      `${USER} re: one`,
      `${USER} re: two`,
      `${USER} re: three`,
    ]);
  });

  it('does not hold up other chats while a reply waits in the outbox, and keeps that chat in order', async () => {
    await inbound.close();
    inbound = buildInbound(2_000, 1);
    engine
      .session(AGENT)
      ?.removeAllListeners('message')
      .on('message', (m) => inbound.handle(AGENT, m));
    let openOutbox = () => {};
    outboxGate = new Promise<void>((resolve) => {
      openOutbox = resolve;
    });
    ai.respond((request) => replyWith(`re: ${(request.body as { input: string }).input}`));
    deliver(privateText('one'));
    deliver(privateText('two'));
    deliver(privateText('other', { chatJid: OTHER_USER, senderJid: OTHER_USER }));
    // With one slot, the other chat still reaches the AI while the first reply is held by the outbox.
    await expect
      .poll(() => ai.requests.map((r) => (r.body as { input: string }).input), POLL)
      .toEqual(['one', 'other']);
    openOutbox();
    await inbound.onIdle();
    expect(ai.requests.map((r) => (r.body as { input: string }).input)).toEqual(['one', 'other', 'two']);
    expect(
      texts()
        .filter((t) => t.to === USER)
        .map((t) => t.text),
    ).toEqual(['re: one', 're: two']);
  });

  it('sends nothing when the AI answers without a reply, and does not report it as a failure', async () => {
    ai.respond({ kind: 'json', body: { reply: '', data: { output: '' } } });
    deliver(privateText('hi'));
    await inbound.onIdle();
    expect(texts()).toEqual([]);
    expect(await counted('no_reply')).toBe(1);
    expect(sent().map((e) => e.typing)).toEqual([true, false]);
  });

  describe('when the AI fails', () => {
    it.each<[string, () => Promise<{ behaviour?: AiBehaviour; endpoint?: string; timeoutMs?: number }>, string]>([
      ['it times out', async () => ({ behaviour: { kind: 'hang' }, timeoutMs: 150 }), 'TIMEOUT'],
      ['it answers 500', async () => ({ behaviour: { kind: 'json', status: 500, body: { reply: 'x' } } }), 'ERROR'],
      ['it answers invalid JSON', async () => ({ behaviour: { kind: 'raw', body: '{"reply": "trunc' } }), 'ERROR'],
      ['it answers an empty body', async () => ({ behaviour: { kind: 'raw', body: '' } }), 'ERROR'],
      ['the connection is refused', async () => ({ endpoint: await refusedUrl() }), 'ERROR'],
      ['it answers 50 MB', async () => ({ behaviour: { kind: 'huge', bytes: 50 * 1024 * 1024 } }), 'ERROR'],
    ])('when %s: no reply to the user, a report to the developer, typing cleared', async (_name, setup, reason) => {
      const { behaviour, endpoint, timeoutMs } = await setup();
      if (behaviour) ai.respond(behaviour);
      if (endpoint) settings = { apiKey: 'agent-key-1', endpointUrlRun: endpoint };
      if (timeoutMs) {
        await inbound.close();
        inbound = buildInbound(timeoutMs);
        engine
          .session(AGENT)
          ?.removeAllListeners('message')
          .on('message', (m) => inbound.handle(AGENT, m));
      }
      deliver(privateText('please help'));
      await inbound.onIdle();

      const out = texts();
      expect(out.filter((t) => t.to === USER)).toEqual([]);
      expect(out).toHaveLength(1);
      expect(out[0]?.to).toBe(`${DEVELOPER}@c.us`);
      expect(out[0]?.text).toBe(
        [
          '[AI failure]',
          `agent: ${AGENT}`,
          `sender: ${USER}`,
          `reason: ${reason}`,
          'traceId: trace-1',
          `time: ${NOW.toISOString()}`,
          'text: please help',
        ].join('\n'),
      );
      expect(
        sent()
          .filter((e) => e.kind === 'typing')
          .map((e) => e.typing),
      ).toEqual([true, false]);
      expect(await counted('ai_error')).toBe(1);
      const errors = (await metrics.errors.get()).values;
      expect(errors).toEqual([
        expect.objectContaining({ labels: { code: reason === 'TIMEOUT' ? 'AI_TIMEOUT' : 'AI_DOWNSTREAM_ERROR' } }),
      ]);
    });

    it('truncates the text in the developer report to 500 characters', async () => {
      ai.respond({ kind: 'json', status: 503, body: {} });
      deliver(privateText('x'.repeat(2_000)));
      await inbound.onIdle();
      const report = texts()[0]?.text ?? '';
      expect(report.endsWith(`text: ${'x'.repeat(500)}…`)).toBe(true);
    });
  });

  it('keeps going when the typing indicator fails', async () => {
    typingFails = true;
    deliver(privateText('hi'));
    await inbound.onIdle();
    expect(texts().map((t) => t.text)).toEqual(['Hello from AI']);
  });

  it('drops messages for an agent that was deleted or is not connected', async () => {
    settings = null;
    deliver(privateText('hi'));
    await inbound.onIdle();
    expect(ai.requests).toHaveLength(0);

    settings = { apiKey: 'agent-key-1', endpointUrlRun: null };
    inbound.handle('ghost-agent', { ...privateText('hi'), id: 'GHOST1' });
    await inbound.onIdle();
    expect(ai.requests).toHaveLength(0);
    expect(await counted('dropped')).toBe(2);
  });

  it('claims an id once when two claims land in the same batch, and batches outcome writes', async () => {
    const repository = new InboundRepository(db.database);
    const claims = await Promise.all([
      repository.claim(AGENT, withId('SAME1'), NOW),
      repository.claim(AGENT, withId('SAME1'), NOW),
      repository.claim(AGENT, withId('OTHER1'), NOW),
    ]);
    expect(claims).toEqual([true, false, true]);
    await Promise.all([
      repository.setOutcome(AGENT, 'SAME1', 'replied'),
      repository.setOutcome(AGENT, 'OTHER1', 'no_reply'),
    ]);
    expect(await repository.outcome(AGENT, 'SAME1')).toBe('replied');
    expect(await repository.outcome(AGENT, 'OTHER1')).toBe('no_reply');
  });

  it('lets a claim take over a message that failed or was dropped, never one answered or still under way', async () => {
    const repository = new InboundRepository(db.database);
    const outcomes = ['ai_error', 'dropped', 'replied', 'no_reply'] as const;
    for (const outcome of outcomes) {
      expect(await repository.claim(AGENT, withId(`TAKE-${outcome}`), NOW)).toBe(true);
      await repository.setOutcome(AGENT, `TAKE-${outcome}`, outcome);
    }
    expect(await repository.claim(AGENT, withId('TAKE-open'), NOW)).toBe(true);
    // All in one batch, each id twice: the first claim of a taken-over id wins, the second loses.
    const claims = await Promise.all(
      [...outcomes, 'open'].flatMap((o) => [
        repository.claim(AGENT, withId(`TAKE-${o}`), NOW),
        repository.claim(AGENT, withId(`TAKE-${o}`), NOW),
      ]),
    );
    expect(claims).toEqual([true, false, true, false, false, false, false, false, false, false]);
    expect(await repository.outcome(AGENT, 'TAKE-ai_error')).toBeNull();
    expect(await repository.outcome(AGENT, 'TAKE-dropped')).toBeNull();
    expect(await repository.outcome(AGENT, 'TAKE-replied')).toBe('replied');
  });

  /** The inbound retention job, keeping 7 days, on the test's clock. */
  const inboundRetention = (repository: InboundRepository, clock: FakeClock) =>
    startRetention({
      name: 'inbound',
      purgeBefore: (cutoff, signal) => repository.purgeBefore(cutoff, signal),
      logger: createLogger({ level: 'silent' }),
      retentionMs: 7 * 24 * 60 * 60 * 1000,
      clock,
    });

  it('stops a long purge after its current statement when the job stops (a shutdown does not wait for the backlog)', async () => {
    const repository = new InboundRepository(db.database, 1); // one row per statement
    const day = 24 * 60 * 60 * 1000;
    for (let i = 0; i < 20; i++)
      await repository.claim(AGENT, withId(`BACKLOG${i}`), new Date(NOW.getTime() - 8 * day));
    const clock = new FakeClock(NOW.getTime());
    const job = inboundRetention(repository, clock);
    const purging = job.runOnce();
    await job.stop();
    expect(await purging).toBe(1);
    const [left] = await db.database.query(
      `SELECT count(*)::int AS n FROM inbound_messages WHERE wa_message_id LIKE 'BACKLOG%'`,
    );
    expect(left?.n).toBe(19);
    await db.database.query(`DELETE FROM inbound_messages WHERE wa_message_id LIKE 'BACKLOG%'`);
  });

  it('purges dedup records past the retention period, and its job stops cleanly', async () => {
    const repository = new InboundRepository(db.database);
    const day = 24 * 60 * 60 * 1000;
    await repository.claim(AGENT, withId('OLD1'), new Date(NOW.getTime() - 8 * day));
    await repository.claim(AGENT, withId('NEW1'), new Date(NOW.getTime() - day));
    const clock = new FakeClock(NOW.getTime());
    const job = inboundRetention(repository, clock);
    expect(clock.pending()).toEqual([PURGE_INTERVAL_MS]);
    expect(await job.runOnce()).toBe(1);
    await repository.claim(AGENT, withId('OLD2'), new Date(NOW.getTime() - 8 * day));
    await clock.advance(PURGE_INTERVAL_MS); // the job's own purge
    await job.stop(); // waits for it
    expect(clock.pending()).toEqual([]);
    expect(await repository.outcome(AGENT, 'OLD2')).toBeUndefined();
    expect(await repository.outcome(AGENT, 'OLD1')).toBeUndefined();
    expect(await repository.outcome(AGENT, 'NEW1')).toBeNull();
    // A redelivery of a purged id is new again; a remembered one is not.
    expect(await repository.claim(AGENT, withId('OLD1'), NOW)).toBe(true);
    expect(await repository.claim(AGENT, withId('NEW1'), NOW)).toBe(false);
  });
});
