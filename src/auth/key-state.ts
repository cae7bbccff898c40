// Which key opens an agent, decided from what the database says: pure rules shared by the sync and the look-ups.

/** Where an agent's key came from: the user's row in the shared api_keys table, or the admin's `apikey` at creation. */
export type KeySource = 'api_keys' | 'admin';

/** Shorter keys are accepted (the seed's own example is `api-key`) but flagged: they can be guessed. */
export const WEAK_KEY_LENGTH = 16;

export const isWeakKey = (key: string): boolean => key.length < WEAK_KEY_LENGTH;

/** Why an `apikey` given at creation is refused, or null when it is usable. */
export function apikeyProblem(apikey: string): string | null {
  if (apikey.length === 0) return 'apikey: must not be empty';
  // A Bearer token cannot carry whitespace, so such a key could never be presented.
  if (/\s/.test(apikey)) return 'apikey: must not contain whitespace';
  return null;
}

/**
 * The key an agent gets at creation: the user's latest active key in api_keys, else the `apikey` given, else the
 * key it already had, unless that one came from api_keys (then it was deactivated or deleted there since).
 */
export function creationKey(input: {
  latest: string | null;
  given: string | undefined;
  existing: { apiKey: string | null; source: KeySource | null } | null;
}): { apiKey: string; source: KeySource | null } | null {
  if (input.latest !== null) return { apiKey: input.latest, source: 'api_keys' };
  if (input.given !== undefined) return { apiKey: input.given, source: 'admin' };
  const existing = input.existing;
  if (existing?.apiKey && existing.source !== 'api_keys') return { apiKey: existing.apiKey, source: existing.source };
  return null;
}

/** What is known of one agent's key. Keys are compared by their hashes: only `hashKey` values here. */
export interface KeyFacts {
  /** The agent's key now (null: none, or revoked). */
  current: Buffer | null;
  /** null for a row written before sources were recorded (migration 0003), until a sync derives it. */
  source: KeySource | null;
  /** The user's latest active access_token in api_keys. */
  latest: Buffer | null;
  /** For a row without a source: whether its key appears in api_keys at all, active or not. */
  currentInApiKeys?: boolean | null;
}

export type KeyDecision =
  /** The current key stays (or stays revoked). `source` may have been derived just now. */
  | { action: 'keep'; source: KeySource | null }
  /** The user's latest active key replaces the current one (rotated, or superseded an admin-given key). */
  | { action: 'adopt'; source: 'api_keys' }
  /** The key came from api_keys and the user has no active key there any more: deactivated or deleted. */
  | { action: 'revoke'; source: 'api_keys' };

export function decideKey(facts: KeyFacts): KeyDecision {
  const derived = facts.currentInApiKeys == null ? null : facts.currentInApiKeys ? 'api_keys' : 'admin';
  const source = facts.source ?? derived;
  if (facts.latest !== null) {
    const same = facts.current?.equals(facts.latest) === true;
    return same ? { action: 'keep', source: 'api_keys' } : { action: 'adopt', source: 'api_keys' };
  }
  // An admin-given key (no api_keys row behind it) keeps working until a key appears in api_keys.
  if (source === 'api_keys') return { action: 'revoke', source };
  return { action: 'keep', source };
}
