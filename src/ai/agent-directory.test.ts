import { describe, expect, it } from 'vitest';
import type { SessionRow, SessionsRepository } from '../sessions/sessions.repository.js';
import { cachingSessionsRepository, createAgentDirectory } from './agent-directory.js';

function fakeRepo() {
  const rows = new Map<string, SessionRow>();
  let finds = 0;
  const repo: SessionsRepository = {
    async find(agentId) {
      finds += 1;
      return rows.get(agentId) ?? null;
    },
    async insert(row) {
      const full = { ...row } as SessionRow;
      rows.set(row.agentId, full);
      return full;
    },
    async update(agentId, patch) {
      const row = rows.get(agentId);
      if (row) rows.set(agentId, { ...row, ...patch });
    },
    async delete(agentId) {
      return rows.delete(agentId);
    },
    async page() {
      return { rows: [...rows.values()], total: rows.size };
    },
    async all() {
      return [...rows.values()];
    },
  };
  return { repo, finds: () => finds };
}

const supervisor = { readySession: () => null, identity: () => null };

function setup() {
  const fake = fakeRepo();
  const directory = createAgentDirectory(fake.repo, supervisor);
  const repo = cachingSessionsRepository(fake.repo, (agentId) => directory.invalidate(agentId));
  return { ...fake, directory, repo };
}

const row = (agentId: string, apiKey: string) =>
  ({ agentId, userId: 'u', agentName: agentId, apiKey, endpointUrlRun: 'http://ai/run' }) as SessionRow;

describe('agent directory cache', () => {
  it('reads the row once, then from memory', async () => {
    const { repo, directory, finds } = setup();
    await repo.insert(row('a1', 'k1'));
    expect(await directory.aiSettings('a1')).toEqual({ apiKey: 'k1', endpointUrlRun: 'http://ai/run' });
    expect(await directory.aiSettings('a1')).toEqual({ apiKey: 'k1', endpointUrlRun: 'http://ai/run' });
    expect(finds()).toBe(1);
  });

  it('sees a rotated key, an edited endpoint and a deletion at once', async () => {
    const { repo, directory } = setup();
    await repo.insert(row('a1', 'k1'));
    await directory.aiSettings('a1');
    await repo.update('a1', { apiKey: 'k2', endpointUrlRun: 'http://ai/v2' });
    expect(await directory.aiSettings('a1')).toEqual({ apiKey: 'k2', endpointUrlRun: 'http://ai/v2' });
    await repo.delete('a1');
    expect(await directory.aiSettings('a1')).toBeNull();
    await repo.insert(row('a1', 'k3'));
    expect((await directory.aiSettings('a1'))?.apiKey).toBe('k3');
  });

  it('does not cache a read that raced with a write', async () => {
    const { repo, directory, finds } = setup();
    await repo.insert(row('a1', 'k1'));
    const stale = directory.aiSettings('a1'); // reads k1, but the update below lands before it resolves
    await repo.update('a1', { apiKey: 'k2' });
    await stale;
    expect((await directory.aiSettings('a1'))?.apiKey).toBe('k2');
    expect(finds()).toBe(2);
  });
});
