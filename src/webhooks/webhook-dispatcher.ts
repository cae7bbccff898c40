// Delivers the committed webhook events: expands them into one delivery per endpoint (one member at a time), claims the
// due deliveries from the database (any member may, one at a time per delivery), POSTs each signed, and writes the outcome with its next attempt. Woken by NOTIFY on wamt_webhooks (the
// triggers send it), and by a sweep every second for retries that fall due.
import { type Agent, request } from 'undici';
import type { Clock, Timer } from '../clock.js';
import type { Database } from '../db/client.js';
import { errorMessage } from '../errors.js';
import type { AddressChecker } from '../messaging/address-policy.js';
import { guardedAgent, type HostLookup } from '../messaging/media-fetch.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { signatureHeaders } from './webhook-signing.js';
import type { AttemptOutcome, ClaimedDelivery, WebhooksRepository } from './webhooks.repository.js';

/** About 1 s, 5 s, 30 s, 2 min, 10 min, then every 30 min, each with ±20 % jitter. */
export const BACKOFF_MS = [1_000, 5_000, 30_000, 120_000, 600_000, 1_800_000];
export const ATTEMPT_TIMEOUT_MS = 10_000;
/** Longer than an attempt can take: a member that dies mid-attempt leaves its claim to expire, then another retries. */
const CLAIM_MS = ATTEMPT_TIMEOUT_MS + 20_000;
const SWEEP_MS = 1_000;
/** What is read of a response body (and thrown away): a 10 MB or endless answer costs no more than this. */
const BODY_READ_LIMIT = 64 * 1024;
/** 4xx answers that are retried; every other 4xx fails the delivery at once (a 410 says the receiver is gone). */
const RETRIED_4XX = new Set([408, 409, 425, 429]);
/** Outcomes written by one statement at most. */
const MAX_RECORD_BATCH = 500;
/** Events expanded into deliveries by one statement at most (each becomes one delivery per endpoint that takes it). */
const FAN_OUT_BATCH = 1_000;

export interface WebhookDispatcherOptions {
  repository: WebhooksRepository;
  database: Database;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  checkAddress: AddressChecker;
  lookup?: HostLookup;
  retryWindowMs: number;
  perEndpoint: number;
  max: number;
  /** Jitter source (tests pass a constant). */
  random?: () => number;
}

export function nextDelayMs(failures: number, random: () => number = Math.random): number {
  const base = BACKOFF_MS[Math.min(failures, BACKOFF_MS.length) - 1] ?? BACKOFF_MS[0] ?? 1_000;
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** Whether an answer's status is success (2xx), a retry, or a failure for good. */
export function classify(statusCode: number): 'delivered' | 'retry' | 'failed' {
  if (statusCode >= 200 && statusCode < 300) return 'delivered';
  if (statusCode >= 400 && statusCode < 500 && !RETRIED_4XX.has(statusCode)) return 'failed';
  return 'retry';
}

/** An attempt's outcome waiting to be written, and who waits for that write. */
interface PendingOutcome {
  delivery: ClaimedDelivery;
  outcome: AttemptOutcome;
  at: Date;
  done: (disabled: boolean) => void;
  failed: (err: unknown) => void;
}

export class WebhookDispatcher {
  private readonly agent: Agent;
  private readonly inFlight = new Map<string, number>();
  private readonly running = new Set<Promise<void>>();
  /**
   * Aborts the attempts under way at shutdown. Each is recorded as a failed attempt (the receiver may have seen it),
   * so a delivery seen twice always shows two attempts; it is retried after its backoff, by this or another member.
   */
  private readonly shutdown = new AbortController();
  /** Outcomes waiting for the next write, and whether one is under way: one statement records a batch. */
  private readonly outcomes: PendingOutcome[] = [];
  private writing = false;
  private total = 0;
  private ticking = false;
  private again = false;
  /** Whether events may be waiting to become deliveries (see notified()). */
  private eventsWaiting = false;
  private stopped = true;
  private sweep: Timer | undefined;
  private unlisten: (() => Promise<void>) | undefined;

  constructor(private readonly options: WebhookDispatcherOptions) {
    this.agent = guardedAgent({
      checkAddress: options.checkAddress,
      ...(options.lookup ? { lookup: options.lookup } : {}),
    });
  }

  async start(): Promise<void> {
    this.stopped = false;
    this.unlisten = await this.options.database.listen(
      'wamt_webhooks',
      () => this.notified(),
      () => this.notified(),
    );
    this.sweep = this.options.clock.setInterval(() => this.notified(), SWEEP_MS, { background: true });
    this.notified();
  }

  /** Stops claiming, cuts the attempts under way short (recorded, retried later), and waits for their records. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.sweep?.cancel();
    this.shutdown.abort(new Error('shutting down'));
    await this.unlisten?.();
    while (this.running.size > 0 || this.ticking) await Promise.allSettled([...this.running]);
    await this.agent.close();
  }

  /**
   * Events may be waiting to be expanded: a NOTIFY (a commit wrote events or deliveries), a new listen connection, or
   * the sweep (a lost notice, another member's expansion that rolled back). The wakes that follow an attempt do not
   * expand: they only look for the next delivery.
   */
  private notified(): void {
    this.eventsWaiting = true;
    this.wake();
  }

  /** Looks for due deliveries now (or again right after the look under way). */
  wake(): void {
    if (this.stopped) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    this.ticking = true;
    const tick = this.tick()
      .catch((err: unknown) => this.options.logger.warn({ event: 'webhook.claim_failed', err }))
      .finally(() => {
        this.ticking = false;
        this.running.delete(tick);
        if (this.again) {
          this.again = false;
          this.wake();
        }
      });
    this.running.add(tick);
  }

  private async tick(): Promise<void> {
    const { repository, clock, perEndpoint, max } = this.options;
    // The events committed since the last notice become deliveries first; a full batch means more wait.
    if (this.eventsWaiting) {
      this.eventsWaiting = false;
      let taken: number;
      try {
        taken = await repository.fanOut(FAN_OUT_BATCH);
      } catch (err) {
        this.eventsWaiting = true;
        throw err;
      }
      if (taken === FAN_OUT_BATCH) this.notified();
    }
    const free = max - this.total;
    if (free <= 0) return;
    const now = clock.now();
    const claimed = await repository.claim(new Date(now), new Date(now + CLAIM_MS), free, {
      perEndpoint,
      inFlight: this.inFlight,
    });
    const extra: string[] = [];
    for (const delivery of claimed) {
      const n = this.inFlight.get(delivery.endpointId) ?? 0;
      if (n >= perEndpoint || this.stopped) {
        extra.push(delivery.id);
        continue;
      }
      this.inFlight.set(delivery.endpointId, n + 1);
      this.total++;
      let released = false;
      // The slot is the request: free once the answer is in (or the attempt failed), while its outcome is written.
      const release = () => {
        if (released) return;
        released = true;
        this.total--;
        const left = (this.inFlight.get(delivery.endpointId) ?? 1) - 1;
        if (left > 0) this.inFlight.set(delivery.endpointId, left);
        else this.inFlight.delete(delivery.endpointId);
        this.wake();
      };
      const attempt = this.attempt(delivery, release).finally(() => {
        release();
        this.running.delete(attempt);
        // What waited behind it (the next event of its chat) may go now.
        this.wake();
      });
      this.running.add(attempt);
    }
    await repository.unclaim(extra);
    // A full claim: there may be more due at once.
    if (claimed.length === free && extra.length === 0) this.again = true;
  }

  /**
   * POSTs the delivery, then writes its outcome. `answered` is called once the request is over: its concurrency slot
   * is free then. The delivery stays claimed and pending until its outcome is written, so the next of its chat waits.
   */
  private async attempt(delivery: ClaimedDelivery, answered: () => void): Promise<void> {
    const { clock, logger, metrics, retryWindowMs } = this.options;
    const { statusCode, error } = await this.post(delivery);
    answered();
    const now = clock.now();
    let outcome: AttemptOutcome;
    const verdict = statusCode === null ? 'retry' : classify(statusCode);
    if (verdict === 'delivered' && statusCode !== null) {
      outcome = { kind: 'delivered', statusCode };
    } else {
      const giveUpAt = delivery.giveUpAt ?? new Date(now + retryWindowMs);
      const nextAttemptAt = new Date(now + nextDelayMs(delivery.attempts + 1, this.options.random));
      const reason = error ?? `HTTP ${statusCode}`;
      outcome =
        verdict === 'failed' || nextAttemptAt > giveUpAt
          ? { kind: 'failed', statusCode, error: reason }
          : { kind: 'retry', statusCode, error: reason, nextAttemptAt, giveUpAt };
    }
    metrics.webhookDeliveries.inc({ outcome: outcome.kind });
    try {
      const disabled = await this.record(delivery, outcome, new Date(now));
      if (disabled) {
        metrics.webhookEndpointsDisabled.inc();
        logger.warn(
          { event: 'webhook.endpoint_disabled', endpointId: delivery.endpointId },
          'A webhook endpoint failed through WEBHOOK_RETRY_HOURS and is disabled; PATCH enabled=true to resume it',
        );
      }
      if (outcome.kind !== 'delivered') {
        logger.debug({
          event: 'webhook.attempt_failed',
          deliveryId: delivery.id,
          endpointId: delivery.endpointId,
          statusCode,
          outcome: outcome.kind,
        });
      }
    } catch (err) {
      // The claim expires and the delivery is attempted again: at least once.
      logger.warn({ event: 'webhook.record_failed', deliveryId: delivery.id, err });
    }
  }

  /**
   * Queues an outcome for the next write; resolves once it is written (true when it disabled the endpoint). One write
   * at a time: the outcomes of the attempts that end meanwhile gather, and go in the next one (group commit).
   */
  private record(delivery: ClaimedDelivery, outcome: AttemptOutcome, at: Date): Promise<boolean> {
    return new Promise<boolean>((done, failed) => {
      this.outcomes.push({ delivery, outcome, at, done, failed });
      if (!this.writing) void this.write();
    });
  }

  private async write(): Promise<void> {
    this.writing = true;
    try {
      while (this.outcomes.length > 0) {
        const batch = this.outcomes.splice(0, MAX_RECORD_BATCH);
        try {
          const disabled = await this.options.repository.recordAttempts(batch, this.options.retryWindowMs);
          for (const [i, pending] of batch.entries()) pending.done(disabled[i] === true);
        } catch (err) {
          for (const pending of batch) pending.failed(err);
        }
      }
    } finally {
      this.writing = false;
    }
  }

  /** One POST, bounded by its timeout; the answer's body is read up to a limit and dropped. */
  private async post(delivery: ClaimedDelivery): Promise<{ statusCode: number | null; error: string | null }> {
    const { clock } = this.options;
    const controller = new AbortController();
    const timer = clock.setTimeout(() => controller.abort(new Error('timed out')), ATTEMPT_TIMEOUT_MS);
    const onShutdown = () => controller.abort(new Error('shutting down'));
    this.shutdown.signal.addEventListener('abort', onShutdown, { once: true });
    try {
      const at = new Date(clock.now());
      const response = await request(delivery.url, {
        method: 'POST',
        dispatcher: this.agent,
        signal: controller.signal,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'wamt-webhooks/1',
          ...signatureHeaders(delivery.eventId, at, delivery.body, delivery.secrets),
        },
        body: delivery.body,
      });
      try {
        await response.body.dump({ limit: BODY_READ_LIMIT, signal: controller.signal });
      } catch {
        // The status is what counts; a body that does not end is cut off.
      }
      return { statusCode: response.statusCode, error: null };
    } catch (err) {
      const reason = this.shutdown.signal.aborted ? 'cut off by a shutdown' : 'timed out';
      return { statusCode: null, error: controller.signal.aborted ? reason : errorMessage(err) };
    } finally {
      timer.cancel();
      this.shutdown.signal.removeEventListener('abort', onShutdown);
    }
  }
}
