// A periodic purge of rows past their retention period: stored inbound messages, settled outbox messages.
import type { Clock } from '../clock.js';
import type { Logger } from '../observability/logger.js';

export const DAY_MS = 24 * 60 * 60 * 1000;
export const PURGE_INTERVAL_MS = 60 * 60 * 1000;

export interface RetentionOptions {
  /** Names the job's log events: `<name>.purged`, `<name>.purge_failed`. */
  name: string;
  /** Deletes what is older than `cutoff`; returns how many rows. */
  purgeBefore(cutoff: Date): Promise<number>;
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

  const runOnce = (): Promise<number> => {
    running ??= (async () => {
      try {
        const deleted = await options.purgeBefore(new Date(clock.now() - options.retentionMs));
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
      await running;
    },
  };
}
