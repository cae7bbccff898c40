// Boot: configuration → container → app → listen; graceful shutdown on SIGTERM/SIGINT.
import { type App, buildApp } from './app.js';
import { ConfigError, loadConfig, readEnvFile } from './config.js';
import { type Container, createContainer } from './container.js';
import { createLogger } from './observability/logger.js';

async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig({ ...readEnvFile(), ...process.env });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
  const logger = createLogger({
    level: config.logLevel,
    pretty: process.stdout.isTTY === true && config.nodeEnv !== 'production',
  });
  const container = await createContainer(config, { logger });
  let app: App | undefined;
  installShutdown(container, () => app, config.shutdownTimeoutMs);
  app = await buildApp(container);
  await app.listen({ host: config.host, port: config.port });
  logger.info(
    { event: 'service.started', port: config.port, engine: config.waEngine, database: container.database.kind },
    `listening on http://${config.host}:${config.port} (docs at /docs)`,
  );
  await container.start();
}

function installShutdown(container: Container, getApp: () => App | undefined, timeoutMs: number): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      container.logger.warn({ event: 'service.forced_exit', signal }, 'second signal: exiting now');
      process.exit(130);
    }
    stopping = true;
    container.logger.info({ event: 'service.stopping', signal }, 'shutting down');
    container.draining = true;
    const timer = setTimeout(() => {
      container.logger.error({ event: 'service.shutdown_timeout' }, 'shutdown took too long: exiting');
      process.exit(1);
    }, timeoutMs);
    timer.unref();
    // Closing the app stops accepting requests, lets in-flight ones finish, then closes the container.
    const app = getApp();
    void (app ? app.close() : container.close()).then(
      () => {
        container.logger.info({ event: 'service.stopped' }, 'stopped');
        process.exit(0);
      },
      (err: unknown) => {
        container.logger.error({ event: 'service.shutdown_failed', err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

main().catch((err: unknown) => {
  const logger = createLogger({ level: 'info' });
  logger.fatal({ event: 'service.boot_failed', err }, 'the service could not start');
  process.exit(1);
});
