// HTTP client for the agents' AI backends: one POST per question, bounded in time and in size.

import type { Readable } from 'node:stream';
import { Agent, request as send } from 'undici';
import type { Clock } from '../clock.js';
import { AppError } from '../errors.js';
import { LazyLogger } from '../observability/lazy-logger.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { extractReply } from './ai-reply.js';

/** Default cap on an AI answer. A reply is a chat message; anything near this is a broken backend. */
const AI_MAX_RESPONSE_BYTES = 1024 * 1024;

export interface AiClientOptions {
  /** `AI_BACKEND_URL`, without a trailing slash. */
  aiBackendUrl: string;
  /** `AI_TIMEOUT_MS`: covers the whole exchange, headers and body. */
  timeoutMs: number;
  maxResponseBytes?: number | undefined;
  metrics: Metrics;
  logger: Logger;
  clock: Clock;
}

export interface AiRequest {
  agentId: string;
  /** The agent's key, sent as a Bearer token; omitted when the agent has none. */
  apiKey: string | null;
  /** The agent's `endpoint_url_run`; when empty, `${AI_BACKEND_URL}/agents/{agentId}/execute`. */
  endpointUrlRun: string | null;
  traceId: string;
  input: string;
  parameters: Record<string, unknown>;
  sessionId: string;
  /** Built from the WhatsApp message for inbound; for /run, the caller's own value when it sent one. */
  metadata: unknown;
  /** Caller fields passed to the backend unchanged (openai_api_key, memory_enable…). */
  passThrough?: Record<string, unknown>;
  /** Inbound: the message's file or location (docs/inbound-media.md); sent only when there is one. */
  attachments?: AiAttachment[] | undefined;
}

/** What a file (or a location) of an inbound message looks like to the AI backend. */
export interface AiAttachment {
  type: 'image' | 'audio' | 'video' | 'document' | 'sticker' | 'location';
  mimeType: string | null;
  size: number | null;
  filename: string | null;
  caption: string | null;
  durationSeconds: number | null;
  /** A signed link to the bytes on this service, expiring at `expiresAt`; null when unavailable or no APP_BASE_URL. */
  url: string | null;
  /** ISO 8601; null without a url. */
  expiresAt: string | null;
  /** False when the file could not be downloaded or stored (see `unavailableReason`); the text still comes. */
  available: boolean;
  unavailableReason: 'store_full' | 'too_large' | 'download_failed' | 'unsupported' | null;
  /** Hex SHA-256 of the stored bytes; null when not stored. */
  sha256: string | null;
  /** Locations only. */
  latitude?: number;
  longitude?: number;
  name?: string | null;
  address?: string | null;
}

export interface AiAnswer {
  /** The reply text, or null when the backend answered without one. */
  reply: string | null;
  latencyMs: number;
}

/** What the inbound pipeline and the run service need; tests can swap it. */
export interface AiCaller {
  execute(request: AiRequest): Promise<AiAnswer>;
}

type Failure = 'timeout' | 'oversize' | null;

export class AiClient implements AiCaller {
  private readonly maxResponseBytes: number;
  /**
   * Keep-alive connections to the AI backends. undici's `request` rather than `fetch`: no WHATWG streams or
   * Request/Response objects, a fraction of the allocations per call on the path of every inbound message.
   */
  private readonly agent = new Agent({ keepAliveTimeout: 10_000 });

  constructor(private readonly options: AiClientOptions) {
    this.maxResponseBytes = options.maxResponseBytes ?? AI_MAX_RESPONSE_BYTES;
  }

  /** Closes the kept-alive connections. */
  async close(): Promise<void> {
    await this.agent.destroy();
  }

  endpointFor(agentId: string, endpointUrlRun: string | null): string {
    const override = endpointUrlRun?.trim();
    return override ? override : `${this.options.aiBackendUrl}/agents/${encodeURIComponent(agentId)}/execute`;
  }

  async execute(request: AiRequest): Promise<AiAnswer> {
    const { metrics } = this.options;
    const started = performance.now();
    const elapsed = () => performance.now() - started;
    const observe = (outcome: 'ok' | 'no_reply' | 'timeout' | 'error') =>
      metrics.aiLatency.observe({ outcome, ...metrics.agentLabel(request.agentId) }, elapsed() / 1000);
    const logger = new LazyLogger(this.options.logger, { agentId: request.agentId, traceId: request.traceId });

    const controller = new AbortController();
    let failure: Failure = null;
    const fail = (why: Exclude<Failure, null>) => {
      failure ??= why;
      controller.abort();
    };
    // One timer for the whole exchange: a backend that sends headers and then trickles the body is still cut off.
    const timer = this.options.clock.setTimeout(() => fail('timeout'), this.options.timeoutMs);
    let read = false;
    try {
      const text = await this.post(request, controller.signal, () => fail('oversize'));
      read = true;
      const body = parseJson(text);
      const reply = extractReply(body);
      observe(reply === null ? 'no_reply' : 'ok');
      logger.debug({ event: 'ai.answered', latencyMs: Math.round(elapsed()), hasReply: reply !== null });
      return { reply, latencyMs: elapsed() };
    } catch (err) {
      const error = this.toAppError(err, failure);
      observe(error.code === 'AI_TIMEOUT' ? 'timeout' : 'error');
      logger.debug({ event: 'ai.failed', code: error.code, reason: error.message, latencyMs: Math.round(elapsed()) });
      throw error;
    } finally {
      timer.cancel();
      // Releases the connection when we stopped reading early. After a complete answer there is nothing to release,
      // and an abort would only build an AbortError (with its stack) on every call.
      if (!read) controller.abort();
    }
  }

  private async post(request: AiRequest, signal: AbortSignal, oversize: () => void): Promise<string> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json',
      'x-request-id': request.traceId,
    };
    if (request.apiKey) headers.authorization = `Bearer ${request.apiKey}`;
    const body = {
      ...request.passThrough,
      input: request.input,
      parameters: request.parameters,
      session_id: request.sessionId,
      metadata: request.metadata,
      ...(request.attachments?.length ? { attachments: request.attachments } : {}),
    };
    // No redirect is followed (undici's request never does): following one would resend the agent's key elsewhere
    // and turn the POST into a GET, so a 3xx is a failed answer like any other non-2xx.
    const response = await send(this.endpointFor(request.agentId, request.endpointUrlRun), {
      method: 'POST',
      headers,
      body: JSON.stringify(body),
      signal,
      dispatcher: this.agent,
    });
    if (response.statusCode < 200 || response.statusCode > 299) {
      response.body.destroy();
      throw new AppError('AI_DOWNSTREAM_ERROR', `The AI backend answered ${response.statusCode}.`);
    }
    const declared = Number(response.headers['content-length'] ?? Number.NaN);
    if (declared > this.maxResponseBytes) {
      oversize();
      response.body.destroy();
      throw new AppError('AI_DOWNSTREAM_ERROR', 'The AI backend answer is too large.');
    }
    return readCapped(response.body, this.maxResponseBytes, oversize);
  }

  private toAppError(err: unknown, failure: Failure): AppError {
    if (failure === 'timeout') {
      return new AppError('AI_TIMEOUT', undefined, { cause: err });
    }
    if (failure === 'oversize') {
      return new AppError('AI_DOWNSTREAM_ERROR', 'The AI backend answer is too large.', { cause: err });
    }
    if (err instanceof AppError) return err;
    // fetch reports refused and reset connections as a TypeError whose cause holds the socket error.
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
    const code = typeof cause === 'object' && cause !== null && 'code' in cause ? String(cause.code) : 'FETCH_FAILED';
    return new AppError('AI_DOWNSTREAM_ERROR', `The AI backend could not be reached (${code}).`, { cause: err });
  }
}

/** Reads the body while counting bytes, so a 50 MB answer is abandoned at the cap instead of being buffered. */
async function readCapped(body: Readable, maxBytes: number, oversize: () => void): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    const bytes = chunk as Buffer;
    total += bytes.byteLength;
    if (total > maxBytes) {
      oversize();
      body.destroy();
      throw new AppError('AI_DOWNSTREAM_ERROR', 'The AI backend answer is too large.');
    }
    chunks.push(bytes);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // An empty body lands here too: a backend that says nothing has not given a usable answer.
    throw new AppError('AI_DOWNSTREAM_ERROR', 'The AI backend answer is not JSON.');
  }
}
