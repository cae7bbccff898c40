// Builds the send API's side (media fetch, previews, the messaging service) over the outbox.
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import type { Logger } from '../observability/logger.js';
import type { Outbox } from '../outbox/outbox.js';
import { type AddressChecker, anyAddress, publicAddressesOnly } from './address-policy.js';
import { MediaBudget } from './media-budget.js';
import { MediaFetcher } from './media-fetch.js';
import { MessagingService, type RecipientDirectory } from './messaging.service.js';
import { PreviewStore } from './preview-store.js';

export type MessagingConfig = Pick<
  Config,
  | 'mediaMaxBytes'
  | 'mediaAllowPrivateNetworks'
  | 'tempDir'
  | 'defaultCountryCode'
  | 'mediaInFlightPerAgent'
  | 'mediaInFlightMax'
  | 'mediaLimits'
>;

export interface MessagingDeps {
  config: MessagingConfig;
  outbox: Outbox;
  logger: Logger;
  clock: Clock;
  /** Replaces the address policy derived from MEDIA_ALLOW_PRIVATE_NETWORKS (tests). */
  checkAddress?: AddressChecker;
  /** The LID and phone pairs the agents know: a send to a known LID goes to the number's chat. */
  recipients?: RecipientDirectory;
}

export interface Messaging {
  service: MessagingService;
  previews: PreviewStore;
  /** Images in flight, bounded per agent and in total (the media route takes a place before reading the body). */
  mediaBudget: MediaBudget;
  /** Starts the preview cleanup job. */
  start(): void;
  /** Stops the cleanup job and the fetcher's connections. */
  close(): Promise<void>;
}

export function createMessaging({ config, outbox, logger, clock, checkAddress, recipients }: MessagingDeps): Messaging {
  const fetcher = new MediaFetcher({
    maxBytes: config.mediaMaxBytes,
    checkAddress: checkAddress ?? (config.mediaAllowPrivateNetworks ? anyAddress : publicAddressesOnly),
  });
  const previews = new PreviewStore({ dir: config.tempDir, logger, clock });
  const service = new MessagingService({
    outbox,
    fetcher,
    previews,
    defaultCountryCode: config.defaultCountryCode,
    mediaMaxBytes: config.mediaMaxBytes,
    recipients,
    mediaLimits: config.mediaLimits,
    tempDir: config.tempDir,
  });
  const mediaBudget = new MediaBudget({ perAgent: config.mediaInFlightPerAgent, total: config.mediaInFlightMax });
  let closing: Promise<void> | undefined;
  return {
    service,
    previews,
    mediaBudget,
    start() {
      previews.start();
    },
    close() {
      closing ??= (async () => {
        await previews.stop();
        await fetcher.close();
      })();
      return closing;
    },
  };
}
