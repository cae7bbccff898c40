import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type AiServer, refusedUrl, replyWith, startAiServer } from '../../test/helpers/ai-server.js';
import { FakeClock } from '../__fixtures__/fake-clock.js';
import { AppError } from '../errors.js';
import { createLogger } from '../observability/logger.js';
import { createMetrics, type Metrics } from '../observability/metrics.js';
import { AiClient, type AiRequest } from './ai-client.js';

const request = (overrides: Partial<AiRequest> = {}): AiRequest => ({
  agentId: 'bot-1',
  apiKey: 'agent-key-1',
  endpointUrlRun: null,
  traceId: 'trace-1',
  input: 'hello',
  parameters: { max_steps: 5 },
  sessionId: '6281234567890',
  metadata: { agent_id: 'bot-1', is_group: false },
  ...overrides,
});

async function failure(promise: Promise<unknown>): Promise<AppError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  if (!(err instanceof AppError)) throw new Error(`expected an AppError, got ${String(err)}`);
  return err;
}

describe('AiClient', () => {
  let server: AiServer;
  let metrics: Metrics;
  let client: AiClient;
  let clock: FakeClock;
  const build = (timeoutMs = 2_000, maxResponseBytes?: number) =>
    new AiClient({
      aiBackendUrl: server.url,
      timeoutMs,
      maxResponseBytes,
      metrics,
      logger: createLogger({ level: 'silent' }),
      clock,
    });

  beforeAll(async () => {
    server = await startAiServer();
  });
  afterAll(() => server.close());
  beforeEach(() => {
    server.requests.length = 0;
    server.respond(replyWith('hi there'));
    metrics = createMetrics({ perAgent: false, collectProcessMetrics: false });
    clock = new FakeClock();
    client = build();
  });

  it('posts to the default endpoint with the headers and body of the contract', async () => {
    const answer = await client.execute(
      request({ passThrough: { openai_api_key: 'sk-1', memory_enable: true, input: 'not this one' } }),
    );
    expect(answer.reply).toBe('hi there');
    const [sent] = server.requests;
    expect(sent?.method).toBe('POST');
    expect(sent?.path).toBe('/agents/bot-1/execute');
    expect(sent?.headers.authorization).toBe('Bearer agent-key-1');
    expect(sent?.headers['content-type']).toBe('application/json');
    expect(sent?.headers['x-request-id']).toBe('trace-1');
    expect(sent?.body).toEqual({
      openai_api_key: 'sk-1',
      memory_enable: true,
      input: 'hello',
      parameters: { max_steps: 5 },
      session_id: '6281234567890',
      metadata: { agent_id: 'bot-1', is_group: false },
    });
  });

  it('uses endpoint_url_run when the agent has one', async () => {
    await client.execute(request({ endpointUrlRun: `${server.url}/custom/run?x=1` }));
    expect(server.requests[0]?.path).toBe('/custom/run?x=1');
  });

  it('reads the reply under data, and reports no reply as null rather than an error', async () => {
    server.respond({ kind: 'json', body: { data: { output: 'nested' } } });
    expect((await client.execute(request())).reply).toBe('nested');
    server.respond({ kind: 'json', body: { status: 'done' } });
    expect((await client.execute(request())).reply).toBeNull();
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/whatsapp_ai_latency_seconds_count\{outcome="ok"\} 1/);
    expect(text).toMatch(/whatsapp_ai_latency_seconds_count\{outcome="no_reply"\} 1/);
  });

  it('turns a non-2xx answer into AI_DOWNSTREAM_ERROR', async () => {
    server.respond({ kind: 'json', status: 500, body: { reply: 'ignored' } });
    const err = await failure(client.execute(request()));
    expect(err.code).toBe('AI_DOWNSTREAM_ERROR');
    expect(err.status).toBe(502);
  });

  it('does not follow redirects, which would resend the key elsewhere', async () => {
    server.respond({ kind: 'raw', status: 302, body: '' });
    expect((await failure(client.execute(request()))).code).toBe('AI_DOWNSTREAM_ERROR');
  });

  it('turns a body that is not JSON, or is empty, into AI_DOWNSTREAM_ERROR', async () => {
    server.respond({ kind: 'raw', body: '<html>oops</html>', contentType: 'text/html' });
    expect((await failure(client.execute(request()))).code).toBe('AI_DOWNSTREAM_ERROR');
    server.respond({ kind: 'raw', body: '' });
    expect((await failure(client.execute(request()))).code).toBe('AI_DOWNSTREAM_ERROR');
  });

  it('times out with AI_TIMEOUT when the headers do not come in time', async () => {
    client = build(150);
    server.respond({ kind: 'hang' });
    const answer = failure(client.execute(request()));
    await server.waitForRequests(1);
    await clock.advance(149);
    await clock.advance(1);
    const err = await answer;
    expect(err.code).toBe('AI_TIMEOUT');
    expect(err.status).toBe(504);
    expect(await metrics.registry.metrics()).toMatch(/whatsapp_ai_latency_seconds_count\{outcome="timeout"\} 1/);
  });

  it('times out when the headers come but the body never finishes', async () => {
    client = build(150);
    server.respond({ kind: 'stall-body' });
    let settled = false;
    const answer = failure(client.execute(request())).finally(() => {
      settled = true;
    });
    await server.waitForRequests(1);
    await clock.advance(149);
    expect(settled).toBe(false);
    await clock.advance(1);
    expect((await answer).code).toBe('AI_TIMEOUT');
  });

  it('turns a refused connection into AI_DOWNSTREAM_ERROR', async () => {
    const err = await failure(client.execute(request({ endpointUrlRun: await refusedUrl() })));
    expect(err.code).toBe('AI_DOWNSTREAM_ERROR');
    expect(err.message).toContain('ECONNREFUSED');
  });

  it('turns a connection reset into AI_DOWNSTREAM_ERROR', async () => {
    server.respond({ kind: 'reset' });
    expect((await failure(client.execute(request()))).code).toBe('AI_DOWNSTREAM_ERROR');
  });

  it('abandons a 50 MB answer at the cap instead of buffering it', async () => {
    server.respond({ kind: 'huge', bytes: 50 * 1024 * 1024 });
    const before = process.memoryUsage().arrayBuffers;
    const err = await failure(client.execute(request()));
    expect(err.code).toBe('AI_DOWNSTREAM_ERROR');
    expect(err.message).toContain('too large');
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(20 * 1024 * 1024);
  });

  it('rejects a declared content-length over the cap before reading', async () => {
    client = build(2_000, 1024);
    server.respond({ kind: 'json', body: { reply: 'x'.repeat(4096) } });
    expect((await failure(client.execute(request()))).message).toContain('too large');
  });

  it('sends no Authorization header when the agent has no key', async () => {
    await client.execute(request({ apiKey: null }));
    expect(server.requests[0]?.headers.authorization).toBeUndefined();
  });
});
