import { describe, expect, it } from 'vitest';
import { hashKey } from './agent-keys.js';
import { apikeyProblem, creationKey, decideKey, isWeakKey } from './key-state.js';

const K = hashKey('key-current');
const L = hashKey('key-latest');

describe('decideKey', () => {
  it('adopts the latest active key of the user when it differs from the current one', () => {
    expect(decideKey({ current: K, source: 'api_keys', latest: L })).toEqual({ action: 'adopt', source: 'api_keys' });
    // An admin-given key is replaced as soon as api_keys has one for the user.
    expect(decideKey({ current: K, source: 'admin', latest: L })).toEqual({ action: 'adopt', source: 'api_keys' });
    // A revoked key comes back when its user has an active key again.
    expect(decideKey({ current: null, source: 'api_keys', latest: L }).action).toBe('adopt');
  });

  it('keeps a key that is the latest active one', () => {
    expect(decideKey({ current: K, source: 'api_keys', latest: K })).toEqual({ action: 'keep', source: 'api_keys' });
  });

  it('revokes a key from api_keys once its user has no active key there (deactivated or deleted)', () => {
    expect(decideKey({ current: K, source: 'api_keys', latest: null })).toEqual({
      action: 'revoke',
      source: 'api_keys',
    });
  });

  it('keeps an admin-given key while api_keys has none for the user', () => {
    expect(decideKey({ current: K, source: 'admin', latest: null })).toEqual({ action: 'keep', source: 'admin' });
  });

  it('derives the source of a row from before migration 0003 from api_keys', () => {
    expect(decideKey({ current: K, source: null, latest: null, currentInApiKeys: true })).toEqual({
      action: 'revoke',
      source: 'api_keys',
    });
    expect(decideKey({ current: K, source: null, latest: null, currentInApiKeys: false })).toEqual({
      action: 'keep',
      source: 'admin',
    });
    // Unknown (a look-up does not ask): nothing is revoked on a guess.
    expect(decideKey({ current: K, source: null, latest: null })).toEqual({ action: 'keep', source: null });
  });
});

describe('creationKey', () => {
  it('prefers api_keys, then the apikey given, then the key the agent had unless it came from api_keys', () => {
    expect(creationKey({ latest: 'l', given: 'g', existing: null })).toEqual({ apiKey: 'l', source: 'api_keys' });
    expect(creationKey({ latest: null, given: 'g', existing: null })).toEqual({ apiKey: 'g', source: 'admin' });
    expect(creationKey({ latest: null, given: undefined, existing: { apiKey: 'e', source: 'admin' } })).toEqual({
      apiKey: 'e',
      source: 'admin',
    });
    expect(creationKey({ latest: null, given: undefined, existing: { apiKey: 'e', source: 'api_keys' } })).toBeNull();
    expect(creationKey({ latest: null, given: undefined, existing: null })).toBeNull();
  });
});

describe('apikey rules', () => {
  it('refuses an empty key and one with whitespace; flags one shorter than 16 characters', () => {
    expect(apikeyProblem('')).toMatch(/empty/);
    expect(apikeyProblem('two words')).toMatch(/whitespace/);
    expect(apikeyProblem('tab\there')).toMatch(/whitespace/);
    expect(apikeyProblem('api-key')).toBeNull();
    expect(isWeakKey('api-key')).toBe(true);
    expect(isWeakKey('0123456789abcdef')).toBe(false);
  });
});
