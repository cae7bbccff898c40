// Two POST /sessions at once for one new agent: never a 500 from the unique index.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { SessionsRepository } from '../src/sessions/sessions.repository.js';
import { useTestApp } from './helpers/app.js';

describe('POST /sessions twice at once for a new agent', () => {
  const f = useTestApp();
  const create = (agentId: string, userId: string) =>
    f.t.app.inject({
      method: 'POST',
      url: '/sessions',
      headers: f.t.admin,
      payload: { userId, agentId, agentName: agentId, apikey: `key-${agentId}-0123456789` },
    });
  // Both requests look the agent up before either inserts it, on PGlite too (its one connection would often let
  // the first request finish before the second looks): each lookup waits for the other.
  beforeEach(() => {
    const { repo } = (f.t.container.sessions as unknown as { options: { repo: SessionsRepository } }).options;
    const find = repo.find.bind(repo);
    const lookups = new Map<string, { count: number; release: () => void; both: Promise<void> }>();
    vi.spyOn(repo, 'find').mockImplementation(async (agentId) => {
      const row = await find(agentId);
      let pair = lookups.get(agentId);
      if (!pair) {
        let release = () => {};
        const both = new Promise<void>((resolve) => {
          release = resolve;
        });
        pair = { count: 0, release, both };
        lookups.set(agentId, pair);
      }
      pair.count += 1;
      if (pair.count === 2) pair.release();
      if (pair.count <= 2) await pair.both;
      return row;
    });
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  const rows = (agentId: string) =>
    f.db.database.query('SELECT user_id FROM whatsapp_user WHERE agent_id = $1', [agentId]);

  it('answers both with 200 when the same user asks, and keeps one row', async () => {
    for (let i = 0; i < 5; i += 1) {
      const agentId = `race-same-${i}`;
      const answers = await Promise.all([create(agentId, 'u1'), create(agentId, 'u1')]);
      expect(answers.map((res) => res.statusCode)).toEqual([200, 200]);
      expect(answers.map((res) => res.json().data.userId)).toEqual(['u1', 'u1']);
      expect(await rows(agentId)).toEqual([{ user_id: 'u1' }]);
    }
  });

  it('answers one 200 and one 409 AGENT_OWNED_BY_OTHER_USER when two users ask', async () => {
    for (let i = 0; i < 5; i += 1) {
      const agentId = `race-other-${i}`;
      const answers = await Promise.all([create(agentId, 'u1'), create(agentId, 'u2')]);
      const statuses = answers.map((res) => res.statusCode).sort();
      expect(statuses).toEqual([200, 409]);
      const refused = answers.find((res) => res.statusCode === 409);
      expect(refused?.json().error.code).toBe('AGENT_OWNED_BY_OTHER_USER');
      const winner = answers.find((res) => res.statusCode === 200)?.json().data.userId;
      expect(await rows(agentId)).toEqual([{ user_id: winner }]);
    }
  });
});
