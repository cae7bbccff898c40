// Delivery and read receipts over HTTP: the sandbox reports them (POST /sandbox/agents/{agentId}/ack), they land on
// the outbox row, GET /agents/{agentId}/messages/{messageId} shows them, and /metrics counts them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { type FaultyDatabase, faultyDatabase } from './helpers/faulty-database.js';
import { type ConnectedAgent, connectAgent, sendText, until } from './helpers/messaging.js';

const NO_RECEIPTS = { server: null, delivered: null, read: null, played: null, error: null, errorAt: null };
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe('receipts of sent messages', () => {
  let db: TestDatabase;
  let faulty: FaultyDatabase;
  let t: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase();
    faulty = faultyDatabase(db.database);
    t = await createTestApp({ database: faulty.database });
  });
  afterAll(async () => {
    faulty?.release();
    faulty?.heal();
    await t?.close();
    await db?.drop();
  });

  const send = async (agent: ConnectedAgent, message = 'halo') => {
    const res = await sendText(t, agent, { to: '6281234567890', message });
    expect(res.statusCode).toBe(200);
    return res.json().data as { messageId: string; waMessageId: string };
  };
  const ack = (agentId: string, payload: Record<string, unknown>) =>
    t.app.inject({ method: 'POST', url: `/sandbox/agents/${agentId}/ack`, headers: t.admin, payload });
  const receipts = async (agent: ConnectedAgent, messageId: string) => {
    const res = await t.app.inject({
      method: 'GET',
      url: `/agents/${agent.agentId}/messages/${messageId}`,
      headers: agent.auth,
    });
    expect(res.statusCode).toBe(200);
    return res.json().data.receipts as Record<keyof typeof NO_RECEIPTS, string | null>;
  };
  const row = async (messageId: string) =>
    (
      await db.database.query(
        'SELECT status, wa_message_id, delivered_at, read_at FROM outbox_messages WHERE id = $1',
        [messageId],
      )
    )[0];
  const acksCounted = async (status: string): Promise<number> => {
    const body = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
    return Number(
      body.match(new RegExp(`^whatsapp_message_acks_total\\{status="${status}"\\} (\\d+)$`, 'm'))?.[1] ?? 0,
    );
  };

  it('shows no receipts until WhatsApp gives one, then each with its time, after the sent row', async () => {
    const agent = await connectAgent(t, 'receipts-bot');
    const { messageId, waMessageId } = await send(agent);
    expect(await receipts(agent, messageId)).toEqual(NO_RECEIPTS);

    const server = await ack('receipts-bot', { waMessageId, status: 'server' });
    expect(server.statusCode).toBe(200);
    expect(server.json().data).toEqual({ waMessageId, status: 'server' });
    const first = await receipts(agent, messageId);
    expect(first).toEqual({ ...NO_RECEIPTS, server: expect.stringMatching(ISO) });

    expect((await ack('receipts-bot', { waMessageId, status: 'delivered' })).statusCode).toBe(200);
    const second = await receipts(agent, messageId);
    expect(second).toEqual({ ...first, delivered: expect.stringMatching(ISO) });
    expect(Date.parse(second.delivered ?? '')).toBeGreaterThanOrEqual(Date.parse(second.server ?? ''));
    expect(await row(messageId)).toMatchObject({ status: 'sent', wa_message_id: waMessageId, read_at: null });
  });

  it('never goes back: read, then a late delivered, keeps read and the times of the first receipts', async () => {
    const agent = await connectAgent(t, 'monotonic-bot');
    const { messageId, waMessageId } = await send(agent);
    await ack('monotonic-bot', { waMessageId, status: 'read' });
    const read = await receipts(agent, messageId);
    // A read message was delivered and reached the server: both take the read's time, as nothing earlier came.
    expect(read).toEqual({
      ...NO_RECEIPTS,
      server: expect.stringMatching(ISO),
      delivered: read.read,
      read: expect.stringMatching(ISO),
    });
    expect(read.server).toBe(read.read);
    await new Promise((resolve) => setTimeout(resolve, 5));
    await ack('monotonic-bot', { waMessageId, status: 'delivered' });
    await ack('monotonic-bot', { waMessageId, status: 'read' });
    expect(await receipts(agent, messageId)).toEqual(read);
    await ack('monotonic-bot', { waMessageId, status: 'played' });
    const played = await receipts(agent, messageId);
    expect(played).toEqual({ ...read, played: expect.stringMatching(ISO) });
    expect(played.played).not.toBe(read.read);
  });

  it('records the error WhatsApp reports, once', async () => {
    const agent = await connectAgent(t, 'error-bot');
    const { messageId, waMessageId } = await send(agent);
    await ack('error-bot', { waMessageId, status: 'error', error: 'recipient device unreachable' });
    await ack('error-bot', { waMessageId, status: 'error', error: 'another error' });
    expect(await receipts(agent, messageId)).toEqual({
      ...NO_RECEIPTS,
      error: 'recipient device unreachable',
      errorAt: expect.stringMatching(ISO),
    });
  });

  it('keeps a receipt that arrives before the sent row is written, and records it once the row is', async () => {
    const agent = await connectAgent(t, 'early-bot');
    // The send's outcome is written behind it: hold that write (its statement carries the outcome).
    faulty.hold('outbox_write', 1);
    const { messageId, waMessageId } = await send(agent);
    await until(() => faulty.held === 1);
    expect(await row(messageId)).toMatchObject({ status: 'queued', wa_message_id: null });

    expect((await ack('early-bot', { waMessageId, status: 'delivered' })).statusCode).toBe(200);
    expect((await ack('early-bot', { waMessageId, status: 'read' })).statusCode).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await row(messageId)).toMatchObject({ status: 'queued', delivered_at: null, read_at: null });

    faulty.release();
    const seen = await receipts(agent, messageId);
    expect(seen).toEqual({
      ...NO_RECEIPTS,
      server: expect.stringMatching(ISO),
      delivered: expect.stringMatching(ISO),
      read: expect.stringMatching(ISO),
    });
    expect(await row(messageId)).toMatchObject({ status: 'sent', wa_message_id: waMessageId });
  });

  it('keeps a receipt whose sent row could not be written yet (the database failed), and records it later', async () => {
    const agent = await connectAgent(t, 'late-row-bot');
    faulty.fail('outbox_write', 1);
    const { messageId, waMessageId } = await send(agent);
    expect((await ack('late-row-bot', { waMessageId, status: 'delivered' })).statusCode).toBe(200);
    // The outcome is written again after its backoff, and the receipt tried again after its own.
    await until(async () => (await receipts(agent, messageId)).delivered !== null);
    expect(await row(messageId)).toMatchObject({ status: 'sent', wa_message_id: waMessageId });
    expect(await receipts(agent, messageId)).toEqual({
      ...NO_RECEIPTS,
      server: expect.stringMatching(ISO),
      delivered: expect.stringMatching(ISO),
    });
  });

  it('answers 404 for a message the agent did not send, 400 for a bad body, 409 without a session', async () => {
    const agent = await connectAgent(t, 'checks-bot');
    const { waMessageId } = await send(agent);
    const unknown = await ack('checks-bot', { waMessageId: 'true_6281234567890@c.us_NOPE', status: 'read' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('MESSAGE_NOT_FOUND');
    // Another agent's message is not this one's.
    await connectAgent(t, 'other-bot');
    expect((await ack('other-bot', { waMessageId, status: 'read' })).statusCode).toBe(404);

    for (const payload of [
      { waMessageId, status: 'seen' },
      { waMessageId, status: 2 },
      { waMessageId },
      { status: 'read' },
      { waMessageId: '', status: 'read' },
    ]) {
      const bad = await ack('checks-bot', payload);
      expect(bad.statusCode, JSON.stringify(payload)).toBe(400);
      expect(bad.json().error.code).toBe('INVALID_PAYLOAD');
    }
    const created = await t.app.inject({
      method: 'POST',
      url: '/sessions',
      headers: t.admin,
      payload: { userId: 'user-idle', agentId: 'idle-bot', agentName: 'idle-bot', apikey: 'key-idle-bot-0123456789' },
    });
    expect(created.statusCode).toBe(200);
    expect((await ack('idle-bot', { waMessageId, status: 'read' })).statusCode).toBe(409);
    const anonymous = await t.app.inject({
      method: 'POST',
      url: '/sandbox/agents/checks-bot/ack',
      payload: { waMessageId, status: 'read' },
    });
    expect(anonymous.statusCode).toBe(401);
  });

  it('counts the receipts by status in /metrics', async () => {
    const agent = await connectAgent(t, 'metered-acks-bot');
    const { waMessageId } = await send(agent);
    const before = { delivered: await acksCounted('delivered'), read: await acksCounted('read') };
    await ack('metered-acks-bot', { waMessageId, status: 'delivered' });
    await ack('metered-acks-bot', { waMessageId, status: 'read' });
    await ack('metered-acks-bot', { waMessageId, status: 'read' });
    await ack('metered-acks-bot', { waMessageId: 'true_6281234567890@c.us_NOPE', status: 'read' }); // 404: none
    expect(await acksCounted('delivered')).toBe(before.delivered + 1);
    expect(await acksCounted('read')).toBe(before.read + 2);
    expect(await acksCounted('error')).toBeGreaterThanOrEqual(2);
  });
});
