import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

describe('loadConfig', () => {
  it('gives the documented defaults for an empty environment', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 3000,
      waEngine: 'whatsapp-web',
      sessionsAuth: 'admin',
      defaultCountryCode: '62',
      aiTimeoutMs: 60_000,
      aiConcurrencyPerAgent: 8,
      aiConcurrencyMax: 1_000,
      aiHistoryMessages: 0,
      messageRetentionDays: 30,
      qrWaitTimeoutMs: 60_000,
      rateLimitPerMinute: 100,
      rateLimitBurst: 100,
      queueMaxPerAgent: 500,
      mediaMaxBytes: 10 * 1024 * 1024,
      metricsPerAgent: false,
      sandboxEnabled: false,
      mediaAllowPrivateNetworks: false,
      dbUrl: undefined,
      dataDir: path.resolve('.data'),
      tempDir: path.resolve('.data/tmp'),
      wwebjsAuthDir: path.resolve('.data/wwebjs_auth'),
      dbStatementTimeoutMs: 5_000,
      keySyncIntervalMs: 5_000,
      authFailuresPerMinute: 20,
      requestTimeoutMs: 30_000,
      trustProxy: false,
    });
  });

  it('reads the inbound media settings, with their defaults', () => {
    expect(loadConfig({})).toMatchObject({
      appBaseUrl: undefined,
      aiForwardTypes: ['text', 'image', 'audio', 'document', 'location'],
      mediaStoreDir: path.resolve('.data/media'),
      mediaStoreMaxBytes: 1024 * 1024 * 1024,
      mediaRetentionMs: 24 * 60 * 60 * 1000,
      mediaUrlTtlMs: 3_600_000,
      mediaDownloadMaxBytes: 64 * 1024 * 1024,
      mediaDownloadsPerAgent: 2,
      mediaDownloadsMax: 16,
    });
    const config = loadConfig({
      APP_BASE_URL: 'https://wa.example.com/api/',
      MEDIA_STORE_DIR: '/srv/media',
      MEDIA_RETENTION_HOURS: '1',
      MEDIA_URL_TTL_SECONDS: '7200',
    });
    expect(config.appBaseUrl).toBe('https://wa.example.com/api');
    expect(config.mediaStoreDir).toBe('/srv/media');
    // A link never outlives the file it points to.
    expect(config.mediaUrlTtlMs).toBe(3_600_000);
  });

  it('reads AI_FORWARD_TYPES in any case and separator, with aliases and all, and refuses an unknown type', () => {
    expect(loadConfig({ AI_FORWARD_TYPES: 'text' }).aiForwardTypes).toEqual(['text']);
    expect(loadConfig({ AI_FORWARD_TYPES: ' Text, IMAGE  voice,ptt ' }).aiForwardTypes).toEqual([
      'text',
      'image',
      'audio',
    ]);
    expect(loadConfig({ AI_FORWARD_TYPES: 'all' }).aiForwardTypes).toEqual([
      'text',
      'image',
      'audio',
      'video',
      'document',
      'sticker',
      'location',
    ]);
    expect(() => loadConfig({ AI_FORWARD_TYPES: 'text,gif' })).toThrow(/AI_FORWARD_TYPES/);
  });

  it('reads TRUST_PROXY as on, off, or a list of proxies, and refuses anything else', () => {
    expect(loadConfig({ TRUST_PROXY: 'true' }).trustProxy).toBe(true);
    expect(loadConfig({ TRUST_PROXY: 'false' }).trustProxy).toBe(false);
    expect(loadConfig({ TRUST_PROXY: '10.0.0.1, 192.168.0.0/16,loopback' }).trustProxy).toEqual([
      '10.0.0.1',
      '192.168.0.0/16',
      'loopback',
    ]);
    expect(() => loadConfig({ TRUST_PROXY: 'my-proxy.example' })).toThrow(/TRUST_PROXY/);
    expect(() => loadConfig({ TRUST_PROXY: '2' })).toThrow(/TRUST_PROXY/);
  });

  it('takes a number set but empty as not set, and refuses a delay no timer can wait', () => {
    const defaults = loadConfig({});
    const empty = loadConfig({ PORT: '', SEND_WAIT_MS: '', RATE_LIMIT_PER_MINUTE: '' });
    expect([empty.port, empty.sendWaitMs, empty.rateLimitPerMinute]).toEqual([
      defaults.port,
      defaults.sendWaitMs,
      defaults.rateLimitPerMinute,
    ]);
    // Past 2^31 - 1 ms a Node.js timer fires at once: a shutdown timeout of 35 days would exit at the first signal.
    expect(loadConfig({ SHUTDOWN_TIMEOUT_MS: String(2 ** 31 - 1) }).shutdownTimeoutMs).toBe(2 ** 31 - 1);
    for (const name of ['SHUTDOWN_TIMEOUT_MS', 'KEY_SYNC_INTERVAL_MS', 'AI_TIMEOUT_MS', 'SEND_WAIT_MS']) {
      expect(() => loadConfig({ [name]: String(2 ** 31) }), name).toThrow(new RegExp(name));
    }
  });

  it('reads every kind of value', () => {
    const config = loadConfig({
      PORT: '8080',
      DB_URL: 'postgres://u@db:5432/app',
      CORS_ORIGINS: 'https://a.example, https://b.example',
      WA_ENGINE: 'sandbox',
      METRICS_PER_AGENT: 'true',
      TEMP_DIR: '/tmp/previews',
      AI_BACKEND_URL: 'https://ai.example/',
      AI_HISTORY_MESSAGES: '3',
      MESSAGE_RETENTION_DAYS: '7',
    });
    expect(config).toMatchObject({
      aiHistoryMessages: 3,
      messageRetentionDays: 7,
      port: 8080,
      dbUrl: 'postgres://u@db:5432/app',
      corsOrigins: ['https://a.example', 'https://b.example'],
      waEngine: 'sandbox',
      sandboxEnabled: true,
      metricsPerAgent: true,
      tempDir: '/tmp/previews',
      aiBackendUrl: 'https://ai.example',
    });
  });

  it('reports every problem at once', () => {
    let error: unknown;
    try {
      loadConfig({
        PORT: 'eighty',
        WA_ENGINE: 'telegram',
        DB_URL: 'mysql://x',
        RATE_LIMIT_PER_MINUTE: '0',
        SANDBOX_ENABLED: 'maybe',
        ADMIN_API_KEY: 'short',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    for (const name of ['PORT', 'WA_ENGINE', 'DB_URL', 'RATE_LIMIT_PER_MINUTE', 'SANDBOX_ENABLED', 'ADMIN_API_KEY']) {
      expect(problems.some((p) => p.startsWith(`${name}:`))).toBe(true);
    }
    expect(problems).toHaveLength(6);
    expect((error as ConfigError).message).toContain('Invalid configuration');
  });

  it('treats empty optional values as unset', () => {
    const config = loadConfig({ DB_URL: '', ADMIN_API_KEY: '', CHROME_PATH: '' });
    expect(config.dbUrl).toBeUndefined();
    expect(config.adminApiKey).toBeUndefined();
    expect(config.chromePath).toBeUndefined();
  });

  it('reads the cluster settings, with an instance id of host name and pid by default', () => {
    expect(loadConfig({ INSTANCE_URL: '', MAX_SESSIONS: '', CLUSTER_SECRET: '' })).toMatchObject({
      instanceId: `${os.hostname()}-${process.pid}`,
      instanceUrl: undefined,
      maxSessions: undefined,
      leaseTtlMs: 10_000,
      clusterSecret: undefined,
    });
    expect(
      loadConfig({
        INSTANCE_ID: 'wamt-1',
        INSTANCE_URL: 'http://10.0.0.5:3000/',
        MAX_SESSIONS: '50',
        LEASE_TTL_MS: '3000',
        CLUSTER_SECRET: 'a-cluster-secret-0123456789',
      }),
    ).toMatchObject({
      instanceId: 'wamt-1',
      instanceUrl: 'http://10.0.0.5:3000',
      maxSessions: 50,
      leaseTtlMs: 3_000,
      clusterSecret: 'a-cluster-secret-0123456789',
    });
    const error = (() => {
      try {
        loadConfig({
          INSTANCE_ID: 'has space',
          INSTANCE_URL: 'ftp://x',
          MAX_SESSIONS: '0',
          LEASE_TTL_MS: '999',
          CLUSTER_SECRET: 'short',
        });
      } catch (err) {
        return err as ConfigError;
      }
    })();
    expect(error?.problems.map((p) => p.split(':')[0]).sort()).toEqual([
      'CLUSTER_SECRET',
      'INSTANCE_ID',
      'INSTANCE_URL',
      'LEASE_TTL_MS',
      'MAX_SESSIONS',
    ]);
  });
});
