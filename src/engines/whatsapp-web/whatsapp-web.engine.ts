// The whatsapp-web engine: whatsapp-web.js sessions with LocalAuth logins under one directory.
import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../observability/logger.js';
import type { CreateSessionOptions, Engine, EngineSession } from '../engine.js';
import { CHROME_ARGS, createRealWwebClient, findChrome } from './whatsapp-web.client.js';
import { WhatsappWebSession } from './whatsapp-web.session.js';
import type { WwebClientFactory } from './whatsapp-web.types.js';

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
}

export function createWhatsappWebEngine(options: WhatsappWebEngineOptions): Engine {
  const authDir = path.resolve(options.authDir);
  const profileDir = (agentId: string) => path.join(authDir, `session-${agentId}`);
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
      return new WhatsappWebSession({
        agentId,
        authDir,
        logger: sessionOptions.logger.child({ engine: 'whatsapp-web' }),
        createClient: options.createClient ?? createRealWwebClient,
        resolveChrome,
        chromeArgs: [...CHROME_ARGS, ...(options.extraChromeArgs ?? [])],
        ...(options.closeTimeoutMs === undefined ? {} : { closeTimeoutMs: options.closeTimeoutMs }),
      });
    },
    async hasStoredLogin(agentId: string): Promise<boolean> {
      try {
        return (await stat(profileDir(agentId))).isDirectory();
      } catch {
        return false;
      }
    },
    async clearStoredLogin(agentId: string): Promise<void> {
      await rm(profileDir(agentId), { recursive: true, force: true, maxRetries: 4 });
    },
    async availability(): Promise<string | null> {
      return findChrome(options.chromePath, options.chromeCandidates).then(
        () => null,
        (err: unknown) => (err instanceof Error ? err.message : String(err)),
      );
    },
  };
}
