// The database goes away in the middle of a send load: requests get 503 DATABASE_UNAVAILABLE with Retry-After, and
// no message reaches WhatsApp without its row. On PostgreSQL the outage is real (a TCP proxy in front of the server
// resets every connection and refuses new ones); on PGlite every statement fails as a refused connection would.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Database, openDatabase } from '../src/db/client.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase, usingPostgres } from './helpers/database.js';
import { type FaultyDatabase, faultyDatabase } from './helpers/faulty-database.js';
import { type ConnectedAgent, connectAgent, sendText, sent, until } from './helpers/messaging.js';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js';

interface Answer {
  text: string;
  status: number;
  code: string | undefined;
  retryAfter: string | undefined;
  messageId: string | undefined;
}

/** How the test takes the database away and gives it back. */
interface Outage {
  database: Database;
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

async function outageOf(test: TestDatabase): Promise<Outage> {
  if (!test.url) {
    const faults: FaultyDatabase = faultyDatabase(test.database);
    return {
      database: faults.database,
      cut: async () => faults.down(),
      restore: async () => faults.heal(),
      close: async () => {},
    };
  }
  const url = new URL(test.url);
  const proxy: TcpProxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
  url.hostname = '127.0.0.1';
  url.port = String(proxy.port);
  const database = await openDatabase({ url: url.toString(), poolSize: 5, statementTimeoutMs: 2_000 });
  return {
    database,
    cut: () => proxy.cut(),
    restore: () => proxy.restore(),
    async close() {
      await database.close();
      await proxy.close();
    },
  };
}

describe('a database outage under send load', () => {
  let test: TestDatabase;
  let outage: Outage;
  let t: TestApp;
  let agents: ConnectedAgent[];

  beforeAll(async () => {
    test = await createTestDatabase();
    outage = await outageOf(test);
    t = await createTestApp({ database: outage.database, env: { SEND_WAIT_MS: '2000' } });
    agents = [await connectAgent(t, 'outage-a'), await connectAgent(t, 'outage-b')];
  });
  afterAll(async () => {
    await t?.close();
    await outage?.close();
    await test?.drop();
  });

  it('answers 503 with Retry-After while it is down, never sends a message without its row, and recovers', async () => {
    const answers: Answer[] = [];
    let counter = 0;
    const send = async (agent: ConnectedAgent) => {
      const text = `load ${counter++}`;
      const res = await sendText(t, agent, { to: '6281234567890', message: text });
      const body = res.json() as { data?: { messageId: string }; error?: { code: string } };
      answers.push({
        text,
        status: res.statusCode,
        code: body.error?.code,
        retryAfter: res.headers['retry-after'] as string | undefined,
        messageId: body.data?.messageId,
      });
    };
    // Eight senders keep requests in flight while the database goes away and comes back: each sends until the
    // phase says stop, at most 400 requests in all.
    let phase: 'before' | 'down' | 'after' | 'stop' = 'before';
    const senders = Array.from({ length: 8 }, async (_, i) => {
      const agent = agents[i % agents.length] as ConnectedAgent;
      while (phase !== 'stop' && counter < 400) await send(agent);
    });
    await until(() => answers.filter((a) => a.status === 200).length >= 40);
    await outage.cut();
    phase = 'down';
    const cutAt = answers.length;
    await until(() => answers.slice(cutAt).filter((a) => a.status === 503).length >= 40);
    const ready = await t.app.inject({ method: 'GET', url: '/health/ready' });
    expect(ready.statusCode).toBe(503);
    await outage.restore();
    phase = 'after';
    const restoredAt = answers.length;
    await until(() => answers.slice(restoredAt).filter((a) => a.status === 200).length >= 20);
    phase = 'stop';
    await Promise.all(senders);

    // Every answer is one the contract documents: sent, queued, or 503 with Retry-After. No 500.
    expect(answers.filter((a) => ![200, 202, 503].includes(a.status))).toEqual([]);
    const refused = answers.filter((a) => a.status === 503);
    expect(refused.length).toBeGreaterThanOrEqual(40);
    for (const answer of refused) expect(answer).toMatchObject({ code: 'DATABASE_UNAVAILABLE', retryAfter: '5' });

    // The outcomes of sends made while the database was away are written once it is back (retried behind).
    const rowsOf = async () =>
      test.database.query(
        `SELECT id, status, payload->>'text' AS text FROM outbox_messages WHERE agent_id = ANY($1::text[])`,
        [agents.map((a) => a.agentId)],
      );
    await until(async () => (await rowsOf()).every((row) => row.status !== 'queued'), 40_000);
    const rows = new Map((await rowsOf()).map((row) => [String(row.text), row]));
    const delivered = agents.flatMap((agent) => sent(t, agent.agentId).map((entry) => entry.text ?? ''));

    // No send without a row: every message WhatsApp got is a row, written sent.
    expect(delivered.filter((text) => rows.get(text)?.status !== 'sent')).toEqual([]);
    // A 503 means not sent: now, and after any restart (a row that committed anyway is marked failed).
    const refusedTexts = new Set(refused.map((a) => a.text));
    expect(delivered.filter((text) => refusedTexts.has(text))).toEqual([]);
    expect(refused.filter((a) => rows.has(a.text) && rows.get(a.text)?.status !== 'failed')).toEqual([]);
    // Every message answered 200 or 202 was sent, exactly once.
    const accepted = answers.filter((a) => a.status === 200 || a.status === 202);
    expect(accepted.filter((a) => rows.get(a.text)?.status !== 'sent')).toEqual([]);
    expect(new Set(delivered).size).toBe(delivered.length);
    expect(delivered.length).toBe(accepted.length);

    const health = await t.app.inject({ method: 'GET', url: '/health/ready' });
    expect(health.statusCode).toBe(200);
  }, 90_000);
});

describe.skipIf(!usingPostgres())('a database server that stops answering', () => {
  let test: TestDatabase;
  let proxy: TcpProxy;
  let database: Database;
  let t: TestApp;
  let agent: ConnectedAgent;

  beforeAll(async () => {
    test = await createTestDatabase();
    const url = new URL(test.url ?? '');
    proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
    url.hostname = '127.0.0.1';
    url.port = String(proxy.port);
    database = await openDatabase({ url: url.toString(), poolSize: 5, statementTimeoutMs: 1_000 });
    t = await createTestApp({ database, env: { DB_STATEMENT_TIMEOUT_MS: '1000', SEND_WAIT_MS: '2000' } });
    agent = await connectAgent(t, 'stalled-server');
  });
  afterAll(async () => {
    await t?.close();
    await database?.close();
    await proxy?.close();
    await test?.drop();
  });

  it('answers 503 within DB_STATEMENT_TIMEOUT_MS instead of hanging, and /health/ready too; then recovers', async () => {
    proxy.stall();
    const started = performance.now();
    const [send, ready, session] = await Promise.all([
      sendText(t, agent, { to: '6281234567890', message: 'into the void' }),
      t.app.inject({ method: 'GET', url: '/health/ready' }),
      t.app.inject({ method: 'GET', url: `/sessions/${agent.agentId}`, headers: t.admin }),
    ]);
    const elapsed = performance.now() - started;
    expect(send.statusCode).toBe(503);
    expect(send.json()).toMatchObject({ error: { code: 'DATABASE_UNAVAILABLE' } });
    expect(ready.statusCode).toBe(503);
    expect(session.statusCode).toBe(503);
    // The commit wait (1 s), and the client's read and connect timeouts (1 s past the server's statement timeout),
    // bound them all.
    expect(elapsed).toBeLessThan(4_000);
    await proxy.restore();
    expect(sent(t, agent.agentId)).toEqual([]);
    await until(async () => (await sendText(t, agent, { to: '6281234567890', message: 'back' })).statusCode === 200);
    expect(sent(t, agent.agentId).map((s) => s.text)).toEqual(['back']);
    const rows = await test.database.query(`SELECT status, payload->>'text' AS text FROM outbox_messages`);
    expect(rows.filter((row) => row.text === 'into the void' && row.status !== 'failed')).toEqual([]);
  }, 30_000);
});
