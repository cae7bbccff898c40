// Builds the messaging side (outbox, dispatcher, media fetch, previews) from the configuration and its ports.
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { type AddressChecker, anyAddress, publicAddressesOnly } from './address-policy.js';
import { MediaFetcher } from './media-fetch.js';
import { MessagingService } from './messaging.service.js';
import { OutboxRepository } from './outbox.repository.js';
import { OutboxService } from './outbox.service.js';
import { PreviewStore } from './preview-store.js';
import type { SessionGateway } from './session-gateway.js';
import { TokenBuckets } from './token-bucket.js';

export type MessagingConfig = Pick<
  Config,
  | 'sendWaitMs'
  | 'queueMaxPerAgent'
  | 'rateLimitPerMinute'
  | 'rateLimitBurst'
  | 'mediaMaxBytes'
  | 'mediaAllowPrivateNetworks'
  | 'tempDir'
  | 'defaultCountryCode'
>;

export interface MessagingDeps {
  config: MessagingConfig;
  database: Database;
  logger: Logger;
  metrics: Metrics;
  sessions: SessionGateway;
  /** Replaces the address policy derived from MEDIA_ALLOW_PRIVATE_NETWORKS (tests). */
  checkAddress?: AddressChecker;
}

export interface Messaging {
  service: MessagingService;
  outbox: OutboxService;
  previews: PreviewStore;
  /** Resumes what a previous process left in the outbox and starts the preview cleanup job. */
  start(): Promise<void>;
  /** Waits for sends in flight, then stops timers, the cleanup job and the fetcher's connections. */
  close(): Promise<void>;
}

export function createMessaging({
  config,
  database,
  logger,
  metrics,
  sessions,
  checkAddress,
}: MessagingDeps): Messaging {
  const outbox = new OutboxService({
    repository: new OutboxRepository(database),
    sessions,
    buckets: new TokenBuckets({ capacity: config.rateLimitBurst, refillPerMinute: config.rateLimitPerMinute }),
    metrics,
    logger,
    sendWaitMs: config.sendWaitMs,
    queueMaxPerAgent: config.queueMaxPerAgent,
  });
  const fetcher = new MediaFetcher({
    maxBytes: config.mediaMaxBytes,
    checkAddress: checkAddress ?? (config.mediaAllowPrivateNetworks ? anyAddress : publicAddressesOnly),
  });
  const previews = new PreviewStore({ dir: config.tempDir, logger });
  const service = new MessagingService({
    outbox,
    fetcher,
    previews,
    defaultCountryCode: config.defaultCountryCode,
    mediaMaxBytes: config.mediaMaxBytes,
  });
  let closing: Promise<void> | undefined;
  return {
    service,
    outbox,
    previews,
    async start() {
      previews.start();
      await outbox.resumeAll();
    },
    close() {
      closing ??= (async () => {
        await outbox.close();
        await previews.stop();
        await fetcher.close();
      })();
      return closing;
    },
  };
}
