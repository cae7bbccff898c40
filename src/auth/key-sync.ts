// The key sync: every KEY_SYNC_INTERVAL_MS, one query brings every agent's key in step with api_keys, so a key
// deactivated, deleted or superseded there stops working within that interval, with no query per request.
import { randomUUID } from 'node:crypto';
import type { Clock, Timer } from '../clock.js';
import type { Database } from '../db/client.js';
import type { Logger } from '../observability/logger.js';
import type { AgentKeyStore, KeyEntry } from './agent-keys.js';
import { hashKey } from './agent-keys.js';
import type { AgentKeyRow, AgentKeysRepository } from './agent-keys.repository.js';
import { decideKey } from './key-state.js';

export interface KeySyncOptions {
  store: AgentKeyStore;
  repo: AgentKeysRepository;
  clock: Clock;
  logger: Logger;
  intervalMs: number;
  /**
   * Other processes change keys too (a cluster on PostgreSQL): a change made here is announced on `wamt_keys`, and
   * an announcement heard runs a pass at once, so an agent created on one member opens the others in milliseconds.
   */
  shared?: Pick<Database, 'query' | 'listen'>;
}

export interface KeySync {
  /** Loads every agent's key (boot: before any session is restored), then syncs every interval. */
  start(): Promise<void>;
  /** One pass now; resolves when it is applied. Never rejects: a failure keeps the keys as they are. */
  runOnce(): Promise<boolean>;
  /** Stops the timer and waits for a pass in flight. */
  stop(): Promise<void>;
  /** A key was set or removed here: the other processes sync now (with `shared`; nothing otherwise). */
  announce(): void;
}

const CHANNEL = 'wamt_keys';

export function createKeySync({ store, repo, clock, logger, intervalMs, shared }: KeySyncOptions): KeySync {
  const log = logger.child({ component: 'key-sync' });
  let timer: Timer | undefined;
  let running: Promise<boolean> | undefined;
  let failing = false;
  /** An announcement came during a pass, which may have read the rows before the change: one more pass. */
  let again = false;
  let unlisten: (() => Promise<void>) | undefined;
  let stopped = false;

  const pass = async (): Promise<void> => {
    const before = store.entries();
    const rows = await repo.all();
    // Every key changes at once, right after the read; the rows follow.
    const writes: (() => Promise<void>)[] = [];
    const seen = new Set<string>();
    for (const row of rows) {
      seen.add(row.agentId);
      const write = apply(row, before.get(row.agentId));
      if (write) writes.push(write);
    }
    // Rows deleted by another process, or by hand: their keys go too.
    for (const [agentId, entry] of before) if (!seen.has(agentId)) store.replace(agentId, entry, null);
    for (const write of writes) await write();
  };

  /** Applies one row to the store; returns the write that brings the row in step, if one is needed. */
  const apply = (row: AgentKeyRow, before: KeyEntry | undefined): (() => Promise<void>) | undefined => {
    const current = row.apiKey === null ? null : hashKey(row.apiKey);
    const latest = row.latest === null ? null : hashKey(row.latest);
    const decision = decideKey({ current, source: row.source, latest, currentInApiKeys: row.currentInApiKeys });
    const keyHash = decision.action === 'adopt' ? latest : decision.action === 'revoke' ? null : current;
    const next: KeyEntry = { userId: row.userId, keyHash, source: decision.source };
    const same =
      before !== undefined &&
      before.userId === next.userId &&
      before.source === next.source &&
      (before.keyHash === null ? keyHash === null : keyHash !== null && before.keyHash.equals(keyHash));
    if (!same && store.replace(row.agentId, before, next) && decision.action !== 'keep') {
      const outcome = decision.action === 'adopt' ? 'adopted' : 'revoked';
      log.info({ event: `auth.key.${outcome}`, agentId: row.agentId }, `agent key ${outcome} from api_keys`);
    }
    // The row follows, only while it still holds the key that was read (a creation meanwhile wins).
    const { latest: adopted } = row;
    if (decision.action === 'adopt' && adopted !== null) {
      return () => repo.save(row.agentId, adopted, 'api_keys', row.apiKey);
    }
    const source = decision.source;
    if (source !== null && source !== row.source) return () => repo.saveSource(row.agentId, source, row.apiKey);
    return undefined;
  };

  const runOnce = (): Promise<boolean> => {
    running ??= pass()
      .then(() => {
        if (failing) log.info({ event: 'auth.key_sync.recovered' }, 'key sync works again');
        failing = false;
        return true;
      })
      .catch((err: unknown) => {
        // The last known keys stay: revoking everything because the database is down would stop every agent.
        if (!failing) log.warn({ event: 'auth.key_sync.failed', err }, 'key sync failed; keeping the last known keys');
        else log.debug({ event: 'auth.key_sync.failed', err }, 'key sync still failing');
        failing = true;
        return false;
      })
      .finally(() => {
        running = undefined;
        if (again && !stopped) {
          again = false;
          void runOnce();
        }
      });
    return running;
  };

  /** This process's announcements come back to it too: they carry its token, and are not acted on. */
  const token = randomUUID();
  const heard = (from: string): void => {
    if (from === token) return;
    if (running) again = true;
    else void runOnce();
  };

  return {
    async start() {
      // At boot a failure is not hidden: the keys would be those of nobody.
      await pass();
      timer = clock.setInterval(() => void runOnce(), intervalMs, { background: true });
      if (shared) unlisten = await shared.listen(CHANNEL, heard, () => heard(''));
    },
    runOnce,
    async stop() {
      stopped = true;
      timer?.cancel();
      timer = undefined;
      await unlisten?.();
      await running;
    },
    announce() {
      if (!shared || stopped) return;
      shared.query('SELECT pg_notify($1, $2)', [CHANNEL, token]).catch((err: unknown) => {
        log.debug({ event: 'auth.key_announce_failed', err }, 'could not announce a key change; the sync catches up');
      });
    },
  };
}
