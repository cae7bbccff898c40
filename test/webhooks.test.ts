// Webhooks through the whole app: endpoints over HTTP, events from the real state changes (the sandbox plays
// WhatsApp), deliveries to real receivers on 127.0.0.1 whose signatures the Standard Webhooks library verifies.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, createTestDataDir, removeDir, type TestApp, useTestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { type ConnectedAgent, connectAgent, sendText, until } from './helpers/messaging.js';
import {
  type ReceivedWebhook,
  startWebhookReceiver,
  verify,
  type WebhookReceiver,
} from './helpers/webhook-receiver.js';

const USER = '6281234567890';
const ENV = { WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' };

interface Created {
  id: string;
  secret: string;
  agentId: string | null;
  events: string[] | null;
}

describe('webhooks', () => {
  let db: TestDatabase;
  let dataDir: string;
  let t: TestApp;
  const receivers: WebhookReceiver[] = [];
  let seq = 0;

  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = await createTestDataDir();
    t = await createTestApp({ database: db.database, dataDir, env: ENV });
  });
  afterAll(async () => {
    for (const receiver of receivers) await receiver.close();
    await t.close();
    await db.drop();
    await removeDir(dataDir);
  });

  const receiver = async (behaviour: Parameters<typeof startWebhookReceiver>[0] = 200) => {
    const started = await startWebhookReceiver(behaviour);
    receivers.push(started);
    return started;
  };
  /** An agent whose session exists (not connected yet), with its key. */
  const newAgent = async (prefix: string): Promise<ConnectedAgent> => {
    const agentId = `${prefix}-${++seq}`;
    const apikey = `key-${agentId}-0123456789`;
    const created = await t.app.inject({
      method: 'POST',
      url: '/sessions',
      headers: t.admin,
      payload: { userId: `user-${agentId}`, agentId, agentName: agentId, apikey },
    });
    expect(created.statusCode).toBe(200);
    return { agentId, auth: { authorization: `Bearer ${apikey}` } };
  };
  const scan = async (agent: ConnectedAgent) => {
    const scanned = await t.app.inject({
      method: 'POST',
      url: `/sandbox/agents/${agent.agentId}/scan`,
      headers: t.admin,
      payload: {},
    });
    expect(scanned.statusCode).toBe(200);
    await until(() => t.container.supervisor.snapshot(agent.agentId).sessionState === 'connected');
  };
  const createHook = async (agent: ConnectedAgent, body: Record<string, unknown>): Promise<Created> => {
    const res = await t.app.inject({
      method: 'POST',
      url: `/agents/${agent.agentId}/webhooks`,
      headers: agent.auth,
      payload: body,
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json().data;
  };
  const inbound = async (agent: ConnectedAgent, text: string, from = USER) => {
    const res = await t.app.inject({
      method: 'POST',
      url: `/sandbox/agents/${agent.agentId}/inbound`,
      headers: t.admin,
      payload: { from, text },
    });
    expect(res.statusCode).toBe(200);
    await t.container.inbound.onIdle();
    return res.json().data.messageId as string;
  };
  const deliveries = async (agent: ConnectedAgent, hookId: string) => {
    const res = await t.app.inject({
      method: 'GET',
      url: `/agents/${agent.agentId}/webhooks/${hookId}/deliveries?limit=200`,
      headers: agent.auth,
    });
    expect(res.statusCode).toBe(200);
    return res.json().data.items as Array<{
      id: string;
      eventId: string;
      type: string;
      status: string;
      attempts: number;
      lastStatusCode: number | null;
    }>;
  };
  const ofType = (items: ReceivedWebhook[], type: string) => items.filter((r) => r.event.type === type);

  it('creates, lists, reads, changes and deletes endpoints; the secret is shown once; other agents get 403', async () => {
    const agent = await newAgent('crud');
    const other = await newAgent('crud-other');
    const hook = await createHook(agent, {
      url: 'http://127.0.0.1:9/hook',
      events: ['message.received'],
      description: 'd',
    });
    expect(hook.id).toMatch(/^wh_/);
    expect(hook.secret).toMatch(/^whsec_/);
    expect(hook).toMatchObject({
      agentId: agent.agentId,
      events: ['message.received'],
      enabled: true,
      description: 'd',
    });

    const list = await t.app.inject({ method: 'GET', url: `/agents/${agent.agentId}/webhooks`, headers: agent.auth });
    expect(list.statusCode).toBe(200);
    expect(list.json().data.items.map((w: Created) => w.id)).toEqual([hook.id]);
    expect(list.body).not.toContain(hook.secret);
    const one = await t.app.inject({
      method: 'GET',
      url: `/agents/${agent.agentId}/webhooks/${hook.id}`,
      headers: t.admin,
    });
    expect(one.statusCode).toBe(200);
    expect(one.json().data).not.toHaveProperty('secret');

    const patched = await t.app.inject({
      method: 'PATCH',
      url: `/agents/${agent.agentId}/webhooks/${hook.id}`,
      headers: agent.auth,
      payload: { events: null, enabled: false },
    });
    expect(patched.statusCode).toBe(200);
    expect(patched.json().data).toMatchObject({ events: null, enabled: false });

    // Another agent's key: 403 on its routes; its own routes do not see the endpoint.
    for (const method of ['GET', 'PATCH', 'DELETE'] as const) {
      const res = await t.app.inject({
        method,
        url: `/agents/${agent.agentId}/webhooks/${hook.id}`,
        headers: other.auth,
        ...(method === 'PATCH' ? { payload: { enabled: true } } : {}),
      });
      expect(res.statusCode).toBe(403);
    }
    const foreign = await t.app.inject({
      method: 'GET',
      url: `/agents/${other.agentId}/webhooks/${hook.id}`,
      headers: other.auth,
    });
    expect(foreign.statusCode).toBe(404);
    // Admin-level endpoints take the admin key only.
    const adminOnly = await t.app.inject({ method: 'GET', url: '/webhooks', headers: agent.auth });
    expect([401, 403]).toContain(adminOnly.statusCode);

    const deleted = await t.app.inject({
      method: 'DELETE',
      url: `/agents/${agent.agentId}/webhooks/${hook.id}`,
      headers: agent.auth,
    });
    expect(deleted.statusCode).toBe(200);
    const gone = await t.app.inject({
      method: 'GET',
      url: `/agents/${agent.agentId}/webhooks/${hook.id}`,
      headers: agent.auth,
    });
    expect(gone.statusCode).toBe(404);

    // Deleting the agent deletes its endpoints.
    await createHook(other, { url: 'http://127.0.0.1:9/hook' });
    const removed = await t.app.inject({ method: 'DELETE', url: `/sessions/${other.agentId}`, headers: t.admin });
    expect(removed.statusCode).toBe(200);
    const left = await db.database.query('SELECT id FROM webhook_endpoints WHERE agent_id = $1', [other.agentId]);
    expect(left).toEqual([]);
  });

  it('delivers every event type in the envelope, signed; rotation signs with both secrets; a ping', async () => {
    const r = await receiver();
    const admin = await receiver();
    const agent = await newAgent('events');
    const hook = await createHook(agent, { url: r.url });
    const adminRes = await t.app.inject({
      method: 'POST',
      url: '/webhooks',
      headers: t.admin,
      payload: { url: admin.url },
    });
    expect(adminRes.statusCode).toBe(201);
    const adminHook: Created = adminRes.json().data;
    expect(adminHook.agentId).toBeNull();

    await scan(agent);
    const messageId = await inbound(agent, 'hello');
    const sent = await sendText(t, agent, { to: USER, message: 'reply' });
    expect(sent.statusCode).toBe(200);
    const { messageId: outboxId, waMessageId } = sent.json().data as { messageId: string; waMessageId: string };
    const ack = await t.app.inject({
      method: 'POST',
      url: `/sandbox/agents/${agent.agentId}/ack`,
      headers: t.admin,
      payload: { waMessageId, status: 'delivered' },
    });
    expect(ack.statusCode).toBe(200);
    const fail = await t.app.inject({
      method: 'POST',
      url: `/sandbox/agents/${agent.agentId}/fail-sends`,
      headers: t.admin,
      payload: { count: 1, reason: 'not_on_whatsapp' },
    });
    expect(fail.statusCode).toBe(200);
    await sendText(t, agent, { to: '6281200000001', message: 'to nobody' });

    const types = [
      'session.status',
      'message.received',
      'ai.failed',
      'message.sent',
      'message.status',
      'message.failed',
    ];
    await until(() => types.every((type) => ofType(r.received, type).length > 0), 15_000);
    for (const delivery of r.received) {
      expect(verify(hook.secret, delivery)).toBeTruthy();
      expect(delivery.headers['webhook-id']).toBe(delivery.event.id);
      expect(delivery.event).toMatchObject({ agentId: agent.agentId, timestamp: expect.any(String) });
    }
    expect(ofType(r.received, 'session.status')[0]?.event.data).toMatchObject({ status: 'connected' });
    expect(ofType(r.received, 'message.received')[0]?.event.data).toMatchObject({ messageId, text: 'hello' });
    expect(ofType(r.received, 'message.sent')[0]?.event.data).toMatchObject({ messageId: outboxId, waMessageId });
    expect(ofType(r.received, 'message.status')[0]?.event.data).toMatchObject({
      messageId: outboxId,
      status: 'delivered',
    });
    expect(ofType(r.received, 'message.failed')[0]?.event.data).toMatchObject({ error: expect.any(String) });
    expect(ofType(r.received, 'ai.failed')[0]?.event.data).toMatchObject({ messageId });
    // The admin-level endpoint gets the same events, with its own secret.
    await until(() =>
      types.every((type) => ofType(admin.received, type).some((d) => d.event.agentId === agent.agentId)),
    );
    for (const delivery of admin.received) expect(verify(adminHook.secret, delivery)).toBeTruthy();

    // Rotation: the new secret is shown once; old and new both verify during the grace period.
    const rotated = await t.app.inject({
      method: 'POST',
      url: `/agents/${agent.agentId}/webhooks/${hook.id}/rotate-secret`,
      headers: agent.auth,
    });
    expect(rotated.statusCode).toBe(200);
    const { secret } = rotated.json().data;
    expect(secret).toMatch(/^whsec_/);
    expect(secret).not.toBe(hook.secret);
    const ping = await t.app.inject({
      method: 'POST',
      url: `/agents/${agent.agentId}/webhooks/${hook.id}/test`,
      headers: agent.auth,
    });
    expect(ping.statusCode).toBe(202);
    await until(() => ofType(r.received, 'webhook.test').length === 1);
    const [pinged] = ofType(r.received, 'webhook.test');
    if (!pinged) throw new Error('no ping');
    expect(verify(secret, pinged)).toBeTruthy();
    expect(verify(hook.secret, pinged)).toBeTruthy();
    expect(String(pinged.headers['webhook-signature']).split(' ')).toHaveLength(2);
  }, 30_000);

  it('delivers everything after a receiver comes back, in order per chat, none twice; 410 is not retried; retry', async () => {
    const r = await receiver();
    // The first two requests fail (down), the rest succeed.
    r.respond((index) => (index < 2 ? 503 : 200));
    const agent = await newAgent('order');
    const hook = await createHook(agent, { url: r.url, events: ['message.received'] });
    await scan(agent);
    const chats = ['6281200000011', '6281200000012'];
    const sentIds: Record<string, string[]> = {};
    for (let i = 0; i < 4; i++) {
      for (const chat of chats) {
        const id = await inbound(agent, `m${i}`, chat);
        sentIds[chat] = [...(sentIds[chat] ?? []), id];
      }
    }
    await until(() => r.accepted().length === 8, 20_000);
    for (const chat of chats) {
      const order = r
        .accepted()
        .filter((d) => d.event.data.chatId === `${chat}@c.us`)
        .map((d) => d.event.data.messageId);
      expect(order).toEqual(sentIds[chat]);
    }
    const ids = r.accepted().map((d) => d.event.id);
    expect(new Set(ids).size).toBe(8);
    // The receiver answers before the outcome is written.
    await until(async () => (await deliveries(agent, hook.id)).every((d) => d.status === 'delivered'));
    const items = await deliveries(agent, hook.id);
    expect(items).toHaveLength(8);
    // Pages of 3, newest first, through nextCursor: every delivery once.
    const paged: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = `?limit=3${cursor ? `&cursor=${cursor}` : ''}&status=delivered`;
      const page = await t.app.inject({
        method: 'GET',
        url: `/agents/${agent.agentId}/webhooks/${hook.id}/deliveries${query}`,
        headers: agent.auth,
      });
      expect(page.statusCode).toBe(200);
      paged.push(...page.json().data.items.map((d: { id: string }) => d.id));
      cursor = page.json().data.nextCursor;
    } while (cursor);
    expect(paged).toEqual(items.map((d) => d.id));
    // A cursor no page could have returned (past bigint) is refused, not a 500.
    const beyond = await t.app.inject({
      method: 'GET',
      url: `/agents/${agent.agentId}/webhooks/${hook.id}/deliveries?cursor=9999999999999999999`,
      headers: agent.auth,
    });
    expect(beyond.statusCode, beyond.body).toBe(400);
    for (const cursor of ['abc', '12a', '1.5', '-1']) {
      const refused = await t.app.inject({
        method: 'GET',
        url: `/agents/${agent.agentId}/webhooks/${hook.id}/deliveries?cursor=${cursor}`,
        headers: agent.auth,
      });
      expect(refused.statusCode, `${cursor}: ${refused.body}`).toBe(400);
    }
    // Every request beyond one per event is a recorded attempt.
    expect(items.reduce((sum, d) => sum + d.attempts, 0)).toBe(r.received.length);

    // 410: failed at once, never retried.
    r.respond(410);
    const gone = await inbound(agent, 'gone', chats[0]);
    await until(async () => (await deliveries(agent, hook.id)).some((d) => d.status === 'failed'));
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const failed = (await deliveries(agent, hook.id)).find((d) => d.status === 'failed');
    expect(failed).toMatchObject({ attempts: 1, lastStatusCode: 410 });
    expect(r.received.filter((d) => d.event.data.messageId === gone)).toHaveLength(1);

    // Retry: attempted again now, with the same webhook-id.
    r.respond(200);
    const retried = await t.app.inject({
      method: 'POST',
      url: `/agents/${agent.agentId}/webhooks/${hook.id}/deliveries/${failed?.id}/retry`,
      headers: agent.auth,
    });
    expect(retried.statusCode).toBe(202);
    await until(() => r.accepted().some((d) => d.event.data.messageId === gone));
    const both = r.received.filter((d) => d.event.data.messageId === gone);
    expect(both).toHaveLength(2);
    expect(both[0]?.headers['webhook-id']).toBe(both[1]?.headers['webhook-id']);
  }, 40_000);

  it('a slow, hanging or 10 MB receiver does not hold up another endpoint', async () => {
    const hanging = await receiver('hang');
    const huge = await receiver('huge');
    const fast = await receiver();
    const agent = await newAgent('slow');
    await createHook(agent, { url: hanging.url, events: ['message.received'] });
    const hugeHook = await createHook(agent, { url: huge.url, events: ['message.received'] });
    await createHook(agent, { url: fast.url, events: ['message.received'] });
    await scan(agent);
    const started = Date.now();
    for (let i = 0; i < 3; i++) await inbound(agent, `s${i}`, `62812000002${i}`);
    await until(() => fast.accepted().length === 3 && huge.received.length === 3, 8_000);
    expect(Date.now() - started).toBeLessThan(8_000);
    await until(async () => (await deliveries(agent, hugeHook.id)).every((d) => d.status === 'delivered'));
    expect(hanging.received.length).toBeGreaterThan(0);
    // The hanging receiver's connections are cut, so its attempts end now rather than at their timeout.
    await hanging.close();
  }, 20_000);

  it('loses nothing across a restart between an event and its delivery', async () => {
    const r = await receiver(500);
    const agent = await newAgent('restart');
    const hook = await createHook(agent, { url: r.url, events: ['message.received'] });
    await scan(agent);
    const messageId = await inbound(agent, 'before the restart');
    await until(() => r.received.length >= 1);
    await t.close();
    r.respond(200);
    t = await createTestApp({ database: db.database, dataDir, env: ENV });
    await until(() => r.accepted().some((d) => d.event.data.messageId === messageId), 15_000);
    expect(r.accepted()).toHaveLength(1);
    await until(async () => (await deliveries(agent, hook.id))[0]?.status === 'delivered');
    const [delivery] = await deliveries(agent, hook.id);
    expect(delivery).toMatchObject({ status: 'delivered', attempts: r.received.length });
  }, 30_000);
});

describe('webhook URLs', () => {
  const fixture = useTestApp();

  it('refuses private and loopback addresses without WEBHOOK_ALLOW_PRIVATE_NETWORKS', async () => {
    const { t } = fixture;
    const agent = await connectAgent(t, 'ssrf-bot');
    for (const url of [
      'http://127.0.0.1:8080/hook',
      'http://169.254.169.254/',
      'http://10.0.0.1/',
      'ftp://example.com/',
    ]) {
      const res = await t.app.inject({
        method: 'POST',
        url: `/agents/${agent.agentId}/webhooks`,
        headers: agent.auth,
        payload: { url },
      });
      expect(res.statusCode, url).toBe(400);
    }
    const admin = await t.app.inject({
      method: 'POST',
      url: '/webhooks',
      headers: t.admin,
      payload: { url: 'http://localhost:3000/' },
    });
    expect(admin.statusCode).toBe(400);
  });
});
