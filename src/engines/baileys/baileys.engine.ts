// The baileys engine: Baileys 7 sockets with their auth state in PostgreSQL (table baileys_auth).
import type { Database } from '../../db/client.js';
import type { Logger } from '../../observability/logger.js';
import type { CreateSessionOptions, Engine, EngineSession } from '../engine.js';
import { BaileysAuthStore, deleteStoredAuth, hasStoredCreds } from './auth-state.js';
import { loadedBaileys } from './baileys.runtime.js';
import { BaileysSession } from './baileys.session.js';
import type { BaileysMediaDownloader, BaileysSocketFactory } from './baileys.types.js';

export interface BaileysEngineOptions {
  database: Database;
  logger: Logger;
  /** Builds the socket; tests pass a fake. Defaults to Baileys' makeWASocket. */
  createSocket?: BaileysSocketFactory;
  /** Downloads an inbound message's file; tests pass a fake. Defaults to Baileys' downloadMediaMessage. */
  downloadMedia?: BaileysMediaDownloader;
  /** Where sockets connect; WhatsApp's address when absent. Tests point it at a local server. */
  webSocketUrl?: string;
  connectTimeoutMs?: number;
  /** Baileys logs a lot at info; its lines below this level are dropped (never louder than our own logger). */
  libraryLogLevel?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export function createBaileysEngine(options: BaileysEngineOptions): Engine {
  // Sockets are built after start() has loaded Baileys (the auth store loads it first).
  const createSocket: BaileysSocketFactory = options.createSocket ?? ((config) => loadedBaileys().makeWASocket(config));
  const downloadMedia: BaileysMediaDownloader =
    options.downloadMedia ??
    ((message, type, downloadOptions, ctx) =>
      loadedBaileys().downloadMediaMessage(message, type, downloadOptions, ctx));
  return {
    name: 'baileys',
    createSession(agentId: string, sessionOptions: CreateSessionOptions): EngineSession {
      const logger = sessionOptions.logger.child({ engine: 'baileys' });
      return new BaileysSession({
        agentId,
        logger,
        libraryLogger: logger.child(
          { lib: 'baileys' },
          { level: quieter(logger.level, options.libraryLogLevel ?? 'warn') },
        ),
        auth: new BaileysAuthStore(options.database, agentId),
        createSocket,
        downloadMedia,
        webSocketUrl: options.webSocketUrl,
        connectTimeoutMs: options.connectTimeoutMs,
      });
    },
    hasStoredLogin: (agentId) => hasStoredCreds(options.database, agentId),
    async clearStoredLogin(agentId) {
      await deleteStoredAuth(options.database, agentId);
      options.logger.info({ event: 'engine.auth.cleared', engine: 'baileys', agentId }, 'stored login deleted');
    },
  };
}

/** The quieter of two pino levels. */
function quieter(a: string, b: string): string {
  return LEVELS.indexOf(a) >= LEVELS.indexOf(b) ? a : b;
}
