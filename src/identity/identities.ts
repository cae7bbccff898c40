// One identity per person: learns which LID and phone number belong together (per agent), keeps the pairs in the
// identities table, and answers from a bounded in-memory cache on the hot path.
import type { Clock } from '../clock.js';
import { Batcher } from '../db/batcher.js';
import { DAY_MS } from '../db/retention.js';
import type { IdentityPair, InboundMessage } from '../engines/engine.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { IdentityQuery, IdentityRepository, IdentityWrite, StoredIdentity } from './identity.repository.js';

const LID_JID = /^\d{5,20}@lid$/;
const PHONE_JID = /^[1-9]\d{7,14}@c\.us$/;

/** Entries kept per agent (a pair takes two, one per address); the least recently used go first. */
export const IDENTITY_CACHE_PER_AGENT = 10_000;
/** How long "this agent knows no pair for that address" is believed, so another member's learning shows up. */
export const NEGATIVE_TTL_MS = 60_000;
/** A pair seen again is written again after this long, so that the purge keeps the pairs still in use. */
export const REFRESH_MS = DAY_MS;

/** A person as far as the agent knows them: either address may be unknown (null). */
export interface Person {
  /** `<digits>@c.us` */
  phoneJid: string | null;
  /** `<id>@lid` */
  lid: string | null;
  pushName: string | null;
}

interface CacheEntry {
  /** null: looked up, and no pair is known. */
  pair: StoredIdentity | null;
  /** When it was looked up (negative entries) or last written (pairs). */
  at: number;
}

export interface IdentitiesOptions {
  repository: Pick<IdentityRepository, 'saveMany' | 'findMany'>;
  clock: Clock;
  logger: Logger;
  maxPerAgent?: number;
}

export class Identities {
  private readonly cache = new Map<string, Map<string, CacheEntry>>();
  private readonly maxPerAgent: number;
  private readonly writes: Batcher<IdentityWrite, undefined>;
  private readonly lookups: Batcher<IdentityQuery, StoredIdentity | null>;

  constructor(private readonly options: IdentitiesOptions) {
    this.maxPerAgent = options.maxPerAgent ?? IDENTITY_CACHE_PER_AGENT;
    this.writes = new Batcher({
      run: async (items) => {
        await options.repository.saveMany(items);
        return items.map(() => undefined);
      },
      maxInFlight: 1,
    });
    this.lookups = new Batcher({ run: (items) => options.repository.findMany(items) });
  }

  /** Learns the pair a message carries (the sender's LID and phone, where the engine gave both). */
  learnFrom(agentId: string, message: InboundMessage): void {
    if (message.fromMe || !message.senderLid || !message.senderPhoneJid) return;
    this.learn(agentId, [{ lid: message.senderLid, phoneJid: message.senderPhoneJid, pushName: message.pushName }]);
  }

  /** Keeps pairs in the cache at once and writes the new or changed ones (batched, in the background). */
  learn(agentId: string, pairs: readonly IdentityPair[]): void {
    const now = this.options.clock.now();
    for (const { lid, phoneJid, pushName } of pairs) {
      if (!LID_JID.test(lid) || !PHONE_JID.test(phoneJid)) continue;
      const phone = digitsOf(phoneJid);
      const name = pushName || null;
      const known = this.peek(agentId, lid)?.pair;
      const unchanged =
        known?.phone === phone &&
        (name === null || name === known.pushName) &&
        now - (this.peek(agentId, lid)?.at ?? 0) < REFRESH_MS;
      if (unchanged) continue;
      const pair: StoredIdentity = { lid, phone, pushName: name ?? known?.pushName ?? null };
      this.put(agentId, lid, pair, now);
      this.put(agentId, phoneJid, pair, now);
      this.writes.add({ agentId, ...pair, at: new Date(now) }).catch((err: unknown) => {
        this.options.logger.warn({ event: 'identity.not_saved', agentId, err: errorMessage(err) });
      });
    }
  }

  /**
   * The person behind an address (`@lid` or `@c.us`) from the cache: undefined when the cache cannot say (look it
   * up), else what the agent knows (the address itself, and the other one when a pair is known).
   */
  cached(agentId: string, jid: string): Person | undefined {
    if (!LID_JID.test(jid) && !PHONE_JID.test(jid)) return personOf(jid, null);
    const entry = this.peek(agentId, jid);
    if (!entry) return undefined;
    if (entry.pair === null && this.options.clock.now() - entry.at >= NEGATIVE_TTL_MS) return undefined;
    this.touch(agentId, jid, entry);
    return personOf(jid, entry.pair);
  }

  /** The person behind an address, from the cache or else the table; a failed look-up knows only the address. */
  async find(agentId: string, jid: string): Promise<Person> {
    const cached = this.cached(agentId, jid);
    if (cached) return cached;
    const isLid = jid.endsWith('@lid');
    try {
      const pair = await this.lookups.add({
        agentId,
        lid: isLid ? jid : null,
        phone: isLid ? null : digitsOf(jid),
      });
      // A pair learned while the look-up ran is newer than what it read.
      const raced = this.peek(agentId, jid);
      if (raced?.pair) return personOf(jid, raced.pair);
      this.put(agentId, jid, pair, this.options.clock.now());
      return personOf(jid, pair);
    } catch (err) {
      this.options.logger.warn({ event: 'identity.lookup_failed', agentId, err: errorMessage(err) });
      return personOf(jid, null);
    }
  }

  /**
   * Where a send to `jid` goes: a LID whose phone number the agent knows goes to that number's chat (the chat the
   * person's messages are kept under, and an address every engine can deliver to); anything else as it is.
   */
  async recipient(agentId: string, jid: string): Promise<string> {
    if (!LID_JID.test(jid)) return jid;
    return (await this.find(agentId, jid)).phoneJid ?? jid;
  }

  /** Resolves once every pair learned so far is written. */
  idle(): Promise<void> {
    return this.writes.idle();
  }

  private peek(agentId: string, key: string): CacheEntry | undefined {
    return this.cache.get(agentId)?.get(key);
  }

  private touch(agentId: string, key: string, entry: CacheEntry): void {
    const entries = this.cache.get(agentId);
    if (!entries) return;
    // Map order is the LRU order: re-inserting moves it to the newest end.
    entries.delete(key);
    entries.set(key, entry);
  }

  private put(agentId: string, key: string, pair: StoredIdentity | null, at: number): void {
    let entries = this.cache.get(agentId);
    if (!entries) {
      entries = new Map();
      this.cache.set(agentId, entries);
    }
    entries.delete(key);
    entries.set(key, { pair, at });
    if (entries.size > this.maxPerAgent) {
      const oldest = entries.keys().next().value;
      if (oldest !== undefined) entries.delete(oldest);
    }
  }
}

function digitsOf(jid: string): string {
  return jid.slice(0, jid.indexOf('@'));
}

/** The person an address names, with the other address from a known pair. */
function personOf(jid: string, pair: StoredIdentity | null): Person {
  const isLid = jid.endsWith('@lid');
  const isPhone = jid.endsWith('@c.us');
  return {
    phoneJid: pair ? `${pair.phone}@c.us` : isPhone ? jid : null,
    lid: pair ? pair.lid : isLid ? jid : null,
    pushName: pair?.pushName ?? null,
  };
}
