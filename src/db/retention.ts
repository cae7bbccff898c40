// A periodic purge of rows past their retention period: stored inbound messages, settled outbox messages.
import type { Clock } from '../clock.js';
import type { Logger } from '../observability/logger.js';
import type { Database } from './client.js';

export const DAY_MS = 24 * 60 * 60 * 1000;
export const PURGE_INTERVAL_MS = 60 * 60 * 1000;
/** Rows deleted per statement by a purge: short transactions, whatever the backlog. */
export const PURGE_BATCH_SIZE = 5_000;

export interface PurgeTarget {
  table: string;
  /** The column, or columns (comma-separated), that pick a row out: the batch is chosen by them. */
  key: string;
  /** Which rows are past their time, with `$1` the cutoff. */
  olderThan: string;
}

/** How a purge goes: rows per statement, and a signal that stops it between two statements (a shutdown). */
export interface PurgeOptions {
  batchSize?: number;
  signal?: AbortSignal | undefined;
}

/**
 * Deletes the rows of `target` older than `cutoff`, `batchSize` per statement until none is left (each its own
 * short transaction, so a large backlog neither holds locks long nor builds one huge one), or until `signal` aborts;
 * returns how many.
 */
export async function purgeInBatches(
  database: Pick<Database, 'query'>,
  { table, key, olderThan }: PurgeTarget,
  cutoff: Date,
  { batchSize = PURGE_BATCH_SIZE, signal }: PurgeOptions = {},
): Promise<number> {
  let total = 0;
  while (!signal?.aborted) {
    const rows = await database.query(
      `WITH gone AS (
         DELETE FROM ${table} WHERE (${key}) IN (SELECT ${key} FROM ${table} WHERE ${olderThan} LIMIT $2)
         RETURNING 1
       )
       SELECT count(*)::int AS n FROM gone`,
      [cutoff.toISOString(), batchSize],
    );
    const deleted = Number(rows[0]?.n ?? 0);
    total += deleted;
    if (deleted < batchSize) return total;
  }
  return total;
}

export interface RetentionOptions {
  /** Names the job's log events: `<name>.purged`, `<name>.purge_failed`. */
  name: string;
  /** Deletes what is older than `cutoff`, stopping between two statements once `signal` aborts; returns how many. */
  purgeBefore(cutoff: Date, signal: AbortSignal): Promise<number>;
  logger: Logger;
  retentionMs: number;
  intervalMs?: number;
  clock: Clock;
}

export interface RetentionJob {
  /** One purge now; what the timer calls. */
  runOnce(): Promise<number>;
  /** Stops the timer and waits for a purge under way, so shutdown does not close the database under it. */
  stop(): Promise<void>;
}

export function startRetention(options: RetentionOptions): RetentionJob {
  const { clock } = options;
  let running: Promise<number> | null = null;
  let stopped = false;
  /** Aborted by stop(): a purge under way ends after its current statement, not after the whole backlog. */
  const stopping = new AbortController();

  const runOnce = (): Promise<number> => {
    running ??= (async () => {
      try {
        const deleted = await options.purgeBefore(new Date(clock.now() - options.retentionMs), stopping.signal);
        if (deleted > 0) options.logger.info({ event: `${options.name}.purged`, deleted });
        return deleted;
      } catch (err) {
        options.logger.warn({ event: `${options.name}.purge_failed`, err });
        return 0;
      } finally {
        running = null;
      }
    })();
    return running;
  };

  // In the background: never the reason the process stays up.
  const timer = clock.setInterval(
    () => {
      if (!stopped) void runOnce();
    },
    options.intervalMs ?? PURGE_INTERVAL_MS,
    { background: true },
  );

  return {
    runOnce,
    async stop() {
      stopped = true;
      timer.cancel();
      stopping.abort();
      await running;
    },
  };
}
