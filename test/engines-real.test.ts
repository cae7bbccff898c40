// The real libraries against a world without WhatsApp: real Chromium with no name resolution, Baileys against a dead socket.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { nextEvent } from '../src/engines/engine.contract.js';
import type { EngineSession } from '../src/engines/engine.js';
import { findProcesses } from '../src/engines/whatsapp-web/stray-browsers.js';
import { CHROME_CANDIDATES } from '../src/engines/whatsapp-web/whatsapp-web.client.js';
import { createWhatsappWebEngine } from '../src/engines/whatsapp-web/whatsapp-web.engine.js';

const logger = pino({ level: 'silent' });
const chromePath = process.env.CHROME_PATH || CHROME_CANDIDATES.find((candidate) => existsSync(candidate));

describe('whatsapp-web on real Chromium, WhatsApp unreachable', () => {
  let authDir: string | undefined;
  let session: EngineSession | undefined;
  afterEach(async () => {
    await session?.stop();
    if (authDir) await rm(authDir, { recursive: true, force: true });
  });

  it.skipIf(!chromePath)(
    `reports the failure, is not connected, and leaves no Chromium behind${chromePath ? '' : ` — SKIPPED: no Chromium at CHROME_PATH or ${CHROME_CANDIDATES.join(', ')}`}`,
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
      let mostProcesses = 0;
      const watch = setInterval(async () => {
        mostProcesses = Math.max(mostProcesses, (await findProcesses(authDir ?? '')).length);
      }, 50);
      const disconnected = nextEvent(session, 'disconnected', 12_000);
      await session.start();
      const [info] = await disconnected;
      clearInterval(watch);
      // The browser is released before the failure is reported, so a listener may start again at once.
      expect(await findProcesses(authDir)).toEqual([]);
      expect(info.loggedOut).toBe(false);
      expect(info.reason).toMatch(/initialize failed: .*ERR_NAME_NOT_RESOLVED/);
      expect(mostProcesses).toBeGreaterThan(0); // Chromium did run: the test proves its cleanup, not its absence
      expect(await session.getState?.()).toBe('disconnected');
      await expect(session.sendText('6281234567890@c.us', 'x')).rejects.toThrow(/not connected/);
      await session.stop();
      expect(await findProcesses(authDir)).toEqual([]);
      expect(await engine.hasStoredLogin('real-agent')).toBe(false);
    },
    15_000,
  );
});
