// Which key opens which agent. Held in memory (hashes only) so a valid request costs no database query; kept in step
// with the database by the key sync (key-sync.ts) and by the lazy look-up of a key that does not match.
import { hash, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { ApiKeysRepository } from './api-keys.repository.js';
import { decideKey, type KeySource } from './key-state.js';

export type KeyCheck = 'ok' | 'unknown_agent' | 'other_agent' | 'invalid';

export interface AgentKeyStoreOptions {
  apiKeys: ApiKeysRepository;
  /** Saves a key adopted from api_keys on the agent's row. */
  saveApiKey: (agentId: string, apiKey: string) => Promise<void>;
  /** How often, per agent, a wrong key may trigger a look-up in api_keys. */
  syncIntervalMs?: number;
  clock: Clock;
  /** Told when saving an adopted key fails: the key is adopted anyway, and the next sync saves it again. */
  onSaveError?: (agentId: string, err: unknown) => void;
  /** Told when an agent's key is set or removed here (a creation, a deletion): other processes learn it. */
  onChange?: (agentId: string) => void;
}

/** What the store holds for one agent. Never changed in place: a change is a new object, which the sync detects. */
export interface KeyEntry {
  readonly userId: string;
  /** null: the agent has no key that works (none given, or revoked). */
  readonly keyHash: Buffer | null;
  readonly source: KeySource | null;
}

/** Keys are compared by their SHA-256: equal lengths for timingSafeEqual, and no key kept in memory. */
export const hashKey = (key: string): Buffer => hash('sha256', key, 'buffer');

export class AgentKeyStore {
  private readonly agents = new Map<string, KeyEntry>();
  private readonly agentByKeyHash = new Map<string, string>();
  private readonly lastLookup = new Map<string, number>();
  private readonly lookups = new Map<string, Promise<void>>();
  private readonly syncIntervalMs: number;
  private readonly clock: Clock;

  constructor(private readonly options: AgentKeyStoreOptions) {
    this.syncIntervalMs = options.syncIntervalMs ?? 5_000;
    this.clock = options.clock;
  }

  set(agentId: string, userId: string, apiKey: string | null, source: KeySource | null = null): void {
    this.put(agentId, { userId, keyHash: apiKey ? hashKey(apiKey) : null, source });
    this.options.onChange?.(agentId);
  }

  remove(agentId: string): void {
    this.drop(agentId);
    this.lastLookup.delete(agentId);
    this.options.onChange?.(agentId);
  }

  has(agentId: string): boolean {
    return this.agents.has(agentId);
  }

  /** Every entry as it is now; `replace` takes one of them back to detect a change made meanwhile. */
  entries(): ReadonlyMap<string, KeyEntry> {
    return new Map(this.agents);
  }

  /**
   * Puts `next` (or removes the agent, for null) unless the entry changed since `before` was read: a creation, a
   * deletion or a look-up that happened while the caller was reading the database wins over what it read.
   */
  replace(agentId: string, before: KeyEntry | undefined, next: KeyEntry | null): boolean {
    if (this.agents.get(agentId) !== before) return false;
    if (next === null) this.drop(agentId);
    else this.put(agentId, next);
    return true;
  }

  /** The agent a key belongs to, if any (for telling 403 from 401). */
  agentOf(presented: string, presentedHash = hashKey(presented)): string | undefined {
    return this.agentByKeyHash.get(presentedHash.toString('hex'));
  }

  /** True when `presentedHash` is the agent's key: the common case, decided without waiting. */
  matches(agentId: string, presentedHash: Buffer): boolean {
    const keyHash = this.agents.get(agentId)?.keyHash;
    return keyHash != null && timingSafeEqual(keyHash, presentedHash);
  }

  /** `presentedHash` is `hashKey(presented)`, when the caller has it already. */
  async check(agentId: string, presented: string, presentedHash = hashKey(presented)): Promise<KeyCheck> {
    if (!this.agents.has(agentId)) return 'unknown_agent';
    if (this.matches(agentId, presentedHash)) return 'ok';
    await this.lookUp(agentId);
    if (!this.agents.has(agentId)) return 'unknown_agent';
    if (this.matches(agentId, presentedHash)) return 'ok';
    return this.agentOf(presented, presentedHash) ? 'other_agent' : 'invalid';
  }

  /**
   * The seed's lazy sync: the user's latest active key, looked up at most once per interval per agent. What it finds
   * is kept whatever key was presented, so wrong keys sent by others in the meantime cannot delay a rotation.
   */
  private lookUp(agentId: string): Promise<void> {
    const inFlight = this.lookups.get(agentId);
    if (inFlight) return inFlight;
    const last = this.lastLookup.get(agentId);
    if (last !== undefined && this.clock.now() - last < this.syncIntervalMs) return Promise.resolve();
    const entry = this.agents.get(agentId);
    if (!entry) return Promise.resolve();
    this.lastLookup.set(agentId, this.clock.now());
    const lookup = this.options.apiKeys
      .latestActiveKey(entry.userId)
      .then((latest) => this.applyLookup(agentId, entry, latest))
      .finally(() => this.lookups.delete(agentId));
    this.lookups.set(agentId, lookup);
    return lookup;
  }

  private async applyLookup(agentId: string, entry: KeyEntry, latest: string | null): Promise<void> {
    const latestHash = latest === null ? null : hashKey(latest);
    const decision = decideKey({ current: entry.keyHash, source: entry.source, latest: latestHash });
    if (decision.action === 'keep') return;
    const next = { userId: entry.userId, keyHash: latestHash, source: decision.source };
    if (!this.replace(agentId, entry, next) || decision.action !== 'adopt' || latest === null) return;
    // Adopted in memory first: api_keys is the source of truth, and the next sync saves it again should this fail.
    await this.options.saveApiKey(agentId, latest).catch((err: unknown) => this.options.onSaveError?.(agentId, err));
  }

  private put(agentId: string, entry: KeyEntry): void {
    this.drop(agentId);
    this.agents.set(agentId, entry);
    if (entry.keyHash) this.agentByKeyHash.set(entry.keyHash.toString('hex'), agentId);
  }

  private drop(agentId: string): void {
    const entry = this.agents.get(agentId);
    if (entry?.keyHash) {
      const hex = entry.keyHash.toString('hex');
      if (this.agentByKeyHash.get(hex) === agentId) this.agentByKeyHash.delete(hex);
    }
    this.agents.delete(agentId);
  }
}

export function keysEqual(a: string, b: string): boolean {
  return timingSafeEqual(hashKey(a), hashKey(b));
}
