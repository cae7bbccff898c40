// A minimal engine for tests that need behaviour the sandbox does not have (no QR code, no pairing codes).
import { EventEmitter } from 'node:events';
import type { Engine, EngineSession, EngineSessionEvents } from '../../src/engines/engine.js';

export interface FakeEngineOptions {
  /** Show a QR code when started. */
  showsQr: boolean;
}

class FakeSession extends EventEmitter<EngineSessionEvents> implements EngineSession {
  constructor(
    readonly agentId: string,
    private readonly options: FakeEngineOptions,
  ) {
    super();
  }
  async start() {
    if (this.options.showsQr) setImmediate(() => this.emit('qr', `fake:${this.agentId}`));
  }
  async stop() {}
  async logout() {}
  async sendText(): Promise<never> {
    throw new Error('fake engine: not connected');
  }
  async sendImage(): Promise<never> {
    throw new Error('fake engine: not connected');
  }
}

export function createFakeEngine(options: FakeEngineOptions): Engine {
  return {
    name: 'baileys',
    createSession: (agentId) => new FakeSession(agentId, options),
    hasStoredLogin: async () => false,
    clearStoredLogin: async () => {},
  };
}
