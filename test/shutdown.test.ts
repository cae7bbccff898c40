// SIGTERM on the built service with a request in flight on a keep-alive connection: the request completes, its
// answer closes the connection, engines stop and the process exits 0 well before SHUTDOWN_TIMEOUT_MS.
import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDataDir, removeDir } from './helpers/app.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { until } from './helpers/messaging.js';

const ADMIN = 'shutdown-admin-key-0123456789';
const AGENT_KEY = 'shutdown-agent-key-0123456789';

/** A port that was free on 127.0.0.1 a moment ago. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

interface Answer {
  status: number;
  connection: string | undefined;
}

describe('SIGTERM with a request in flight on a keep-alive connection', () => {
  let test: TestDatabase;
  let dataDir: string;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    test = await createTestDatabase();
    dataDir = await createTestDataDir();
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    await test?.drop();
    await removeDir(dataDir);
  });

  it('finishes the request, closes the connection and exits 0', async () => {
    const port = await freePort();
    let output = '';
    child = spawn(process.execPath, ['dist/main.js'], {
      env: {
        PATH: process.env.PATH ?? '',
        NODE_ENV: 'production',
        HOST: '127.0.0.1',
        PORT: String(port),
        DATA_DIR: dataDir,
        // The test's database when it runs on PostgreSQL; the embedded one in DATA_DIR otherwise.
        ...(test.url ? { DB_URL: test.url } : {}),
        WA_ENGINE: 'sandbox',
        ADMIN_API_KEY: ADMIN,
        // One token: the second message waits for the refill, so its request is still open at SIGTERM.
        RATE_LIMIT_BURST: '1',
        RATE_LIMIT_PER_MINUTE: '1',
        SEND_WAIT_MS: '1500',
        SHUTDOWN_TIMEOUT_MS: '8000',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      output += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child?.on('exit', (code) => resolve(code)));

    // One connection for every request: the slow one reuses the socket the earlier ones kept alive.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const request = (method: string, path: string, body: unknown, key = ADMIN) =>
      new Promise<Answer>((resolve, reject) => {
        const req = http.request(
          {
            host: '127.0.0.1',
            port,
            method,
            path,
            agent,
            headers: {
              authorization: `Bearer ${key}`,
              ...(body === undefined ? {} : { 'content-type': 'application/json' }),
            },
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
          },
        );
        req.on('error', reject);
        req.end(body === undefined ? undefined : JSON.stringify(body));
      });

    await until(async () => {
      if (child?.exitCode !== null) throw new Error(`the service exited:\n${output}`);
      return (await request('GET', '/health/ready', undefined).catch(() => ({ status: 0 }))).status === 200;
    }, 90_000);
    const create = { userId: 'u', agentId: 'leaving', agentName: 'leaving', apikey: AGENT_KEY };
    expect((await request('POST', '/sessions', create)).status).toBe(200);
    expect((await request('POST', '/sessions/leaving/qr', undefined)).status).toBe(200);
    expect((await request('POST', '/sandbox/agents/leaving/scan', {})).status).toBe(200);
    const message = { to: '6281234567890', message: 'first' };
    await until(async () => (await request('POST', '/agents/leaving/messages', message, AGENT_KEY)).status === 200);

    const received = () => output.split('\n').filter((line) => line.includes('"url":"/agents/leaving/messages"'));
    const before = received().length;
    const slow = request('POST', '/agents/leaving/messages', { ...message, message: 'second' }, AGENT_KEY);
    // Fastify logs each request as it comes in: once it has, the request waits for the next token (a minute away).
    await until(() => received().length > before);
    const signalled = performance.now();
    child.kill('SIGTERM');
    const answer = await slow;
    expect(answer).toEqual({ status: 202, connection: 'close' });
    expect(await exited).toBe(0);
    expect(performance.now() - signalled).toBeLessThan(5_000);
    expect(output).toContain('"event":"service.stopped"');
    expect(output).not.toContain('service.shutdown_timeout');
    agent.destroy();
  }, 120_000);
});
