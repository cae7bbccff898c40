// Wires the media store: the folder and its rows, download slots, signed links, the file server, the AI attachments.
import type { Clock } from '../clock.js';
import type { Cluster } from '../cluster/cluster.js';
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import { isMediaKind } from '../engines/engine.js';
import type { AttachmentCollector } from '../inbound/inbound.service.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { DownloadSlots } from './download-slots.js';
import { createInboundAttachments } from './inbound-attachments.js';
import { MediaFiles } from './media-files.js';
import { MediaLinks } from './media-links.js';
import { MediaStore } from './media-store.js';
import { MediaStoreRepository } from './media-store.repository.js';

export interface MediaStoreModule {
  store: MediaStore;
  files: MediaFiles;
  attachments: AttachmentCollector;
  /** Creates the folder and counts what is in it; warns when links cannot be made (no APP_BASE_URL). */
  start(): Promise<void>;
  close(): Promise<void>;
}

export interface MediaStoreModuleOptions {
  config: Pick<
    Config,
    | 'appBaseUrl'
    | 'aiForwardTypes'
    | 'mediaStoreDir'
    | 'mediaStoreMaxBytes'
    | 'mediaDownloadMaxBytes'
    | 'mediaDownloadsPerAgent'
    | 'mediaDownloadsMax'
    | 'mediaUrlTtlMs'
  >;
  database: Database;
  /** Signs the links; every member has the same (the admin key). */
  secret: string;
  cluster: Pick<Cluster, 'instanceId' | 'single' | 'members'>;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
}

export function createMediaStore(options: MediaStoreModuleOptions): MediaStoreModule {
  const { config, clock, logger, metrics, cluster } = options;
  const repository = new MediaStoreRepository(options.database);
  const links = new MediaLinks(options.secret, config.appBaseUrl);
  const store = new MediaStore({
    dir: config.mediaStoreDir,
    maxTotalBytes: config.mediaStoreMaxBytes,
    maxDownloadBytes: config.mediaDownloadMaxBytes,
    repository,
    slots: new DownloadSlots({ perAgent: config.mediaDownloadsPerAgent, total: config.mediaDownloadsMax }),
    instanceId: cluster.instanceId,
    clock,
    logger,
    metrics,
  });
  const files = new MediaFiles({
    store,
    repository,
    links,
    clock,
    instanceId: cluster.instanceId,
    members: cluster.single ? undefined : () => cluster.members(),
    logger,
  });
  return {
    store,
    files,
    attachments: createInboundAttachments({ store, links, urlTtlMs: config.mediaUrlTtlMs, clock }),
    async start() {
      await store.init();
      if (!config.appBaseUrl && config.aiForwardTypes.some(isMediaKind)) {
        logger.warn(
          { event: 'media.no_base_url' },
          'APP_BASE_URL is not set: inbound files are downloaded, but the AI gets their attachments with url null',
        );
      }
    },
    close: () => files.close(),
  };
}
