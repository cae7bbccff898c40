// Two members of one cluster in this process, each with its own pool on one PostgreSQL database and its own socket:
// what one member accepts, the owner of the session sends; session routes reach the owner wherever they land; a
// member that stops hands its sessions, and the messages they have queued, to the other.
import { createServer } from 'node:http';
import { type AddressInfo, connect as tcp } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../scripts/service-process.js';
import { type Database, openDatabase } from '../src/db/client.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase, usingPostgres } from './helpers/database.js';
import { type ConnectedAgent, sent, until } from './helpers/messaging.js';

const HOST = '127.0.0.1';

/** Sends `text` as it is to the member at `base` and reads the whole answer (the request closes the connection). */
async function rawRequest(base: string, text: string): Promise<string> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = tcp(Number(port), hostname, () => socket.write(text));
    let answer = '';
    socket.setEncoding('utf8');
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer in 10 s')));
    socket.on('data', (chunk: string) => {
      answer += chunk;
    });
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}

interface Member {
  id: string;
  t: TestApp;
  base: string;
}

describe.skipIf(!usingPostgres())('two members of one cluster', () => {
  let db: TestDatabase;
  let second: Database;
  const members: Member[] = [];

  async function startMember(id: string, database: Database, env: Record<string, string> = {}): Promise<Member> {
    const port = await freePort();
    const base = `http://${HOST}:${port}`;
    const t = await createTestApp({
      database,
      env: { INSTANCE_ID: id, INSTANCE_URL: base, LEASE_TTL_MS: '3000', SEND_WAIT_MS: '500', ...env },
    });
    await t.app.listen({ port, host: HOST });
    const member = { id, t, base };
    members.push(member);
    return member;
  }

  async function call(member: Member, method: string, url: string, headers: Record<string, string>, body?: unknown) {
    const res = await fetch(`${member.base}${url}`, {
      method,
      headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(10_000),
    });
    return { status: res.status, body: (await res.json()) as { data: Record<string, unknown> } };
  }

  /** Creates the agent through `creator` and scans its QR code through `scanner`. */
  async function connect(creator: Member, scanner: Member, agentId: string): Promise<ConnectedAgent> {
    const apikey = `key-${agentId}-0123456789`;
    const admin = creator.t.admin;
    const created = await call(creator, 'POST', '/sessions', admin, {
      userId: `user-${agentId}`,
      agentId,
      agentName: agentId,
      apikey,
    });
    expect(created.status).toBe(200);
    const scanned = await call(scanner, 'POST', `/sandbox/agents/${agentId}/scan`, admin, {});
    expect(scanned.status).toBe(200);
    return { agentId, auth: { authorization: `Bearer ${apikey}` } };
  }

  const owner = (agentId: string) => members.find((m) => m.t.container.cluster.epochOf(agentId) !== null);

  beforeAll(async () => {
    db = await createTestDatabase();
    second = await openDatabase({ url: db.url ?? '', poolSize: 5 });
  });

  afterAll(async () => {
    for (const member of members) await member.t.close();
    await second?.close();
    await db?.drop();
  });

  it('shares one generated admin key between members when ADMIN_API_KEY is not set', async () => {
    const first = await createTestApp({ database: db.database, env: { ADMIN_API_KEY: '' } });
    const other = await createTestApp({ database: second, env: { ADMIN_API_KEY: '' } });
    try {
      const stored = await db.database.query(`SELECT value FROM cluster_settings WHERE name = 'admin_api_key'`);
      expect(first.container.adminKey).toHaveLength(43);
      expect(other.container.adminKey).toBe(first.container.adminKey);
      expect(stored[0]?.value).toBe(first.container.adminKey);
      const headers = { authorization: `Bearer ${first.container.adminKey}` };
      expect((await other.app.inject({ method: 'GET', url: '/cluster', headers })).statusCode).toBe(200);
    } finally {
      await first.close();
      await other.close();
    }
  });

  it('runs a session on the member that created it; sends through either member are sent once, by it', async () => {
    const a = await startMember('member-a', db.database);
    const b = await startMember('member-b', second);
    const agent = await connect(a, b, 'two-members-bot');
    // The creator took the lease, so the scan was forwarded to it and the session runs there, and only there.
    expect(owner(agent.agentId)?.id).toBe('member-a');
    expect(a.t.container.supervisor.readySession(agent.agentId)).not.toBeNull();
    expect(b.t.container.supervisor.readySession(agent.agentId)).toBeNull();
    // Each member shows it (the other one as soon as the owner's notice arrives).
    for (const member of [a, b]) {
      await until(async () => {
        const status = await call(member, 'GET', `/sessions/${agent.agentId}`, member.t.admin);
        return status.body.data.owner === 'member-a' && (status.body.data.liveState as { isReady: boolean }).isReady;
      });
    }

    const answers = [];
    for (const [i, member] of [a, b, b, a].entries()) {
      answers.push(
        await call(member, 'POST', `/agents/${agent.agentId}/messages`, agent.auth, {
          to: '6281100000001',
          message: `hello ${i}`,
        }),
      );
    }
    // The member that did not send it answers `sent` too, with the WhatsApp id, within SEND_WAIT_MS.
    for (const answer of answers) {
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      expect(answer.body.data).toMatchObject({ status: 'sent', delivered: true });
    }
    expect(sent(a.t, agent.agentId).map((m) => m.text)).toEqual(['hello 0', 'hello 1', 'hello 2', 'hello 3']);
    expect(sent(b.t, agent.agentId)).toEqual([]);
    const waIds = answers.map((answer) => answer.body.data.waMessageId);
    expect(new Set(waIds).size).toBe(4);
    await until(async () => {
      const rows = await db.database.query(
        `SELECT status, wa_message_id FROM outbox_messages WHERE agent_id = $1 ORDER BY seq`,
        [agent.agentId],
      );
      return rows.length === 4 && rows.every((row, i) => row.status === 'sent' && row.wa_message_id === waIds[i]);
    });
  });

  it("sends a session route to its owner's address, whatever host a request line names", async () => {
    const [a, b] = members as [Member, Member];
    const agent = await connect(a, a, 'line-bot');
    expect(owner('line-bot')).toBe(a);
    // A server that must hear nothing: the cluster secret would reach it.
    const heard: string[] = [];
    const elsewhere = createServer((req, res) => {
      heard.push(`${req.method} ${req.url} ${req.headers['x-wamt-cluster-secret'] ?? ''}`);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"data":{"from":"elsewhere"}}');
    });
    await new Promise<void>((resolve) => elsewhere.listen(0, HOST, resolve));
    try {
      const { port } = elsewhere.address() as AddressInfo;
      // To the member that does not own the agent, with a whole URL on the request line.
      const answer = await rawRequest(
        b.base,
        `GET http://${HOST}:${port}/sessions/line-bot/qr.png HTTP/1.1\r\nHost: ${new URL(b.base).host}\r\n` +
          `Authorization: ${agent.auth.authorization}\r\nConnection: close\r\n\r\n`,
      );
      expect(heard).toEqual([]);
      // The owner's answer: the session is connected, so it has no QR code to show.
      expect(answer).toMatch(/^HTTP\/1\.1 (404|409) /);
      expect(answer).not.toContain('elsewhere');
    } finally {
      await new Promise((resolve) => elsewhere.close(resolve));
    }
  });

  it('a member that stops hands its session and the messages queued for it to the other, which sends them', async () => {
    const [a, b] = members as [Member, Member];
    // A slow owner: one message a minute, so that what is sent through the other member waits in the owner's queue.
    const slow = await startMember('member-slow', db.database, {
      RATE_LIMIT_PER_MINUTE: '1',
      RATE_LIMIT_BURST: '1',
    });
    const agent = await connect(slow, b, 'moving-bot');
    expect(owner(agent.agentId)?.id).toBe('member-slow');
    const answers = [];
    for (let i = 0; i < 3; i++) {
      answers.push(
        await call(b, 'POST', `/agents/${agent.agentId}/messages`, agent.auth, {
          to: '6281100000002',
          message: `queued ${i}`,
        }),
      );
    }
    expect(answers.map((answer) => answer.body.data.status)).toEqual(['sent', 'queued', 'queued']);
    expect(sent(slow.t, agent.agentId).map((m) => m.text)).toEqual(['queued 0']);

    await slow.t.close();
    members.splice(members.indexOf(slow), 1);
    // Its lease was given up at once: one of the others takes it, resumes the session from its stored login (no
    // new scan), and sends what was queued, in order.
    await until(() => owner(agent.agentId) !== undefined, 10_000);
    const next = owner(agent.agentId) as Member;
    expect([a.id, b.id]).toContain(next.id);
    await until(() => sent(next.t, agent.agentId).length === 2, 10_000);
    expect(sent(next.t, agent.agentId).map((m) => m.text)).toEqual(['queued 1', 'queued 2']);
    const rows = await db.database.query(`SELECT status FROM outbox_messages WHERE agent_id = $1 ORDER BY seq`, [
      agent.agentId,
    ]);
    await until(async () => {
      const now = await db.database.query(`SELECT status FROM outbox_messages WHERE agent_id = $1`, [agent.agentId]);
      return now.every((row) => row.status === 'sent');
    });
    expect(rows).toHaveLength(3);
  });
});
