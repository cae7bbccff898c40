// Memory per idle session for each real engine, as far as each gets with WhatsApp unreachable.
// whatsapp-web: Debian Chromium launched with the adapter's own flags, one page on a local blank document (the floor
// of a session: a logged-in WhatsApp Web page adds its application on top, which cannot load here).
// baileys: real sessions through our adapter, connected to a local WebSocket endpoint that accepts and stays silent.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { chromium } from 'playwright-core';
import { createBaileysEngine } from '../src/engines/baileys/baileys.engine.js';
import type { EngineSession } from '../src/engines/engine.js';
import { findProcesses } from '../src/engines/whatsapp-web/stray-browsers.js';
import { CHROME_ARGS, CHROME_CANDIDATES } from '../src/engines/whatsapp-web/whatsapp-web.client.js';
import { createLogger } from '../src/observability/logger.js';
import { createTestDatabase } from '../test/helpers/database.js';
import { kib, mib, pssBytes, writeSection } from './report.js';

const gc = (globalThis as { gc?: () => void }).gc;
const logger = createLogger({ level: 'silent' });

async function settled(): Promise<{ pss: number; heap: number }> {
  for (let i = 0; i < 4; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 50));
  }
  return { pss: pssBytes(), heap: process.memoryUsage().heapUsed };
}

async function chromiumPerSession(chromePath: string, browsers: number): Promise<{ pss: number; processes: number }> {
  const server = createServer((_req, res) => res.end('<!doctype html><title>blank</title>'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const profiles: string[] = [];
  const launched = [];
  try {
    for (let i = 0; i < browsers; i++) {
      const profile = await mkdtemp(path.join(tmpdir(), 'wamt-bench-chromium-'));
      profiles.push(profile);
      const context = await chromium.launchPersistentContext(profile, {
        executablePath: chromePath,
        headless: true,
        args: [...CHROME_ARGS, '--disable-quic'],
      });
      launched.push(context);
      const page = context.pages()[0] ?? (await context.newPage());
      await page.goto(url);
    }
    await new Promise((r) => setTimeout(r, 2_000)); // let start-up work finish: idle, not launching
    let total = 0;
    let processes = 0;
    for (const profile of profiles) {
      const pids = await findProcesses(profile);
      processes += pids.length;
      for (const pid of pids) total += pssBytes(pid);
    }
    return { pss: total / browsers, processes: processes / browsers };
  } finally {
    for (const context of launched) await context.close();
    for (const profile of profiles) await rm(profile, { recursive: true, force: true });
    server.close();
  }
}

async function baileysPerSession(sessions: number): Promise<{ pss: number; heap: number }> {
  // Accepts the WebSocket upgrade and then says nothing, as a server that never answers the handshake would.
  const sockets = new Set<Duplex>();
  const server = createServer();
  let upgrades = 0;
  server.on('upgrade', (_req, socket) => {
    upgrades += 1;
    sockets.add(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const db = await createTestDatabase();
  const engine = createBaileysEngine({
    database: db.database,
    logger,
    webSocketUrl: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`,
    connectTimeoutMs: 600_000,
  });
  const started: EngineSession[] = [];
  try {
    for (let i = 0; i < 5; i++) {
      const warm = engine.createSession(`warm-${i}`, { logger });
      await warm.start();
      started.push(warm);
    }
    const before = await settled();
    for (let i = 0; i < sessions; i++) {
      const session = engine.createSession(`idle-${i}`, { logger });
      session.on('disconnected', () => {});
      await session.start();
      started.push(session);
    }
    await new Promise((r) => setTimeout(r, 1_000));
    if (upgrades < sessions) throw new Error(`only ${upgrades} of ${sessions} sockets reached the endpoint`);
    const after = await settled();
    return { pss: (after.pss - before.pss) / sessions, heap: (after.heap - before.heap) / sessions };
  } finally {
    for (const session of started) await session.stop().catch(() => {});
    for (const socket of sockets) socket.destroy();
    server.close();
    await db.drop();
  }
}

const chromePath = process.env.CHROME_PATH || CHROME_CANDIDATES.find((candidate) => existsSync(candidate));
const lines: string[] = [];
if (chromePath) {
  const { pss, processes } = await chromiumPerSession(chromePath, 3);
  lines.push(
    `| whatsapp-web | 3 browsers (${chromePath}), one blank page each, adapter flags | ${mib(pss)} PSS, ${processes.toFixed(0)} processes |`,
  );
} else {
  lines.push('| whatsapp-web | not measured: no Chromium found (set CHROME_PATH) | |');
}
const BAILEYS_SESSIONS = 50;
const baileys = await baileysPerSession(BAILEYS_SESSIONS);
lines.push(
  `| baileys | ${BAILEYS_SESSIONS} sessions waiting on a silent local endpoint | ${kib(baileys.pss)} PSS, ${kib(baileys.heap)} JS heap |`,
);

const body = `| engine | what was measured | per session |
| --- | --- | --- |
${lines.join('\n')}

WhatsApp is unreachable here, so neither engine reaches a logged-in state: these are floors. A whatsapp-web session
is a whole browser (PSS counts shared pages once per process tree share); a logged-in WhatsApp Web page adds its own
application on top. Baileys keeps a socket, its auth state and a few timers per session in this process.`;
writeSection('memory-engines', 'Memory: engines per idle session', body);
process.stdout.write(`${body}\n`);
