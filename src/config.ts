// Parses the environment once, at boot. The only module that reads process.env.
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseDotenv } from 'dotenv';
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { ENGINE_NAMES } from './whatsapp/engine-names.js';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', ''])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const MiB = 1024 * 1024;
const emptyAsUndefined = (v: unknown) => (v === '' ? undefined : v);
/** A whole number, with its default or optional; set but empty (`PORT=`) counts as not set, not as 0. */
const int = (min: number, max = Number.MAX_SAFE_INTEGER) => {
  const number = z.coerce.number().int().min(min).max(max);
  return {
    default: (value: number) => z.preprocess(emptyAsUndefined, number.default(value)),
    optional: () => z.preprocess(emptyAsUndefined, number.optional()),
  };
};
/** The longest delay a Node.js timer takes (2^31 - 1 ms, ~24.8 days): a longer one would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** A duration in milliseconds that a timer can wait. */
const ms = (min: number, max = MAX_TIMER_MS) => int(min, Math.min(max, MAX_TIMER_MS));
const optionalString = z.preprocess(emptyAsUndefined, z.string().optional());

/** The message types AI_FORWARD_TYPES may name (the port's InboundMessageType, but `other`). */
export const FORWARDABLE_TYPES = ['text', 'image', 'audio', 'video', 'document', 'sticker', 'location'] as const;
export type ForwardableType = (typeof FORWARDABLE_TYPES)[number];
export const DEFAULT_AI_FORWARD_TYPES: ForwardableType[] = ['text', 'image', 'audio', 'document', 'location'];
/** Other names people use for the same types. */
const FORWARD_TYPE_ALIASES: Record<string, ForwardableType> = {
  chat: 'text',
  voice: 'audio',
  ptt: 'audio',
  photo: 'image',
  file: 'document',
};

/** AI_FORWARD_TYPES: comma- or space-separated, any case; `all` or `*` for every type; null when a name is unknown. */
function parseForwardTypes(value: string): ForwardableType[] | null {
  const names = value
    .split(/[\s,]+/)
    .map((name) => name.trim().toLowerCase())
    .filter(Boolean);
  if (names.includes('all') || names.includes('*')) return [...FORWARDABLE_TYPES];
  const types = new Set<ForwardableType>();
  for (const name of names) {
    const type = FORWARD_TYPE_ALIASES[name] ?? FORWARDABLE_TYPES.find((known) => known === name);
    if (!type) return null;
    types.add(type);
  }
  return [...types];
}

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: z.string().min(1).default('0.0.0.0'),
  PORT: int(0, 65535).default(3000),
  AI_BACKEND_URL: z.url({ protocol: /^https?$/ }).default('http://127.0.0.1:8000'),
  CORS_ORIGINS: z.string().default(''),
  DATA_DIR: z.string().min(1).default('./.data'),
  TEMP_DIR: optionalString,
  WWEBJS_AUTH_DIR: optionalString,
  DB_URL: z.preprocess(emptyAsUndefined, z.url({ protocol: /^postgres(ql)?$/ }).optional()),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  WA_ENGINE: z.enum(ENGINE_NAMES).default('whatsapp-web'),
  CHROME_PATH: optionalString,
  ADMIN_API_KEY: z.preprocess(emptyAsUndefined, z.string().min(16).max(512).optional()),
  SESSIONS_AUTH: z.enum(['admin', 'none']).default('admin'),
  KEY_SYNC_INTERVAL_MS: ms(100).default(5_000),
  AUTH_FAILURES_PER_MINUTE: int(1).default(20),
  REQUEST_TIMEOUT_MS: ms(100).default(30_000),
  TRUST_PROXY: z
    .string()
    .default('')
    .refine(isTrustProxy, 'must be true, false, or comma-separated proxy addresses or CIDRs'),
  DEVELOPER_NUMBER: optionalString,
  DEFAULT_COUNTRY_CODE: z
    .string()
    .regex(/^[1-9]\d{0,3}$/, 'must be 1 to 4 digits without a leading 0')
    .default('62'),
  AI_TIMEOUT_MS: ms(100).default(60_000),
  AI_CONCURRENCY_PER_AGENT: int(1, 10_000).default(8),
  AI_CONCURRENCY_MAX: int(1, 100_000).default(1_000),
  AI_HISTORY_MESSAGES: int(0, 100).default(0),
  MESSAGE_RETENTION_DAYS: int(1, 3_650).default(30),
  QR_WAIT_TIMEOUT_MS: ms(100).default(60_000),
  SEND_WAIT_MS: ms(0).default(5_000),
  RATE_LIMIT_PER_MINUTE: int(1).default(100),
  RATE_LIMIT_BURST: int(1).default(100),
  QUEUE_MAX_PER_AGENT: int(1).default(500),
  MEDIA_MAX_BYTES: int(1024).default(10 * 1024 * 1024),
  MEDIA_IN_FLIGHT_PER_AGENT: int(1, 1_000).default(2),
  MEDIA_MAX_AUDIO_MB: int(1, 2_048).default(16),
  MEDIA_MAX_VIDEO_MB: int(1, 2_048).default(16),
  MEDIA_MAX_DOCUMENT_MB: int(1, 2_048).default(100),
  MEDIA_MAX_STICKER_MB: int(1, 100).default(1),
  MEDIA_JSON_MAX_MB: int(1, 2_048).default(16),
  MEDIA_IN_FLIGHT_MAX: int(1, 10_000).default(8),
  SESSION_START_CONCURRENCY: int(1, 64).default(4),
  METRICS_PER_AGENT: bool.default(false),
  METRICS_TOKEN: optionalString,
  SANDBOX_ENABLED: bool.default(false),
  MEDIA_ALLOW_PRIVATE_NETWORKS: bool.default(false),
  WEBHOOK_ALLOW_PRIVATE_NETWORKS: bool.default(false),
  WEBHOOK_RETRY_HOURS: int(1, 720).default(24),
  WEBHOOK_CONCURRENCY_PER_ENDPOINT: int(1, 100).default(4),
  WEBHOOK_CONCURRENCY_MAX: int(1, 10_000).default(64),
  SHUTDOWN_TIMEOUT_MS: ms(100).default(10_000),
  DB_STATEMENT_TIMEOUT_MS: ms(100).default(5_000),
  INSTANCE_ID: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^[\x21-\x7e]{1,128}$/, 'must be 1 to 128 printable ASCII characters without spaces')
      .optional(),
  ),
  INSTANCE_URL: z.preprocess(emptyAsUndefined, z.url({ protocol: /^https?$/ }).optional()),
  MAX_SESSIONS: int(1).optional(),
  LEASE_TTL_MS: ms(1_000, 600_000).default(10_000),
  CLUSTER_SECRET: z.preprocess(emptyAsUndefined, z.string().min(16).max(512).optional()),
  APP_BASE_URL: z.preprocess(emptyAsUndefined, z.url({ protocol: /^https?$/ }).optional()),
  AI_FORWARD_TYPES: z
    .string()
    .default(DEFAULT_AI_FORWARD_TYPES.join(','))
    .refine(
      (value) => parseForwardTypes(value) !== null,
      `must be a comma-separated list of ${FORWARDABLE_TYPES.join(', ')} (or all)`,
    ),
  MEDIA_STORE_DIR: optionalString,
  MEDIA_STORE_MAX_MB: int(1).default(1_024),
  MEDIA_RETENTION_HOURS: int(1, 24 * 365).default(24),
  MEDIA_URL_TTL_SECONDS: int(10).default(3_600),
  MEDIA_DOWNLOAD_MAX_MB: int(1, 2_048).default(64),
  MEDIA_DOWNLOADS_PER_AGENT: int(1, 1_000).default(2),
  MEDIA_DOWNLOADS_MAX: int(1, 10_000).default(16),
});

/** proxy-addr's names for ranges, which Fastify's trustProxy accepts beside addresses and CIDRs. */
const PROXY_RANGE_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

function isTrustProxy(value: string): boolean {
  const parsed = parseTrustProxy(value);
  if (!Array.isArray(parsed)) return true;
  return parsed.every((entry) => PROXY_RANGE_NAMES.has(entry) || isAddressOrCidr(entry));
}

/** Dotted IPv4 or IPv6, with an optional prefix length (ipaddr.js alone would also take "2" as 0.0.0.2). */
function isAddressOrCidr(entry: string): boolean {
  const [address = '', prefix, ...rest] = entry.split('/');
  if (rest.length > 0 || (prefix !== undefined && !ipaddr.isValidCIDR(entry))) return false;
  return ipaddr.IPv4.isValidFourPartDecimal(address) || (address.includes(':') && ipaddr.IPv6.isValid(address));
}

/**
 * Fastify's trustProxy: whom to believe about the client address (X-Forwarded-For). '' or 'false': nobody;
 * 'true': any peer (only behind a proxy that overwrites the header); otherwise proxy addresses or CIDRs.
 */
function parseTrustProxy(value: string): boolean | string[] {
  const trimmed = value.trim();
  if (trimmed === '' || trimmed === 'false') return false;
  if (trimmed === 'true') return true;
  return trimmed
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
}

/** The parsed configuration: its type is what loadConfig builds, so it cannot drift from the schema. */
export type Config = ReturnType<typeof toConfig>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Reads `.env` from the working directory; variables already in the environment win. */
export function readEnvFile(file = path.resolve('.env')): Record<string, string> {
  return existsSync(file) ? parseDotenv(readFileSync(file)) : {};
}

export function loadConfig(env: Record<string, string | undefined>): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`));
  }
  return toConfig(parsed.data);
}

function toConfig(e: z.output<typeof envSchema>) {
  const dataDir = path.resolve(e.DATA_DIR);
  const sandboxEnabled = e.SANDBOX_ENABLED || e.WA_ENGINE === 'sandbox';
  return {
    nodeEnv: e.NODE_ENV,
    host: e.HOST,
    port: e.PORT,
    aiBackendUrl: e.AI_BACKEND_URL.replace(/\/+$/, ''),
    corsOrigins: e.CORS_ORIGINS.split(',')
      .map((o) => o.trim())
      .filter(Boolean),
    dataDir,
    tempDir: path.resolve(e.TEMP_DIR ?? path.join(dataDir, 'tmp')),
    wwebjsAuthDir: path.resolve(e.WWEBJS_AUTH_DIR ?? path.join(dataDir, 'wwebjs_auth')),
    dbUrl: e.DB_URL,
    logLevel: e.LOG_LEVEL,
    waEngine: e.WA_ENGINE,
    chromePath: e.CHROME_PATH,
    adminApiKey: e.ADMIN_API_KEY,
    sessionsAuth: e.SESSIONS_AUTH,
    /** Longest a deactivated, deleted or superseded agent key keeps working (the key sync's period). */
    keySyncIntervalMs: e.KEY_SYNC_INTERVAL_MS,
    /** Failed authentications per minute per client address and per agent before 429. */
    authFailuresPerMinute: e.AUTH_FAILURES_PER_MINUTE,
    /** Longest the headers and body of a request may take to arrive (Node's requestTimeout). */
    requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
    trustProxy: parseTrustProxy(e.TRUST_PROXY),
    developerNumber: e.DEVELOPER_NUMBER,
    defaultCountryCode: e.DEFAULT_COUNTRY_CODE,
    aiTimeoutMs: e.AI_TIMEOUT_MS,
    /** Inbound messages of one agent with the AI at once; one at a time within a chat. */
    aiConcurrencyPerAgent: e.AI_CONCURRENCY_PER_AGENT,
    /** Inbound messages with the AI at once across all agents: a safety cap, shared in turn when reached. */
    aiConcurrencyMax: e.AI_CONCURRENCY_MAX,
    /** Earlier messages of the chat sent to the AI as `metadata.history`; 0: none. */
    aiHistoryMessages: e.AI_HISTORY_MESSAGES,
    /** Stored messages (inbound, and settled outbox rows) are purged this many days after they came or settled. */
    messageRetentionDays: e.MESSAGE_RETENTION_DAYS,
    qrWaitTimeoutMs: e.QR_WAIT_TIMEOUT_MS,
    sendWaitMs: e.SEND_WAIT_MS,
    rateLimitPerMinute: e.RATE_LIMIT_PER_MINUTE,
    rateLimitBurst: e.RATE_LIMIT_BURST,
    queueMaxPerAgent: e.QUEUE_MAX_PER_AGENT,
    mediaMaxBytes: e.MEDIA_MAX_BYTES,
    /** Images in flight (received, decoded, being committed or sent) per agent and in the process; 429 past them. */
    mediaInFlightPerAgent: e.MEDIA_IN_FLIGHT_PER_AGENT,
    mediaInFlightMax: e.MEDIA_IN_FLIGHT_MAX,
    /** Largest file of each kind, in bytes (images: MEDIA_MAX_BYTES), by base64, URL or upload alike. */
    mediaLimits: {
      image: e.MEDIA_MAX_BYTES,
      audio: e.MEDIA_MAX_AUDIO_MB * MiB,
      video: e.MEDIA_MAX_VIDEO_MB * MiB,
      document: e.MEDIA_MAX_DOCUMENT_MB * MiB,
      sticker: e.MEDIA_MAX_STICKER_MB * MiB,
    },
    /**
     * Largest file sent as base64 in a JSON body (the body is held whole in memory while it is parsed): larger files
     * go as a multipart upload (streamed to disk) or by URL. The media route's JSON body limit follows from it.
     */
    mediaJsonMaxBytes: Math.max(e.MEDIA_MAX_BYTES, e.MEDIA_JSON_MAX_MB * MiB),
    sessionStartConcurrency: e.SESSION_START_CONCURRENCY,
    metricsPerAgent: e.METRICS_PER_AGENT,
    metricsToken: e.METRICS_TOKEN,
    sandboxEnabled,
    mediaAllowPrivateNetworks: e.MEDIA_ALLOW_PRIVATE_NETWORKS,
    /** Webhook URLs may point to private and loopback addresses (tests and closed networks only). */
    webhookAllowPrivateNetworks: e.WEBHOOK_ALLOW_PRIVATE_NETWORKS,
    /** A delivery is retried for this long after its first failure; an endpoint failing this long is disabled. */
    webhookRetryHours: e.WEBHOOK_RETRY_HOURS,
    /** Deliveries in flight to one endpoint, and in the process, from this member. */
    webhookConcurrencyPerEndpoint: e.WEBHOOK_CONCURRENCY_PER_ENDPOINT,
    webhookConcurrencyMax: e.WEBHOOK_CONCURRENCY_MAX,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    /** Longest a statement may run on PostgreSQL, and longest a message waits for its commit, before 503. */
    dbStatementTimeoutMs: e.DB_STATEMENT_TIMEOUT_MS,
    /** This process's name in the cluster (PostgreSQL): unique among the live members. */
    instanceId: e.INSTANCE_ID ?? `${os.hostname()}-${process.pid}`,
    /** How other members reach this one over HTTP (forwarded session requests); unset for a lone process. */
    instanceUrl: e.INSTANCE_URL?.replace(/\/+$/, ''),
    /** The most sessions this member runs, and its weight in the fair shares; unset: an equal share. */
    maxSessions: e.MAX_SESSIONS,
    /** Session leases expire this long after their last renewal; renewed every third of it. */
    leaseTtlMs: e.LEASE_TTL_MS,
    /** Shared by the members: proves a forwarded request comes from a peer. */
    clusterSecret: e.CLUSTER_SECRET,
    /** How the AI backend reaches this service: the base of the signed media links; unset: attachments carry no url. */
    appBaseUrl: e.APP_BASE_URL?.replace(/\/+$/, ''),
    /** Inbound message types sent to the AI; the others are stored and ignored. */
    aiForwardTypes: parseForwardTypes(e.AI_FORWARD_TYPES) ?? DEFAULT_AI_FORWARD_TYPES,
    /** Inbound files downloaded for the AI live here, this member's own disk. */
    mediaStoreDir: path.resolve(e.MEDIA_STORE_DIR ?? path.join(dataDir, 'media')),
    mediaStoreMaxBytes: e.MEDIA_STORE_MAX_MB * 1024 * 1024,
    /** Stored inbound files (and their rows) are deleted this long after they were downloaded. */
    mediaRetentionMs: e.MEDIA_RETENTION_HOURS * 60 * 60 * 1000,
    /** How long a signed media link works; never past the file's retention. */
    mediaUrlTtlMs: Math.min(e.MEDIA_URL_TTL_SECONDS * 1000, e.MEDIA_RETENTION_HOURS * 60 * 60 * 1000),
    /** The largest inbound file downloaded (each type has a lower cap of its own: media-store/media-limits.ts). */
    mediaDownloadMaxBytes: e.MEDIA_DOWNLOAD_MAX_MB * 1024 * 1024,
    /** Inbound downloads at once per agent, and in the process. */
    mediaDownloadsPerAgent: e.MEDIA_DOWNLOADS_PER_AGENT,
    mediaDownloadsMax: e.MEDIA_DOWNLOADS_MAX,
  };
}
