// Which key opens which agent. Held in memory (hashes only) so a valid request costs no database query.
import { hash, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { ApiKeysRepository } from './api-keys.repository.js';

export type KeyCheck = 'ok' | 'unknown_agent' | 'other_agent' | 'invalid';

export interface AgentKeyStoreOptions {
  apiKeys: ApiKeysRepository;
  /** Saves a rotated key that was adopted from api_keys. */
  saveApiKey: (agentId: string, apiKey: string) => Promise<void>;
  /** How often, per agent, a wrong key may trigger a look-up in api_keys. */
  syncIntervalMs?: number;
  clock: Clock;
}

/** Keys are compared by their SHA-256: equal lengths for timingSafeEqual, and no key kept in memory. */
export const hashKey = (key: string): Buffer => hash('sha256', key, 'buffer');

export class AgentKeyStore {
  private readonly agents = new Map<string, { userId: string; keyHash: Buffer | null }>();
  private readonly agentByKeyHash = new Map<string, string>();
  private readonly lastSync = new Map<string, number>();
  private readonly syncing = new Map<string, Promise<string | null>>();
  private readonly syncIntervalMs: number;
  private readonly clock: Clock;

  constructor(private readonly options: AgentKeyStoreOptions) {
    this.syncIntervalMs = options.syncIntervalMs ?? 5_000;
    this.clock = options.clock;
  }

  set(agentId: string, userId: string, apiKey: string | null): void {
    this.remove(agentId);
    const keyHash = apiKey ? hashKey(apiKey) : null;
    this.agents.set(agentId, { userId, keyHash });
    if (keyHash) this.agentByKeyHash.set(keyHash.toString('hex'), agentId);
  }

  remove(agentId: string): void {
    const entry = this.agents.get(agentId);
    if (entry?.keyHash) {
      const hex = entry.keyHash.toString('hex');
      if (this.agentByKeyHash.get(hex) === agentId) this.agentByKeyHash.delete(hex);
    }
    this.agents.delete(agentId);
    this.lastSync.delete(agentId);
  }

  /** The agent a key belongs to, if any (for telling 403 from 401). */
  agentOf(presented: string, presentedHash = hashKey(presented)): string | undefined {
    return this.agentByKeyHash.get(presentedHash.toString('hex'));
  }

  /** True when `presentedHash` is the agent's cached key: the common case, decided without waiting. */
  matches(agentId: string, presentedHash: Buffer): boolean {
    const keyHash = this.agents.get(agentId)?.keyHash;
    return keyHash != null && timingSafeEqual(keyHash, presentedHash);
  }

  /** `presentedHash` is `hashKey(presented)`, when the caller has it already. */
  async check(agentId: string, presented: string, presentedHash = hashKey(presented)): Promise<KeyCheck> {
    const entry = this.agents.get(agentId);
    if (!entry) return 'unknown_agent';
    if (this.matches(agentId, presentedHash)) return 'ok';
    const rotated = await this.syncFromApiKeys(agentId, entry.userId);
    if (rotated !== null && timingSafeEqual(hashKey(rotated), presentedHash)) {
      await this.options.saveApiKey(agentId, rotated);
      this.set(agentId, entry.userId, rotated);
      return 'ok';
    }
    return this.agentOf(presented, presentedHash) ? 'other_agent' : 'invalid';
  }

  /** The seed's lazy sync: the user's latest active key, looked up at most once per interval per agent. */
  private syncFromApiKeys(agentId: string, userId: string): Promise<string | null> {
    const inFlight = this.syncing.get(agentId);
    if (inFlight) return inFlight;
    const last = this.lastSync.get(agentId);
    if (last !== undefined && this.clock.now() - last < this.syncIntervalMs) return Promise.resolve(null);
    this.lastSync.set(agentId, this.clock.now());
    const lookup = this.options.apiKeys.latestActiveKey(userId).finally(() => this.syncing.delete(agentId));
    this.syncing.set(agentId, lookup);
    return lookup;
  }
}

export function keysEqual(a: string, b: string): boolean {
  return timingSafeEqual(hashKey(a), hashKey(b));
}
