// The baileys engine: Baileys 7 sockets with their auth state in PostgreSQL (table baileys_auth).
import makeWASocket from 'baileys';
import type { Database } from '../../db/client.js';
import type { Logger } from '../../observability/logger.js';
import type { CreateSessionOptions, Engine, EngineSession } from '../engine.js';
import { BaileysAuthStore, deleteStoredAuth, hasStoredCreds } from './auth-state.js';
import { BaileysSession } from './baileys.session.js';
import type { BaileysSocketFactory } from './baileys.types.js';

export interface BaileysEngineOptions {
  database: Database;
  logger: Logger;
  /** Builds the socket; tests pass a fake. Defaults to Baileys' makeWASocket. */
  createSocket?: BaileysSocketFactory;
  /** Where sockets connect; WhatsApp's address when absent. Tests point it at a local server. */
  webSocketUrl?: string;
  connectTimeoutMs?: number;
  /** Baileys logs a lot at info; its lines below this level are dropped (never louder than our own logger). */
  libraryLogLevel?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export function createBaileysEngine(options: BaileysEngineOptions): Engine {
  const createSocket: BaileysSocketFactory = options.createSocket ?? ((config) => makeWASocket(config));
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
        webSocketUrl: options.webSocketUrl,
        connectTimeoutMs: options.connectTimeoutMs,
      });
    },
    hasStoredLogin: (agentId) => hasStoredCreds(options.database, agentId),
    clearStoredLogin: (agentId) => deleteStoredAuth(options.database, agentId),
  };
}

/** The quieter of two pino levels. */
function quieter(a: string, b: string): string {
  return LEVELS.indexOf(a) >= LEVELS.indexOf(b) ? a : b;
}
