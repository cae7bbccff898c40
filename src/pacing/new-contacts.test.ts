// The daily cap on new contacts against a real database, on a fake clock: the 24 h window, one count per contact,
// known contacts, and first messages racing for the last place.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/database.js';
import { FakeClock } from '../__fixtures__/fake-clock.js';
import { AppError } from '../errors.js';
import { NewContacts } from './new-contacts.js';
import { DAY_MS, PacingRepository } from './pacing.repository.js';

const jid = (n: number) => `62812000${String(n).padStart(5, '0')}@c.us`;

describe('NewContacts', () => {
  let test: TestDatabase;
  let clock: FakeClock;
  let contacts: NewContacts;
  let repository: PacingRepository;

  beforeAll(async () => {
    test = await createTestDatabase();
  });
  beforeEach(async () => {
    await test.database.query('DELETE FROM pacing_contact_quota');
    await test.database.query('DELETE FROM outbox_messages');
    await test.database.query('DELETE FROM inbound_messages');
    await test.database.query('DELETE FROM identities');
    clock = new FakeClock();
    repository = new PacingRepository(test.database);
    contacts = new NewContacts({ repository, clock });
  });
  afterAll(async () => {
    await test.drop();
  });

  const refusal = async (agentId: string, to: string, limit: number) => {
    try {
      await contacts.admit(agentId, to, limit);
    } catch (err) {
      if (err instanceof AppError) return err;
      throw err;
    }
    return null;
  };

  it('admits `limit` new contacts in 24 h, then frees a place 24 h after the oldest', async () => {
    await contacts.admit('a', jid(1), 2);
    await clock.advance(3_600_000);
    await contacts.admit('a', jid(2), 2);
    const refused = await refusal('a', jid(3), 2);
    expect(refused?.code).toBe('NEW_CONTACT_LIMIT');
    expect(refused?.status).toBe(429);
    expect(refused?.details).toEqual({ limit: 2, retryAfter: (DAY_MS - 3_600_000) / 1_000 });
    expect(refused?.headers).toEqual({ 'retry-after': String((DAY_MS - 3_600_000) / 1_000) });
    // Another agent has its own count.
    await contacts.admit('b', jid(3), 2);

    await clock.advance(DAY_MS - 3_600_000 - 1);
    expect((await refusal('a', jid(3), 2))?.code).toBe('NEW_CONTACT_LIMIT');
    await clock.advance(2);
    expect(await refusal('a', jid(3), 2)).toBeNull();
    expect((await refusal('a', jid(4), 2))?.code).toBe('NEW_CONTACT_LIMIT');
  });

  it('counts a contact once, also from another process that does not remember it', async () => {
    await contacts.admit('a', jid(1), 1);
    await contacts.admit('a', jid(1), 1);
    const elsewhere = new NewContacts({ repository, clock });
    expect(await refusal('a', jid(1), 1)).toBeNull();
    expect(await (async () => elsewhere.admit('a', jid(1), 1))()).toBeUndefined();
    expect((await refusal('a', jid(2), 1))?.code).toBe('NEW_CONTACT_LIMIT');
  });

  it('never counts groups, people written to before, or people who wrote first', async () => {
    await test.database.query(
      `INSERT INTO outbox_messages (id, agent_id, kind, to_jid, payload, status) VALUES ('o1', 'a', 'text', $1, '{}', 'sent')`,
      [jid(1)],
    );
    await test.database.query(
      `INSERT INTO inbound_messages (agent_id, wa_message_id, chat_jid) VALUES ('a', 'w1', $1)`,
      [jid(2)],
    );
    for (const to of [jid(1), jid(2), '120363000000000001@g.us']) expect(await refusal('a', to, 0)).toBeNull();
    expect((await refusal('a', jid(3), 0))?.details).toEqual({ limit: 0, retryAfter: null });
  });

  it('knows a person who wrote first by LID, before their number was known, by either address', async () => {
    const lid = '123456789012345@lid';
    await test.database.query(
      `INSERT INTO inbound_messages (agent_id, wa_message_id, chat_jid) VALUES ('a', 'w-lid', $1)`,
      [lid],
    );
    // Not yet paired: the number is someone new.
    expect((await refusal('a', jid(4), 0))?.code).toBe('NEW_CONTACT_LIMIT');
    // The pair is learned later (another agent's pairs are not this one's).
    await test.database.query(
      `INSERT INTO identities (agent_id, lid, phone) VALUES ('a', $1, $2), ('b', '999999999999999@lid', $3)`,
      [lid, jid(4).split('@')[0], jid(5).split('@')[0]],
    );
    await test.database.query(
      `INSERT INTO inbound_messages (agent_id, wa_message_id, chat_jid) VALUES ('b', 'w-other', '999999999999999@lid')`,
    );
    const fresh = new NewContacts({ repository, clock });
    await expect(fresh.admit('a', jid(4), 0)).resolves.toBeUndefined();
    await expect(fresh.admit('a', lid, 0)).resolves.toBeUndefined();
    await expect(fresh.admit('a', jid(5), 0)).rejects.toMatchObject({ code: 'NEW_CONTACT_LIMIT' });
  });

  it('admits exactly the last places when first messages race, from separate processes', async () => {
    const processes = Array.from({ length: 12 }, () => new NewContacts({ repository, clock }));
    const outcomes = await Promise.all(
      processes.map((p, i) =>
        p.admit('a', jid(100 + i), 4).then(
          () => 'ok',
          () => 'refused',
        ),
      ),
    );
    expect(outcomes.filter((o) => o === 'ok')).toHaveLength(4);
    const rows = await test.database.query(`SELECT contacts FROM pacing_contact_quota WHERE agent_id = 'a'`);
    expect(Object.keys(rows[0]?.contacts as object)).toHaveLength(4);
  });
});
