// Prometheus metrics on a registry owned by the app, so tests and several apps in one process stay apart.
import { Counter, collectDefaultMetrics, Gauge, Histogram, type LabelValues, Registry } from 'prom-client';
import { RequestDurations } from './request-durations.js';

export interface MetricsOptions {
  /** Adds an agent_id label where it applies; off by default because agent ids are unbounded. */
  perAgent: boolean;
  /** Process metrics (CPU, memory, event loop); off in tests that build many apps. */
  collectProcessMetrics?: boolean;
}

export function createMetrics({ perAgent, collectProcessMetrics = true }: MetricsOptions) {
  const registry = new Registry();
  if (collectProcessMetrics) collectDefaultMetrics({ register: registry });
  const agent = perAgent ? (['agent_id'] as const) : ([] as const);
  const registers = [registry];
  let queueDepths: () => Iterable<readonly [string, number]> = () => [];
  // Until the container says which agents exist, none does: an id taken from a request must not make a series.
  let isKnownAgent: (agentId: string) => boolean = () => false;
  const agentLabel = (agentId: string): { agent_id?: string } =>
    perAgent && isKnownAgent(agentId) ? { agent_id: agentId } : {};
  const sentTally = new Tally<'type' | 'agent_id'>('type', agentLabel, perAgent);
  const outboxTally = new Tally<'state' | 'agent_id'>('state', agentLabel, perAgent);
  const ackTally = new Tally<'status' | 'agent_id'>('status', agentLabel, perAgent);

  const metrics = {
    registry,
    /**
     * `{ agent_id }` when per-agent labels are on and the agent exists, otherwise nothing: the ids of unknown agents
     * (a path parameter of a refused request) are unbounded, and would each make a series.
     */
    agentLabel,
    /** Which agents exist (the key store's), read whenever a label is made. */
    setKnownAgents(predicate: (agentId: string) => boolean): void {
      isKnownAgent = predicate;
    },
    sessionsActive: new Gauge({
      name: 'whatsapp_sessions_active',
      help: 'WhatsApp sessions that are connected now',
      registers,
    }),
    messagesSent: new Counter({
      name: 'whatsapp_messages_sent_total',
      help: 'Messages sent to WhatsApp, by type (text, image)',
      labelNames: ['type', ...agent],
      registers,
      collect() {
        sentTally.flushInto(this);
      },
    }),
    messagesReceived: new Counter({
      name: 'whatsapp_messages_received_total',
      help: 'Inbound messages, by outcome (replied, no_reply, ignored, duplicate, ai_error, dropped)',
      labelNames: ['outcome', ...agent],
      registers,
    }),
    errors: new Counter({
      name: 'whatsapp_errors_total',
      help: 'Errors, by code',
      labelNames: ['code', ...agent],
      registers,
    }),
    aiLatency: new Histogram({
      name: 'whatsapp_ai_latency_seconds',
      help: 'Time the AI backend took to answer, by outcome',
      labelNames: ['outcome', ...agent],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60],
      registers,
    }),
    outboxQueued: new Gauge({
      name: 'whatsapp_outbox_queue_depth',
      help: 'Messages waiting in the outbox (queued or sending)',
      labelNames: [...agent],
      registers,
      // Read from the dispatcher at scrape time, rather than counted up and down on every send.
      collect() {
        this.reset();
        let total = 0;
        for (const [agentId, depth] of queueDepths()) {
          if (perAgent) this.inc(agentLabel(agentId), depth);
          total += depth;
        }
        if (!perAgent) this.set(total);
      },
    }),
    /** Where the queue-depth gauge reads each agent's depth when scraped. */
    setQueueDepthSource(source: () => Iterable<readonly [string, number]>): void {
      queueDepths = source;
    },
    outboxTransitions: new Counter({
      name: 'whatsapp_outbox_messages_total',
      help: 'Outbox messages that reached a state (queued, sent, failed, retried, dropped)',
      labelNames: ['state', ...agent],
      registers,
      collect() {
        outboxTally.flushInto(this);
      },
    }),
    /** A message accepted by the outbox (its `queued` state): counted on every send, so through a tally. */
    countQueued(agentId: string): void {
      outboxTally.add('queued', agentId);
    },
    /** A message sent: `whatsapp_messages_sent_total` by type, and its `sent` state. */
    // type: an outbox kind (a bounded set).
    countSent(type: string, agentId: string): void {
      sentTally.add(type, agentId);
      outboxTally.add('sent', agentId);
    },
    messageAcks: new Counter({
      name: 'whatsapp_message_acks_total',
      help: 'Receipts the engines reported for sent messages, by status (server, delivered, read, played, error)',
      labelNames: ['status', ...agent],
      registers,
      collect() {
        ackTally.flushInto(this);
      },
    }),
    /** A receipt an engine reported (a few per message sent, so through a tally). */
    countAck(status: string, agentId: string): void {
      ackTally.add(status, agentId);
    },
    httpDuration: new RequestDurations({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration, by method, route and status code',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60],
      registers,
    }),
    clusterMembers: new Gauge({
      name: 'whatsapp_cluster_members',
      help: 'Live cluster members (heartbeat within LEASE_TTL_MS), as this member saw them at its last tick',
      registers,
    }),
    clusterOwnedSessions: new Gauge({
      name: 'whatsapp_cluster_owned_sessions',
      help: 'Session leases this member holds now',
      registers,
    }),
    clusterHandovers: new Counter({
      name: 'whatsapp_cluster_handovers_total',
      help: 'Leases this member took (acquired) or gave up, by reason (acquired, rebalance, shutdown, lost, deleted)',
      labelNames: ['reason'],
      registers,
    }),
    webhookDeliveries: new Counter({
      name: 'webhook_deliveries_total',
      help: 'Webhook delivery attempts, by outcome (delivered, retry, failed)',
      labelNames: ['outcome'],
      registers,
    }),
    webhookEndpointsDisabled: new Counter({
      name: 'webhook_endpoints_disabled_total',
      help: 'Webhook endpoints disabled after failing through WEBHOOK_RETRY_HOURS',
      registers,
    }),
    mediaDownloads: new Counter({
      name: 'whatsapp_media_downloads_total',
      help: 'Inbound files downloaded for the AI, by outcome (stored, store_full, too_large, failed, unsupported)',
      labelNames: ['outcome'],
      registers,
    }),
    mediaDownloadSeconds: new Histogram({
      name: 'whatsapp_media_download_seconds',
      help: 'Time to download an inbound file into the media store, waiting for a download slot included',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    mediaStoreBytes: new Gauge({
      name: 'whatsapp_media_store_bytes',
      help: "Bytes of inbound files in this member's media store",
      registers,
    }),
    clusterLeaseLosses: new Counter({
      name: 'whatsapp_cluster_lease_losses_total',
      help: 'Leases this member lost: not renewed in time by its own clock, or taken over after they expired',
      registers,
    }),
  };
  return metrics;
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * The counts every message adds to (queued, sent). prom-client's inc() checks the labels and builds a hash string of
 * them on each call; a tally adds to a plain number found by a short key, and hands the sums to its counter when the
 * counter is scraped (prom-client runs a metric's collect() first).
 */
class Tally<L extends string> {
  private readonly counts = new Map<string, { labels: LabelValues<L>; value: number }>();

  constructor(
    private readonly label: Exclude<L, 'agent_id'>,
    private readonly agentLabel: (agentId: string) => { agent_id?: string },
    private readonly perAgent: boolean,
  ) {}

  add(value: string, agentId: string): void {
    const key = this.perAgent ? `${value}\u0000${agentId}` : value;
    const entry = this.counts.get(key);
    if (entry) entry.value += 1;
    else {
      const labels = { [this.label]: value, ...this.agentLabel(agentId) } as LabelValues<L>;
      this.counts.set(key, { labels, value: 1 });
    }
  }

  flushInto(counter: Counter<L>): void {
    for (const entry of this.counts.values()) {
      if (entry.value === 0) continue;
      counter.inc(entry.labels, entry.value);
      entry.value = 0;
    }
  }
}
