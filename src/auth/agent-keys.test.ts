import { describe, expect, it, vi } from 'vitest';
import { FakeClock } from '../__fixtures__/fake-clock.js';
import { AgentKeyStore } from './agent-keys.js';

function setup(latest: string | null = null) {
  const clock = new FakeClock();
  const latestActiveKey = vi.fn(async (_userId: string) => latest);
  const saveApiKey = vi.fn(async (_agentId: string, _apiKey: string) => {});
  const sut = new AgentKeyStore({ apiKeys: { latestActiveKey }, saveApiKey, syncIntervalMs: 5_000, clock });
  sut.set('bot-a', 'user-a', 'key-a');
  sut.set('bot-b', 'user-b', 'key-b');
  return { sut, latestActiveKey, saveApiKey, clock };
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
