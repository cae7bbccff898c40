import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/database.js';
import { FakeClock } from '../../__fixtures__/fake-clock.js';
import { type ContractSent, nextEvent, runEngineContract } from '../engine.contract.js';
import { SandboxEngine } from './sandbox.engine.js';

let test: TestDatabase;
beforeAll(async () => {
  test = await createTestDatabase();
});
afterAll(() => test.drop());

runEngineContract({
  name: 'sandbox (logins in the database)',
  async createHarness() {
    await test.database.query('DELETE FROM sandbox_logins');
    const engine = new SandboxEngine({ database: test.database });
    const others: SandboxEngine[] = [];
    return {
      engine,
      scan: (agentId, phone) => engine.scan(agentId, phone),
      async deliver(agentId, message) {
        const { media, location } = message;
        const sender = message.fromLid ?? message.from;
        engine.deliver(
          agentId,
          {
            id: message.id,
            chatJid: message.group ?? sender,
            senderJid: sender,
            ...(message.fromLid ? { senderLid: message.fromLid, senderPhoneJid: message.from } : {}),
            text: message.text,
            type: media?.kind ?? (location ? 'location' : 'text'),
            isGroup: message.group !== undefined,
            mentions: message.mentions ?? [],
            fromMe: false,
            timestamp: message.timestampSeconds * 1000,
            pushName: message.pushName ?? null,
            chatName: null,
            media: media
              ? {
                  mimeType: media.mimeType,
                  size: media.data.length,
                  filename: media.filename ?? null,
                  durationSeconds: media.durationSeconds ?? null,
                }
              : null,
            location: location ? { ...location } : null,
          },
          media?.data,
        );
      },
      drop: (agentId, loggedOut) => engine.disconnect(agentId, loggedOut),
      // The sandbox refuses the next send as WhatsApp would refuse an unknown number: the contract sends to it first.
      notOnWhatsApp: (agentId) => engine.failSends(agentId, 1, 'not_on_whatsapp'),
      async sent(agentId) {
        return engine
          .sent(agentId)
          .map(({ messageId: _id, at: _at, chat: _chat, sha256: _sha, ...entry }): ContractSent => entry);
      },
      async ack(agentId, waMessageId, status) {
        if (!engine.ack(agentId, waMessageId, status)) throw new Error(`the sandbox sent no ${waMessageId}`);
      },
      async otherInstance() {
        const other = new SandboxEngine({ database: test.database });
        others.push(other);
        return other;
      },
      async close() {
        for (const other of others) await other.close();
        await engine.close();
      },
    };
  },
});

describe('SandboxEngine', () => {
  it('keeps its logins in memory, for this engine only, when it has no database', async () => {
    const sut = new SandboxEngine();
    const session = sut.createSession('m1');
    await session.start();
    await nextEvent(session, 'qr');
    await sut.scan('m1', '6281200000001');
    expect(await sut.hasStoredLogin('m1')).toBe(true);
    expect(await new SandboxEngine().hasStoredLogin('m1')).toBe(false);
    await session.stop();
    const again = sut.createSession('m1');
    const ready = nextEvent(again, 'ready');
    await again.start();
    expect((await ready)[0].me).toBe('6281200000001@c.us');
    await again.logout();
    expect(await sut.hasStoredLogin('m1')).toBe(false);
  });

  it('a session scanned through one process resumes on another that shares the database', async () => {
    const one = new SandboxEngine({ database: test.database });
    const two = new SandboxEngine({ database: test.database });
    const scanned = one.createSession('shared-1');
    await scanned.start();
    await nextEvent(scanned, 'qr');
    await one.scan('shared-1', '6281200000002');
    expect(await two.readLogin('shared-1')).toEqual({ phone: '6281200000002' });
    await scanned.stop();
    const resumed = two.createSession('shared-1');
    const ready = nextEvent(resumed, 'ready');
    await resumed.start();
    expect((await ready)[0].me).toBe('6281200000002@c.us');
    // The phone unlinks the device where the session now runs: neither process resumes it any more.
    await two.disconnect('shared-1', true);
    expect(await one.hasStoredLogin('shared-1')).toBe(false);
    await Promise.all([one.close(), two.close()]);
  });

  it('refreshes the QR code on the clock until the phone scans, and stamps the sent log with it', async () => {
    const clock = new FakeClock();
    const sut = new SandboxEngine({ qrRefreshMs: 20_000, clock });
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
