import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type ContractSent, runEngineContract } from '../engine.contract.js';
import { SandboxEngine } from './sandbox.engine.js';

runEngineContract({
  name: 'sandbox',
  async createHarness() {
    const dir = await mkdtemp(path.join(tmpdir(), 'wamt-sandbox-'));
    const engine = new SandboxEngine({ dir });
    return {
      engine,
      scan: (agentId, phone) => engine.scan(agentId, phone),
      async deliver(agentId, message) {
        engine.deliver(agentId, {
          id: message.id,
          chatJid: message.group ?? message.from,
          senderJid: message.from,
          text: message.text,
          type: 'text',
          isGroup: message.group !== undefined,
          mentions: message.mentions ?? [],
          fromMe: false,
          timestamp: message.timestampSeconds * 1000,
          pushName: message.pushName ?? null,
          chatName: null,
        });
      },
      drop: (agentId, loggedOut) => engine.disconnect(agentId, loggedOut),
      async sent(agentId) {
        return engine.sent(agentId).map(({ messageId: _id, at: _at, ...entry }): ContractSent => entry);
      },
      async close() {
        await engine.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
});
