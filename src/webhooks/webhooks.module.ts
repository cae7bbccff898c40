// Builds the webhooks capability: the repository, the dispatcher, and the URL policy the routes check.
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import { type AddressChecker, anyAddress, publicAddressesOnly } from '../messaging/address-policy.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { WebhookDispatcher } from './webhook-dispatcher.js';
import { WebhooksRepository } from './webhooks.repository.js';

export interface Webhooks {
  repository: WebhooksRepository;
  dispatcher: WebhookDispatcher;
  /** Which addresses a webhook URL may reach (WEBHOOK_ALLOW_PRIVATE_NETWORKS). */
  checkAddress: AddressChecker;
}

export function createWebhooks(deps: {
  config: Pick<
    Config,
    'webhookAllowPrivateNetworks' | 'webhookRetryHours' | 'webhookConcurrencyPerEndpoint' | 'webhookConcurrencyMax'
  >;
  database: Database;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
}): Webhooks {
  const { config } = deps;
  const checkAddress = config.webhookAllowPrivateNetworks ? anyAddress : publicAddressesOnly;
  const repository = new WebhooksRepository(deps.database);
  const dispatcher = new WebhookDispatcher({
    repository,
    database: deps.database,
    clock: deps.clock,
    logger: deps.logger,
    metrics: deps.metrics,
    checkAddress,
    retryWindowMs: config.webhookRetryHours * 60 * 60 * 1000,
    perEndpoint: config.webhookConcurrencyPerEndpoint,
    max: config.webhookConcurrencyMax,
  });
  return { repository, dispatcher, checkAddress };
}
