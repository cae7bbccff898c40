import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../../__fixtures__/fake-clock.js';
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
      // The sandbox refuses the next send as WhatsApp would refuse an unknown number: the contract sends to it first.
      notOnWhatsApp: (agentId) => engine.failSends(agentId, 1, 'not_on_whatsapp'),
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

describe('SandboxEngine on an injected clock', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'wamt-sandbox-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refreshes the QR code on the clock until the phone scans, and stamps the sent log with it', async () => {
    const clock = new FakeClock();
    const sut = new SandboxEngine({ dir, qrRefreshMs: 20_000, clock });
    const session = sut.createSession('a1');
    const codes: string[] = [];
    session.on('qr', (code) => codes.push(code));
    await session.start();
    await clock.advance(0); // the first code comes at once
    expect(codes).toHaveLength(1);
    expect(clock.pending()).toEqual([20_000]);
    await clock.advance(40_000);
    expect(new Set(codes).size).toBe(3);
    await sut.scan('a1');
    expect(clock.pending()).toEqual([]);
    await session.sendText('6281234567890@c.us', 'hi');
    expect(sut.sent('a1')).toEqual([expect.objectContaining({ text: 'hi', at: new Date(clock.now()).toISOString() })]);
    await sut.close();
  });
});
