import { describe, expect, it, vi } from 'vitest';
import { FakeClock } from '../__fixtures__/fake-clock.js';
import { AgentKeyStore, hashKey } from './agent-keys.js';

function setup(latest: string | null = null) {
  const clock = new FakeClock();
  const state = { latest };
  const latestActiveKey = vi.fn(async (_userId: string) => state.latest);
  const saveApiKey = vi.fn(async (_agentId: string, _apiKey: string) => {});
  const sut = new AgentKeyStore({ apiKeys: { latestActiveKey }, saveApiKey, syncIntervalMs: 5_000, clock });
  sut.set('bot-a', 'user-a', 'key-a', 'admin');
  sut.set('bot-b', 'user-b', 'key-b', 'admin');
  return { sut, latestActiveKey, saveApiKey, clock, state };
}

describe('AgentKeyStore', () => {
  it('accepts the stored key without asking the database', async () => {
    const { sut, latestActiveKey } = setup();
    expect(await sut.check('bot-a', 'key-a')).toBe('ok');
    expect(latestActiveKey).not.toHaveBeenCalled();
  });

  it("tells an unknown agent, another agent's key and a wrong key apart", async () => {
    const { sut } = setup();
    expect(await sut.check('nobody', 'key-a')).toBe('unknown_agent');
    expect(await sut.check('bot-a', 'key-b')).toBe('other_agent');
    expect(await sut.check('bot-a', 'nope')).toBe('invalid');
  });

  it('adopts a rotated key from api_keys on the first request and saves it', async () => {
    const { sut, saveApiKey } = setup('rotated-a');
    expect(await sut.check('bot-a', 'rotated-a')).toBe('ok');
    expect(saveApiKey).toHaveBeenCalledWith('bot-a', 'rotated-a');
    expect(await sut.check('bot-a', 'rotated-a')).toBe('ok');
    expect(await sut.check('bot-a', 'key-a')).not.toBe('ok');
  });

  it('keeps what a look-up found whatever key set it off, so a wrong key cannot delay a rotation', async () => {
    const { sut, saveApiKey, latestActiveKey } = setup('rotated-a');
    // Someone else's wrong key triggers the look-up and spends the agent's look-up budget...
    expect(await sut.check('bot-a', 'wrong')).toBe('invalid');
    expect(saveApiKey).toHaveBeenCalledWith('bot-a', 'rotated-a');
    // ...and the owner's rotated key, right after, still works, without another look-up.
    expect(sut.matches('bot-a', hashKey('rotated-a'))).toBe(true);
    expect(await sut.check('bot-a', 'rotated-a')).toBe('ok');
    expect(latestActiveKey).toHaveBeenCalledTimes(1);
  });

  it('revokes a key from api_keys that a look-up finds gone, and keeps an admin-given one', async () => {
    const { sut } = setup(null);
    sut.set('bot-c', 'user-c', 'key-c', 'api_keys');
    expect(await sut.check('bot-c', 'wrong')).toBe('invalid');
    expect(await sut.check('bot-c', 'key-c')).toBe('invalid');
    expect(await sut.check('bot-a', 'wrong')).toBe('invalid');
    expect(await sut.check('bot-a', 'key-a')).toBe('ok');
  });

  it('does not bring back an agent removed while its look-up was running', async () => {
    const { sut, state, saveApiKey } = setup('rotated-a');
    state.latest = 'rotated-a';
    const check = sut.check('bot-a', 'rotated-a');
    sut.remove('bot-a');
    expect(await check).toBe('unknown_agent');
    expect(sut.has('bot-a')).toBe(false);
    expect(saveApiKey).not.toHaveBeenCalled();
  });

  it('looks api_keys up at most once per interval per agent, however many wrong keys come', async () => {
    const { sut, latestActiveKey, clock } = setup(null);
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => sut.check('bot-a', `wrong-${i}`)));
    expect(new Set(results)).toEqual(new Set(['invalid']));
    expect(latestActiveKey).toHaveBeenCalledTimes(1);
    await clock.advance(4_999);
    await sut.check('bot-a', 'wrong-again');
    expect(latestActiveKey).toHaveBeenCalledTimes(1);
    await clock.advance(1);
    await sut.check('bot-a', 'wrong-again');
    expect(latestActiveKey).toHaveBeenCalledTimes(2);
    // Another agent has its own budget.
    await sut.check('bot-b', 'wrong');
    expect(latestActiveKey).toHaveBeenCalledTimes(3);
  });

  it('forgets a removed agent', async () => {
    const { sut } = setup();
    sut.remove('bot-a');
    expect(await sut.check('bot-a', 'key-a')).toBe('unknown_agent');
    expect(sut.agentOf('key-a')).toBeUndefined();
  });
});
