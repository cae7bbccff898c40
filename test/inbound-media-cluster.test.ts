// Inbound files in a cluster: the file lies on the disk of the member that ran the session; a link that lands on
// another member (as a load balancer sends it anywhere) is served through it, and answers 404 once that member is gone.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../scripts/service-process.js';
import type { AiAttachment } from '../src/ai/ai-client.js';
import { type Database, openDatabase } from '../src/db/client.js';
import { type AiServer, startAiServer } from './helpers/ai-server.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { createTestDatabase, type TestDatabase, usingPostgres } from './helpers/database.js';

const HOST = '127.0.0.1';

describe.skipIf(!usingPostgres())('inbound media on two members', () => {
  let db: TestDatabase;
  let second: Database;
  let ai: AiServer;
  const apps: TestApp[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    second = await openDatabase({ url: db.url ?? '', poolSize: 5 });
    ai = await startAiServer({ kind: 'json', body: {} });
  });
  afterAll(async () => {
    for (const app of apps) await app.close();
    await ai?.close();
    await second?.close();
    await db?.drop();
  });

  it('serves a file from the member whose disk holds it, through any member, and 404 once it is gone', async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    const [baseA, baseB] = [`http://${HOST}:${portA}`, `http://${HOST}:${portB}`];
    // The links point at B: as behind a load balancer, the AI's fetch lands on a member that does not have the file.
    const start = async (id: string, database: Database, port: number, base: string) => {
      const t = await createTestApp({
        database,
        env: { INSTANCE_ID: id, INSTANCE_URL: base, APP_BASE_URL: baseB, AI_BACKEND_URL: ai.url, LEASE_TTL_MS: '3000' },
      });
      await t.app.listen({ port, host: HOST });
      apps.push(t);
      return t;
    };
    const a = await start('media-a', db.database, portA, baseA);
    await start('media-b', second, portB, baseB);

    const agentId = 'media-cluster-bot';
    const created = await a.app.inject({
      method: 'POST',
      url: '/sessions',
      headers: a.admin,
      payload: { userId: 'user-1', agentId, agentName: 'Bot', apikey: 'key-media-cluster-0123' },
    });
    expect(created.statusCode).toBe(200);
    expect(
      (await a.app.inject({ method: 'POST', url: `/sandbox/agents/${agentId}/scan`, headers: a.admin })).statusCode,
    ).toBe(200);
    expect(a.container.cluster.epochOf(agentId)).not.toBeNull();

    const voice = randomBytes(20_000);
    const delivered = await a.app.inject({
      method: 'POST',
      url: `/sandbox/agents/${agentId}/inbound`,
      headers: a.admin,
      payload: {
        from: '6281234567890',
        type: 'audio',
        media: { data: voice.toString('base64'), mimeType: 'audio/ogg' },
      },
    });
    expect(delivered.statusCode).toBe(200);
    await a.container.inbound.onIdle();
    const [attachment] = (ai.requests[0]?.body as { attachments: AiAttachment[] } | undefined)?.attachments ?? [];
    const url = attachment?.url ?? '';
    expect(url.startsWith(`${baseB}/media/`)).toBe(true);

    // B has no such file on its disk: it streams it from A.
    const viaB = await fetch(url);
    expect(viaB.status).toBe(200);
    expect(viaB.headers.get('content-type')).toBe('audio/ogg');
    expect(Buffer.from(await viaB.arrayBuffer()).equals(voice)).toBe(true);
    // A tampered link is refused by B itself, before anything is forwarded.
    const tampered = url.replace(/sig=(.)/, (_match, first: string) => `sig=${first === 'A' ? 'B' : 'A'}`);
    expect((await fetch(tampered)).status).toBe(403);

    // A leaves the cluster; its disk is out of reach: the link finds nothing.
    await a.close();
    apps.splice(apps.indexOf(a), 1);
    const afterwards = await fetch(url);
    expect(afterwards.status).toBe(404);
  });
});
