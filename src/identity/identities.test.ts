import { describe, expect, it } from 'vitest';
import { FakeClock } from '../__fixtures__/fake-clock.js';
import { createLogger } from '../observability/logger.js';
import { Identities, NEGATIVE_TTL_MS, REFRESH_MS } from './identities.js';
import type { IdentityQuery, IdentityWrite, StoredIdentity } from './identity.repository.js';

const LID = '210987654321098@lid';
const PHONE_JID = '6289900000001@c.us';

/** The table in memory, counting what the cache let through. */
class MemoryRepository {
  readonly rows = new Map<string, StoredIdentity>();
  readonly writes: IdentityWrite[] = [];
  readonly queries: IdentityQuery[] = [];

  async saveMany(items: readonly IdentityWrite[]): Promise<void> {
    for (const item of items) {
      this.writes.push(item);
      this.rows.set(`${item.agentId}/${item.lid}`, { lid: item.lid, phone: item.phone, pushName: item.pushName });
    }
  }

  async findMany(queries: readonly IdentityQuery[]): Promise<Array<StoredIdentity | null>> {
    this.queries.push(...queries);
    return queries.map(
      (q) =>
        [...this.rows.entries()].find(
          ([key, row]) => key.startsWith(`${q.agentId}/`) && (row.lid === q.lid || row.phone === q.phone),
        )?.[1] ?? null,
    );
  }
}

function harness(maxPerAgent?: number) {
  const clock = new FakeClock();
  const repository = new MemoryRepository();
  const logger = createLogger({ level: 'silent' });
  const identities = new Identities({ repository, clock, logger, ...(maxPerAgent ? { maxPerAgent } : {}) });
  return { clock, repository, identities };
}

describe('Identities', () => {
  it('answers both addresses from the cache once a pair is learned, and writes it once', async () => {
    const { repository, identities } = harness();
    identities.learn('a', [{ lid: LID, phoneJid: PHONE_JID, pushName: 'Ann' }]);
    identities.learn('a', [{ lid: LID, phoneJid: PHONE_JID, pushName: null }]);
    await identities.idle();
    const person = { phoneJid: PHONE_JID, lid: LID, pushName: 'Ann' };
    expect(identities.cached('a', LID)).toEqual(person);
    expect(identities.cached('a', PHONE_JID)).toEqual(person);
    expect(identities.cached('b', LID)).toBeUndefined();
    expect(repository.writes).toHaveLength(1);
    expect(await identities.recipient('a', LID)).toBe(PHONE_JID);
    expect(await identities.recipient('b', LID)).toBe(LID);
  });

  it('writes a pair again when the name or number changes, or after REFRESH_MS so the purge keeps it', async () => {
    const { clock, repository, identities } = harness();
    identities.learn('a', [{ lid: LID, phoneJid: PHONE_JID, pushName: 'Ann' }]);
    identities.learn('a', [{ lid: LID, phoneJid: PHONE_JID, pushName: 'Annie' }]);
    identities.learn('a', [{ lid: LID, phoneJid: '6289900000002@c.us', pushName: null }]);
    await clock.advance(REFRESH_MS);
    identities.learn('a', [{ lid: LID, phoneJid: '6289900000002@c.us', pushName: null }]);
    await identities.idle();
    expect(repository.writes.map((w) => [w.phone, w.pushName])).toEqual([
      ['6289900000001', 'Ann'],
      ['6289900000001', 'Annie'],
      ['6289900000002', 'Annie'],
      ['6289900000002', 'Annie'],
    ]);
  });

  it('ignores malformed pairs', async () => {
    const { repository, identities } = harness();
    identities.learn('a', [
      { lid: '6289900000001@c.us', phoneJid: PHONE_JID },
      { lid: LID, phoneJid: '120363025555555555@g.us' },
    ]);
    await identities.idle();
    expect(repository.writes).toEqual([]);
  });

  it('looks an address up once, believes "unknown" for NEGATIVE_TTL_MS, then asks again', async () => {
    const { clock, repository, identities } = harness();
    expect(await identities.find('a', LID)).toEqual({ phoneJid: null, lid: LID, pushName: null });
    expect(identities.cached('a', LID)).toEqual({ phoneJid: null, lid: LID, pushName: null });
    repository.rows.set(`a/${LID}`, { lid: LID, phone: '6289900000001', pushName: 'Ann' });
    await clock.advance(NEGATIVE_TTL_MS);
    expect(identities.cached('a', LID)).toBeUndefined();
    expect(await identities.find('a', PHONE_JID)).toEqual({ phoneJid: PHONE_JID, lid: LID, pushName: 'Ann' });
    expect(await identities.find('a', LID)).toEqual({ phoneJid: PHONE_JID, lid: LID, pushName: 'Ann' });
    expect(repository.queries).toEqual([
      { agentId: 'a', lid: LID, phone: null },
      { agentId: 'a', lid: null, phone: '6289900000001' },
      { agentId: 'a', lid: LID, phone: null },
    ]);
  });

  it('keeps at most maxPerAgent addresses per agent, dropping the least recently used', async () => {
    const { identities } = harness(4);
    const lid = (n: number) => `21098765432100${n}@lid`;
    const phone = (n: number) => `628990000000${n}@c.us`;
    identities.learn('a', [{ lid: lid(1), phoneJid: phone(1) }]);
    identities.learn('a', [{ lid: lid(2), phoneJid: phone(2) }]);
    expect(identities.cached('a', lid(1))?.phoneJid).toBe(phone(1)); // now the most recent
    identities.learn('a', [{ lid: lid(3), phoneJid: phone(3) }]);
    expect(identities.cached('a', lid(1))?.phoneJid).toBe(phone(1));
    expect(identities.cached('a', lid(2))).toBeUndefined();
    expect(identities.cached('a', lid(3))?.phoneJid).toBe(phone(3));
    await identities.idle();
  });
});
