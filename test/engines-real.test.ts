// The real libraries against a world without WhatsApp: real Chromium with no name resolution, Baileys against a dead socket.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createBaileysEngine } from '../src/engines/baileys/baileys.engine.js';
import { nextEvent } from '../src/engines/engine.contract.js';
import type { EngineSession } from '../src/engines/engine.js';
import { findProcesses } from '../src/engines/whatsapp-web/stray-browsers.js';
import { CHROME_CANDIDATES } from '../src/engines/whatsapp-web/whatsapp-web.client.js';
import { createWhatsappWebEngine } from '../src/engines/whatsapp-web/whatsapp-web.engine.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

const logger = pino({ level: 'silent' });
const chromeWanted = process.env.CHROME_PATH ? [process.env.CHROME_PATH] : [...CHROME_CANDIDATES];
const chromePath = chromeWanted.find((candidate) => existsSync(candidate));
const noChrome = chromePath ? '' : ` — SKIPPED: no Chromium binary at ${chromeWanted.join(', ')} (install chromium)`;

describe('whatsapp-web on real Chromium, WhatsApp unreachable', () => {
  let authDir: string | undefined;
  let session: EngineSession | undefined;
  afterEach(async () => {
    await session?.stop();
    if (authDir) await rm(authDir, { recursive: true, force: true });
  });

  it.skipIf(!chromePath)(
    `reports the failure, is not connected, and leaves no Chromium behind${noChrome}`,
    async () => {
      authDir = await mkdtemp(path.join(tmpdir(), 'wamt-real-wweb-'));
      const engine = createWhatsappWebEngine({
        authDir,
        chromePath,
        logger,
        // Every host name fails to resolve, so the test means the same on a machine that does have a network.
        extraChromeArgs: ['--host-resolver-rules=MAP * ~NOTFOUND'],
      });
      session = engine.createSession('real-agent', { logger });
      // The service's own SIGINT and SIGTERM handlers shut it down; the browser library must not add its own, which
      // would kill every browser (or the process) before the service could hand its sessions over.
      const signalHandlers = () => ['SIGINT', 'SIGTERM', 'SIGHUP'].map((signal) => process.listenerCount(signal));
      const handlersBefore = signalHandlers();
      const handlersSeen: number[][] = [];
      let mostProcesses = 0;
      const watch = setInterval(async () => {
        const running = (await findProcesses(authDir ?? '')).length;
        if (running > 0) handlersSeen.push(signalHandlers());
        mostProcesses = Math.max(mostProcesses, running);
      }, 50);
      const disconnected = nextEvent(session, 'disconnected', 13_000);
      await session.start();
      const [info] = await disconnected;
      clearInterval(watch);
      // The browser is released before the failure is reported, so a listener may start again at once.
      expect(await findProcesses(authDir)).toEqual([]);
      expect(info.loggedOut).toBe(false);
      expect(info.reason).toMatch(/initialize failed: .*ERR_NAME_NOT_RESOLVED/);
      expect(mostProcesses).toBeGreaterThan(0); // Chromium did run: the test proves its cleanup, not its absence
      expect(handlersSeen.length).toBeGreaterThan(0);
      for (const seen of handlersSeen) expect(seen).toEqual(handlersBefore);
      await expect(session.sendText('6281234567890@c.us', 'x')).rejects.toThrow(/not connected/);
      await session.stop();
      expect(await findProcesses(authDir)).toEqual([]);
      expect(await engine.hasStoredLogin('real-agent')).toBe(false);
    },
    15_000,
  );
  it.skipIf(!chromePath)(
    `stop() while Chromium is still launching leaves no Chromium behind${noChrome}`,
    async () => {
      authDir = await mkdtemp(path.join(tmpdir(), 'wamt-real-wweb-'));
      const engine = createWhatsappWebEngine({ authDir, chromePath, logger });
      session = engine.createSession('real-agent', { logger });
      let reported = false;
      session.on('disconnected', () => {
        reported = true;
      });
      await session.start();
      await new Promise((resolve) => setTimeout(resolve, 150));
      await session.stop();
      expect(await findProcesses(authDir)).toEqual([]);
      // A stop is the caller's own doing: it is not reported back as a disconnect.
      expect(reported).toBe(false);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await findProcesses(authDir)).toEqual([]);
    },
    15_000,
  );
});

describe('baileys on the real library, against a WebSocket endpoint that fails', () => {
  let test: TestDatabase;
  beforeAll(async () => {
    test = await createTestDatabase();
  });
  afterAll(() => test.drop());

  /** A TCP server on 127.0.0.1 that hangs up on every connection, or accepts it and never says a word. */
  async function deadEndpoint(behaviour: 'hang-up' | 'silent') {
    const sockets = new Set<Socket>();
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
      if (behaviour === 'hang-up') socket.destroy();
      // Read and drop the upgrade request: a paused socket would never see the client hang up.
      else socket.resume();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return {
      url: `ws://127.0.0.1:${port}/ws/chat`,
      connections: () => sockets.size,
      close: () =>
        new Promise<void>((resolve) => {
          for (const socket of sockets) socket.destroy();
          server.close(() => resolve());
        }),
    };
  }

  async function until(condition: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  const handles = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout' || kind.startsWith('TCP'));

  for (const behaviour of ['hang-up', 'silent'] as const) {
    it(`reports the failure, is not connected, and holds no timer or socket after stop (${behaviour})`, async () => {
      const endpoint = await deadEndpoint(behaviour);
      const before = handles().length;
      const engine = createBaileysEngine({
        database: test.database,
        logger,
        webSocketUrl: endpoint.url,
        connectTimeoutMs: 1_500,
      });
      const session = engine.createSession(`real-baileys-${behaviour}`, { logger });
      const disconnected = nextEvent(session, 'disconnected', 10_000);
      await session.start();
      const [info] = await disconnected;
      expect(info.loggedOut).toBe(false);
      expect(info.reason).toMatch(/WebSocket Error|Connection (Terminated|Closed)|handshake|timed out/i);
      await expect(session.sendText('6281234567890@c.us', 'x')).rejects.toThrow(/not connected/);
      await session.stop();
      // The server sees the client's side close a moment later: the engine let go of its socket.
      await until(() => endpoint.connections() === 0, 2_000);
      await endpoint.close();
      // Let closed handles leave the loop, then nothing the engine started may remain.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(handles().length).toBeLessThanOrEqual(before);
      expect(await engine.hasStoredLogin(`real-baileys-${behaviour}`)).toBe(false);
    }, 15_000);
  }
});
