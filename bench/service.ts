// The service as the in-process benchmarks run it: the built code (bench/build.ts) on a database of the bench's, with
// the sandbox engine and silent logs, and sandbox agents connected through the API.
import type { FastifyInstance } from 'fastify';
import type { Database } from '../src/db/client.js';
import { fromBuild } from './build.js';

const { buildApp } = await fromBuild<typeof import('../src/app.js')>('app.js');
const { loadConfig } = await fromBuild<typeof import('../src/config.js')>('config.js');
const { createContainer } = await fromBuild<typeof import('../src/container.js')>('container.js');
const { createLogger } = await fromBuild<typeof import('../src/observability/logger.js')>('observability/logger.js');

export const BENCH_ADMIN_KEY = 'bench-admin-key-0123456789';
export const benchAdminHeaders = { authorization: `Bearer ${BENCH_ADMIN_KEY}` };

/** Builds and starts the service on `database`; `env` adds to (or overrides) the sandbox engine and silent logs. */
export async function startBenchService(database: Database, env: Record<string, string>) {
  const config = loadConfig({ WA_ENGINE: 'sandbox', ADMIN_API_KEY: BENCH_ADMIN_KEY, LOG_LEVEL: 'silent', ...env });
  const container = await createContainer(config, {
    database,
    logger: createLogger({ level: 'silent' }),
    collectProcessMetrics: false,
  });
  const app = await buildApp(container);
  await container.start();
  const { sandbox } = container;
  if (!sandbox) throw new Error('the sandbox engine is not enabled');
  return { container, app, sandbox };
}

export interface BenchAgent {
  userId: string;
  agentId: string;
  apikey: string;
  /** The phone that scans the agent's QR code. */
  phone: string;
}

/** Creates the agent's sandbox session and links it, through POST /sessions and the sandbox's scan route. */
export async function connectBenchAgent(app: FastifyInstance, agent: BenchAgent): Promise<void> {
  const { userId, agentId, apikey, phone } = agent;
  const created = await app.inject({
    method: 'POST',
    url: '/sessions',
    headers: benchAdminHeaders,
    payload: { userId, agentId, agentName: agentId, apikey },
  });
  if (created.statusCode !== 200) throw new Error(`create ${agentId}: ${created.body}`);
  const scanned = await app.inject({
    method: 'POST',
    url: `/sandbox/agents/${agentId}/scan`,
    headers: benchAdminHeaders,
    payload: { phone },
  });
  if (scanned.statusCode !== 200) throw new Error(`scan ${agentId}: ${scanned.body}`);
}

/**
 * Calls `deliver(i)` for i = 0 … total - 1 at `rate` per second, catching up on what the clock says is due so that a
 * slow tick does not lower the rate; resolves once the last one went.
 */
export function deliverPaced(rate: number, total: number, deliver: (i: number) => void): Promise<void> {
  const tickMs = 10;
  const perTick = rate / (1000 / tickMs);
  let delivered = 0;
  const started = performance.now();
  return new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, ((performance.now() - started) / tickMs) * perTick);
      while (delivered < due) deliver(delivered++);
      if (delivered >= total) {
        clearInterval(timer);
        resolve();
      }
    }, tickMs);
  });
}
