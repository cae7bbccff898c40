// The periodic job that forgets handled inbound message ids after the retention period.
import type { Logger } from '../observability/logger.js';

export const INBOUND_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;
export const INBOUND_PURGE_INTERVAL_MS = 60 * 60 * 1000;

export interface InboundRetentionOptions {
  purgeBefore(cutoff: Date): Promise<number>;
  logger: Logger;
  /** How long ids are remembered; WhatsApp does not redeliver anything this old. */
  retentionMs?: number;
  intervalMs?: number;
  now?: () => Date;
}

export interface InboundRetentionJob {
  /** One purge now; what the timer calls. */
  runOnce(): Promise<number>;
  /** Stops the timer and waits for a purge under way, so shutdown does not close the database under it. */
  stop(): Promise<void>;
}

export function startInboundRetention(options: InboundRetentionOptions): InboundRetentionJob {
  const retentionMs = options.retentionMs ?? INBOUND_RETENTION_MS;
  const now = options.now ?? (() => new Date());
  let running: Promise<number> | null = null;
  let stopped = false;

  const runOnce = (): Promise<number> => {
    running ??= (async () => {
      try {
        const deleted = await options.purgeBefore(new Date(now().getTime() - retentionMs));
        if (deleted > 0) options.logger.info({ event: 'inbound.purged', deleted });
        return deleted;
      } catch (err) {
        options.logger.warn({ event: 'inbound.purge_failed', err });
        return 0;
      } finally {
        running = null;
      }
    })();
    return running;
  };

  const timer = setInterval(() => {
    if (!stopped) void runOnce();
  }, options.intervalMs ?? INBOUND_PURGE_INTERVAL_MS);
  timer.unref(); // never the reason the process stays up

  return {
    runOnce,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
