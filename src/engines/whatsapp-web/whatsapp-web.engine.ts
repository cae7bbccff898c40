// The whatsapp-web engine: whatsapp-web.js sessions with LocalAuth logins under one directory, and in the database
// when given one.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { type Clock, systemClock } from '../../clock.js';
import type { Database } from '../../db/client.js';
import type { Logger } from '../../observability/logger.js';
import type { CreateSessionOptions, Engine, EngineSession } from '../engine.js';
import { ProfileSync, readGeneration, removeProfile } from './profile-sync.js';
import { CHROME_ARGS, createRealWwebClient, findChrome } from './whatsapp-web.client.js';
import { WhatsappWebSession } from './whatsapp-web.session.js';
import type { WwebClientFactory } from './whatsapp-web.types.js';
import { WwebLoginsRepository } from './wweb-logins.repository.js';

/** How often a running session's login is saved to the database, besides when it is ready and when it stops. */
const SAVE_INTERVAL_MS = 5 * 60_000;

export interface WhatsappWebEngineOptions {
  /** LocalAuth's dataPath: each agent's login is `<authDir>/session-<agentId>`. */
  authDir: string;
  /** The browser; when absent the usual Chromium and Chrome paths are searched. */
  chromePath?: string | undefined;
  logger: Logger;
  /** Builds the Client; tests pass a fake. Defaults to whatsapp-web.js's Client. */
  createClient?: WwebClientFactory;
  /** Flags added to the container-safe defaults (for instance a proxy, or host rules in tests). */
  extraChromeArgs?: readonly string[];
  /** Where to look for a browser when chromePath is absent; tests narrow it. */
  chromeCandidates?: readonly string[];
  closeTimeoutMs?: number;
  /**
   * Keeps each agent's login in the database (wwebjs_logins) as well, so that it resumes on any process of the
   * cluster: the row is then the stored login, and the folder a working copy. Without it the folder is the login.
   */
  database?: Database | undefined;
  /** For the periodic saves to the database. */
  clock?: Clock;
  saveIntervalMs?: number;
}

export function createWhatsappWebEngine(options: WhatsappWebEngineOptions): Engine {
  const authDir = path.resolve(options.authDir);
  const profileDir = (agentId: string) => path.join(authDir, `session-${agentId}`);
  const logins = options.database ? new WwebLoginsRepository(options.database) : undefined;
  let announced = false;
  const resolveChrome = async () => {
    const found = await findChrome(options.chromePath, options.chromeCandidates);
    if (!announced) options.logger.info({ event: 'engine.browser', path: found }, 'whatsapp-web uses this browser');
    announced = true;
    return found;
  };
  return {
    name: 'whatsapp-web',
    createSession(agentId: string, sessionOptions: CreateSessionOptions): EngineSession {
      const logger = sessionOptions.logger.child({ engine: 'whatsapp-web' });
      const profiles =
        logins &&
        new ProfileSync({
          agentId,
          profileDir: profileDir(agentId),
          logins,
          clock: options.clock ?? systemClock,
          logger,
          saveIntervalMs: options.saveIntervalMs ?? SAVE_INTERVAL_MS,
        });
      return new WhatsappWebSession({
        agentId,
        authDir,
        logger,
        profiles,
        createClient: options.createClient ?? createRealWwebClient,
        resolveChrome,
        chromeArgs: [...CHROME_ARGS, ...(options.extraChromeArgs ?? [])],
        ...(options.closeTimeoutMs === undefined ? {} : { closeTimeoutMs: options.closeTimeoutMs }),
      });
    },
    async hasStoredLogin(agentId: string): Promise<boolean> {
      if (!(await isDirectory(profileDir(agentId)))) return logins ? logins.exists(agentId) : false;
      // A folder restored from a row whose login has since ended elsewhere does not count; one from before logins
      // moved to the database does, and is saved there once its session is ready.
      if (!logins || (await readGeneration(profileDir(agentId))) === null) return true;
      return logins.exists(agentId);
    },
    async clearStoredLogin(agentId: string): Promise<void> {
      await logins?.delete(agentId);
      await removeProfile(profileDir(agentId));
    },
    async availability(): Promise<string | null> {
      return findChrome(options.chromePath, options.chromeCandidates).then(
        () => null,
        (err: unknown) => (err instanceof Error ? err.message : String(err)),
      );
    },
  };
}

async function isDirectory(dir: string): Promise<boolean> {
  try {
    return (await stat(dir)).isDirectory();
  } catch {
    return false;
  }
}
