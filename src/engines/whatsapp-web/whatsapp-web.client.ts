// Builds the real whatsapp-web.js Client: LocalAuth per agent, the system Chromium, flags that work as root in a container.
import { access, constants } from 'node:fs/promises';
import type { Location, MessageMedia } from 'whatsapp-web.js';
import type { OutboundLocation } from '../engine.js';
import type { WwebClient, WwebClientSettings } from './whatsapp-web.types.js';

/**
 * whatsapp-web.js (and puppeteer with it) loads on first use, so a process that runs other engines does not pay
 * for it. It is CommonJS: from ESM its classes are only on the default export.
 */
async function loadWweb() {
  return (await import('whatsapp-web.js')).default;
}

export const CHROME_CANDIDATES = [
  '/usr/bin/chromium',
  '/usr/bin/chromium-browser',
  '/usr/bin/google-chrome',
  '/usr/bin/google-chrome-stable',
] as const;

class ChromeNotFoundError extends Error {
  override name = 'ChromeNotFoundError';
}

/** The browser to launch: the configured path, else the first usual path that exists. */
export async function findChrome(chromePath: string | undefined, candidates: readonly string[] = CHROME_CANDIDATES) {
  const paths = chromePath ? [chromePath] : candidates;
  for (const candidate of paths) {
    if (await isExecutable(candidate)) return candidate;
  }
  throw new ChromeNotFoundError(
    chromePath
      ? `CHROME_PATH=${chromePath} is not an executable file`
      : `no Chromium or Chrome found (looked in ${paths.join(', ')}); install one or set CHROME_PATH`,
  );
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Chromium flags. As root in a container the sandbox cannot start, /dev/shm is tiny and there is no GPU; the rest
 * stop background traffic and work that a headless, unattended page does not need.
 */
export const CHROME_ARGS = [
  '--no-sandbox',
  '--disable-setuid-sandbox',
  '--disable-dev-shm-usage',
  '--disable-gpu',
  '--no-first-run',
  '--no-default-browser-check',
  '--disable-background-networking',
  '--disable-background-timer-throttling',
  '--disable-backgrounding-occluded-windows',
  '--disable-renderer-backgrounding',
  '--disable-breakpad',
  '--disable-component-update',
  '--disable-default-apps',
  '--disable-extensions',
  '--disable-sync',
  '--metrics-recording-only',
  '--mute-audio',
] as const;

export async function createRealWwebClient(settings: WwebClientSettings): Promise<WwebClient> {
  const { Client, LocalAuth } = await loadWweb();
  return new Client({
    authStrategy: new LocalAuth({ dataPath: settings.dataPath, clientId: settings.clientId }),
    puppeteer: {
      headless: true,
      executablePath: settings.executablePath,
      args: settings.args,
      // The service handles its signals (a graceful shutdown hands sessions over, saving each profile as its browser
      // closes); puppeteer's own handlers would kill every browser, or exit the process, first.
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
    },
    // The default caches WhatsApp Web's page in ./.wwebjs_cache of the working directory; load it live instead.
    webVersionCache: { type: 'none' },
  });
}

/** An image as whatsapp-web.js sends it: sendMessage recognises media by this class. */
export async function createMessageMedia(
  mimeType: string,
  base64: string,
  filename: string | null,
): Promise<MessageMedia> {
  const { MessageMedia } = await loadWweb();
  return new MessageMedia(mimeType, base64, filename);
}

/** A location as whatsapp-web.js sends it: sendMessage recognises it by this class. */
export async function createLocation(location: OutboundLocation): Promise<Location> {
  const { Location } = await loadWweb();
  return new Location(location.latitude, location.longitude, {
    ...(location.name ? { name: location.name } : {}),
    ...(location.address ? { address: location.address } : {}),
  });
}
