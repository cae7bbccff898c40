// The composition root: reads the configuration, opens the database, picks the engines and wires the services.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { ActivityRepository } from './activity/activity.repository.js';
import { createAgentDirectory } from './ai/agent-directory.js';
import type { ReplySender } from './ai/agent-ports.js';
import { AiClient } from './ai/ai-client.js';
import { RunService } from './ai/run.service.js';
import { resolveAdminKey } from './auth/admin-key.js';
import { createApiKeysRepository } from './auth/api-keys.repository.js';
import type { Auth } from './auth/auth.hooks.js';
import { createAuthModule } from './auth/auth.module.js';
import { type Clock, systemClock } from './clock.js';
import type { Cluster } from './cluster/cluster.js';
import { createCluster } from './cluster/cluster.module.js';
import { clusterSecret, createForwarder, type Forwarder } from './cluster/forward.js';
import { lockDataDir } from './cluster/instance-lock.js';
import type { Config } from './config.js';
import { type Database, openDatabase } from './db/client.js';
import { migrate } from './db/migrate.js';
import { DAY_MS, type RetentionJob, type RetentionOptions, startRetention } from './db/retention.js';
import { createBaileysEngine } from './engines/baileys/baileys.engine.js';
import type { Engine } from './engines/engine.js';
import { SandboxEngine } from './engines/sandbox/sandbox.engine.js';
import { createWhatsappWebEngine } from './engines/whatsapp-web/whatsapp-web.engine.js';
import { HistoryRepository } from './history/history.repository.js';
import { Identities } from './identity/identities.js';
import { IdentityRepository } from './identity/identity.repository.js';
import { InboundRepository } from './inbound/inbound.repository.js';
import { InboundService } from './inbound/inbound.service.js';
import { createMediaStore, type MediaStoreModule } from './media-store/media-store.module.js';
import { createMessaging, type Messaging } from './messaging/messaging.module.js';
import { createLogger, type Logger } from './observability/logger.js';
import { createMetrics, type Metrics } from './observability/metrics.js';
import { createOutbox, type Outbox } from './outbox/outbox.js';
import { fileCommitTimeoutMs } from './outbox/outbox.store.js';
import { createPacing, type Pacing } from './pacing/pacing.module.js';
import { secureEmbeddedDatabase, securePrivateDirs } from './private-files.js';
import { SessionBoard } from './sessions/session-board.js';
import { createSessionGateway } from './sessions/session-gateway.js';
import { type BackoffOptions, SessionSupervisor } from './sessions/session-supervisor.js';
import { createSessionsRepository } from './sessions/sessions.repository.js';
import { SessionsService } from './sessions/sessions.service.js';
import { createWebhooks, type Webhooks } from './webhooks/webhooks.module.js';
import type { EngineName } from './whatsapp/engine-names.js';

const MEDIA_PURGE_INTERVAL_MS = 10 * 60 * 1000;
/**
 * Outbound file chunks of no message are kept an hour, or twice as long as the largest file's commit may take when
 * that is longer (a large DB_STATEMENT_TIMEOUT_MS): the purge never takes the chunks of a commit under way.
 */
const strayChunkMs = (config: Config): number =>
  Math.max(
    60 * 60 * 1000,
    2 * fileCommitTimeoutMs(config.dbStatementTimeoutMs, Math.max(...Object.values(config.mediaLimits))),
  );

/** Session states of a client that is being linked to a phone, or starting: a rebalance leaves them where they are. */
const LINKING_STATES = new Set(['starting', 'qr', 'authenticated']);

export interface ContainerOverrides {
  logger?: Logger;
  /** A database opened by the caller (tests); the container then leaves it open on close. */
  database?: Database;
  /** Extra or replacement engines (tests). */
  engines?: Partial<Record<EngineName, Engine>>;
  reconnectBackoff?: Partial<BackoffOptions>;
  collectProcessMetrics?: boolean;
  /** Every now() and timer of the services (tests pass a FakeClock and move it themselves). */
  clock?: Clock;
}

export interface Container {
  config: Config;
  logger: Logger;
  clock: Clock;
  metrics: Metrics;
  database: Database;
  /** Which member runs which session (leases on PostgreSQL; this process alone on PGlite). */
  cluster: Cluster;
  /** The live state of every session, whichever member runs it. */
  board: SessionBoard;
  /** Sends the requests about a session to the member that runs it. */
  forwarder: Forwarder;
  auth: Auth;
  adminKey: string;
  supervisor: SessionSupervisor;
  sessions: SessionsService;
  sandbox: SandboxEngine | undefined;
  outbox: Outbox;
  messaging: Messaging;
  inbound: InboundService;
  /** The stored messages of each agent's chats, both directions. */
  history: HistoryRepository;
  /** Per-minute counts and AI latency of an agent (GET /agents/{agentId}/activity). */
  activity: ActivityRepository;
  run: RunService;
  /** Webhook endpoints and the delivery of their events. */
  webhooks: Webhooks;
  /** The LID and phone pairs each agent has learned (one identity per person). */
  identities: Identities;
  /** Per-agent pacing profiles and the daily cap on new contacts. */
  pacing: Pacing;
  /** Inbound files downloaded for the AI, and their signed links. */
  media: MediaStoreModule;
  startedAt: number;
  /**
   * start() has finished: agent keys loaded, sessions restored or leases taken. Until then /health/ready answers 503,
   * so that no load balancer sends requests that a member still joining would refuse (an unknown key) or half-serve.
   */
  started: boolean;
  draining: boolean;
  /** Restores sessions and resumes pending work; called once the HTTP app is built. */
  start(): Promise<void>;
  /** Stops engines (keeping logins) and background jobs, then closes the database it opened. Idempotent. */
  close(): Promise<void>;
}

export async function createContainer(config: Config, overrides: ContainerOverrides = {}): Promise<Container> {
  const logger = overrides.logger ?? createLogger({ level: config.logLevel });
  const clock = overrides.clock ?? systemClock;
  const metrics = createMetrics({
    perAgent: config.metricsPerAgent,
    collectProcessMetrics: overrides.collectProcessMetrics ?? true,
  });
  // Before anything is written in DATA_DIR: logins, keys and messages are for this user only.
  await securePrivateDirs(config, logger);
  const ownsDatabase = !overrides.database;
  // One process per DATA_DIR with the embedded database: a second one stops here, before it opens it.
  const dataDirLock = ownsDatabase && !config.dbUrl ? await lockDataDir(config.dataDir) : undefined;
  let database: Database;
  try {
    database =
      overrides.database ??
      (await openDatabase(
        config.dbUrl
          ? { url: config.dbUrl, statementTimeoutMs: config.dbStatementTimeoutMs }
          : { dataDir: path.join(config.dataDir, 'pg') },
      ));
  } catch (err) {
    await dataDirLock?.release();
    throw err;
  }
  try {
    await migrate(database, { logger });
  } catch (err) {
    if (ownsDatabase) await database.close();
    await dataDirLock?.release();
    throw err;
  }
  if (ownsDatabase) await secureEmbeddedDatabase(config, logger);
  // On PostgreSQL every member of the cluster must take the same admin key: a generated one is shared there.
  const adminKey = await resolveAdminKey(
    config.adminApiKey,
    config.dataDir,
    logger,
    database.kind === 'postgres' ? database : undefined,
  );

  const sessionsRepo = createSessionsRepository(database.db);
  const apiKeys = createApiKeysRepository(database.db);
  const { keys, auth, keySync } = createAuthModule({
    config,
    database,
    apiKeys,
    adminKey,
    clock,
    logger,
    // On PostgreSQL other members create and delete agents too (the cluster).
    shared: database.kind === 'postgres',
  });
  // Per-agent metric labels only for agents that exist: a made-up id in a request must not make a series.
  metrics.setKnownAgents((agentId) => keys.has(agentId));

  const sandbox = config.sandboxEnabled ? new SandboxEngine({ database, clock }) : undefined;
  const wweb = createWhatsappWebEngine({
    authDir: config.wwebjsAuthDir,
    chromePath: config.chromePath,
    logger,
    clock,
    // On PostgreSQL sessions move between processes, so their logins live in the database; PGlite has one process,
    // for which the folder is enough.
    database: database.kind === 'postgres' ? database : undefined,
  });
  const engines = new Map<EngineName, Engine>([
    ['whatsapp-web', wweb],
    ['baileys', createBaileysEngine({ database, logger })],
  ]);
  if (sandbox) engines.set('sandbox', sandbox);
  for (const [name, engine] of Object.entries(overrides.engines ?? {})) engines.set(name as EngineName, engine);

  const supervisor = new SessionSupervisor({
    engines,
    repo: sessionsRepo,
    logger,
    metrics,
    clock,
    ...(overrides.reconnectBackoff ? { backoff: overrides.reconnectBackoff } : {}),
  });
  const cluster = createCluster({ config, database, clock, logger, metrics });
  const board = new SessionBoard({
    supervisor,
    database,
    logger,
    instanceId: cluster.instanceId,
    shared: !cluster.single,
  });
  const pacing = createPacing({ database, clock, logger });
  const sessions = new SessionsService({
    repo: sessionsRepo,
    apiKeys,
    keys,
    supervisor,
    logger,
    defaultEngine: config.waEngine,
    aiBackendUrl: config.aiBackendUrl,
    qrWaitTimeoutMs: config.qrWaitTimeoutMs,
    startConcurrency: config.sessionStartConcurrency,
    defaultCountryCode: config.defaultCountryCode,
    board,
    cluster,
    pacing: pacing.profiles,
  });
  // A deleted agent's profile and count of new contacts go with it, and so does its sandbox sent log.
  sessions.onRemoval((agentId) => pacing.forget(agentId));
  if (sandbox) sessions.onRemoval(async (agentId) => sandbox.forgetAgent(agentId));
  const forwarder = createForwarder({
    cluster,
    // One process forwards nothing; members share the secret (CLUSTER_SECRET, or one kept in the database).
    secret: cluster.single
      ? randomBytes(32).toString('base64url')
      : await clusterSecret(database, config.clusterSecret),
    logger,
    timeoutMs: config.qrWaitTimeoutMs + 15_000,
  });

  const ai = new AiClient({
    aiBackendUrl: config.aiBackendUrl,
    timeoutMs: config.aiTimeoutMs,
    metrics,
    logger,
    clock,
  });
  const directory = createAgentDirectory(sessionsRepo, supervisor);
  const outbox = createOutbox({
    database,
    sessions: createSessionGateway(supervisor, sessions, board),
    ownership: cluster,
    metrics,
    logger,
    clock,
    config,
    pacing: pacing.outbox,
  });
  const identityRepo = new IdentityRepository(database);
  const identities = new Identities({ repository: identityRepo, clock, logger });
  const messaging = createMessaging({ config, outbox, logger, clock, recipients: identities });
  // AI replies take the same road as API sends: committed to the outbox, then rate-limited and FIFO per agent.
  const replies: ReplySender = {
    sendText: (agentId, to, text, { quotedMessageId, traceId }) =>
      messaging.service.sendText(agentId, { to, message: text, quotedMessageId }, { traceId }),
  };
  const media = createMediaStore({ config, database, secret: adminKey, cluster, clock, logger, metrics });
  const inboundRepo = new InboundRepository(database);
  const history = new HistoryRepository(database);
  const activity = new ActivityRepository(database, clock);
  const inbound = new InboundService({
    directory,
    ai,
    replies,
    repository: inboundRepo,
    people: identities,
    history: { reader: history, limit: config.aiHistoryMessages },
    forwardTypes: new Set(config.aiForwardTypes),
    attachments: media.attachments,
    metrics,
    logger,
    developerNumber: config.developerNumber,
    defaultCountryCode: config.defaultCountryCode,
    perAgentConcurrency: config.aiConcurrencyPerAgent,
    maxConcurrency: config.aiConcurrencyMax,
    clock,
  });
  supervisor.on('message', (agentId, message) => inbound.handle(agentId, message));
  // WhatsApp's receipts of what the agents sent are recorded on their outbox rows.
  supervisor.on('ack', (agentId, ack) => outbox.receipt(agentId, ack));
  supervisor.on('identities', (agentId, pairs) => identities.learn(agentId, pairs));
  const run = new RunService({ directory, ai, replies, defaultCountryCode: config.defaultCountryCode, logger });
  const webhooks = createWebhooks({ config, database, clock, logger, metrics });
  const retention: RetentionJob[] = [];

  let closing: Promise<void> | undefined;
  const container: Container = {
    config,
    logger,
    clock,
    metrics,
    database,
    cluster,
    board,
    forwarder,
    auth,
    adminKey,
    supervisor,
    sessions,
    sandbox,
    outbox,
    messaging,
    inbound,
    history,
    activity,
    run,
    webhooks,
    identities,
    pacing,
    media,
    startedAt: clock.now(),
    started: false,
    draining: false,
    async start() {
      if (config.sessionsAuth === 'none') {
        logger.warn(
          { event: 'auth.sessions_open' },
          'SESSIONS_AUTH=none: anyone who can reach this port can take over any agent. The /sessions endpoints ' +
            "take no key: anyone can read an agent's QR code and link their own phone to it, give it a key of " +
            'their own, or delete it. Use it only on a network where every client is trusted.',
        );
      }
      // Before anything else: keys revoked in api_keys while the service was down must not work, even briefly.
      await keySync.start();
      await media.start();
      // Stored messages, and what belongs to them, are kept MESSAGE_RETENTION_DAYS.
      const keptWithMessages = (name: string, purgeBefore: RetentionOptions['purgeBefore']) =>
        startRetention({ name, purgeBefore, retentionMs: config.messageRetentionDays * DAY_MS, logger, clock });
      retention.push(
        startRetention({
          name: 'media',
          purgeBefore: (cutoff, signal) => media.store.purgeBefore(cutoff, signal),
          retentionMs: config.mediaRetentionMs,
          // Hours of retention, not days: purged within minutes of their time, not an hour late.
          intervalMs: MEDIA_PURGE_INTERVAL_MS,
          logger,
          clock,
        }),
        keptWithMessages('inbound', (cutoff, signal) => inboundRepo.purgeBefore(cutoff, signal)),
        keptWithMessages('outbox', (cutoff, signal) => outbox.purgeSettledBefore(cutoff, signal)),
        startRetention({
          name: 'outbox_chunks',
          purgeBefore: (cutoff, signal) => outbox.purgeStrayChunksBefore(cutoff, signal),
          retentionMs: strayChunkMs(config),
          logger,
          clock,
        }),
        keptWithMessages('identities', (cutoff, signal) => identityRepo.purgeBefore(cutoff, signal)),
        keptWithMessages('webhook_deliveries', (cutoff, signal) =>
          webhooks.repository.purgeSettledBefore(cutoff, { signal }),
        ),
      );
      messaging.start();
      // Any member delivers any due delivery (claimed in the database, one member at a time): what a previous
      // process left pending goes out now.
      await webhooks.dispatcher.start();
      // Before any queue is dispatched: a paced agent's messages keep their pace from the first one.
      await pacing.start();
      // Before sessions come back, so what a previous process left queued goes out as each one is ready.
      await outbox.resumeAll();
      await board.start();
      await outbox.start();
      // One process runs every session; a member of a cluster runs those whose leases it holds, through the hooks
      // (queue first, so that what waits goes out once the session is ready).
      if (cluster.single) await sessions.restore();
      await cluster.start({
        acquired: async (agentId, epoch) => {
          await outbox.adopt(agentId, epoch);
          await sessions.adopt(agentId);
        },
        released: async (agentId) => {
          await outbox.release(agentId);
          await sessions.release(agentId);
        },
        // A session being linked (starting, showing a QR or pairing code, just scanned) is not moved to rebalance:
        // the phone is linking to this member's client, which a move would stop.
        movable: (agentId) => !LINKING_STATES.has(supervisor.snapshot(agentId).sessionState),
      });
      container.started = true;
    },
    close() {
      closing ??= (async () => {
        container.draining = true;
        // In-flight AI calls get a bounded grace; one cut off stays claimed and is not answered twice.
        await inbound.close(config.shutdownTimeoutMs / 2);
        await identities.idle();
        await Promise.all(retention.splice(0).map((job) => job.stop()));
        await keySync.stop();
        await ai.close();
        await media.close();
        await messaging.close();
        // Sends in flight finish, and their outcomes are written, while sessions and the database are still up.
        await outbox.close();
        await pacing.stop();
        // Attempts under way end (each within its timeout) and their outcomes are written; the rest stays pending.
        await webhooks.dispatcher.stop();
        // Then every lease is given up (its session stopped, its login saved, by the hooks) so that other members
        // take over now rather than when the leases expire.
        await cluster.stop();
        await board.close();
        await forwarder.close();
        await supervisor.stopAll(Math.max(4, config.sessionStartConcurrency));
        for (const engine of engines.values()) await engine.close?.();
        if (ownsDatabase) await database.close();
        await dataDirLock?.release();
      })();
      return closing;
    },
  };
  return container;
}
