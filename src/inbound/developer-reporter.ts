// Sends reports to DEVELOPER_NUMBER through the agent's own session, at most one per agent per minute: a flood of
// failures or drops becomes one report at once and one summary a minute, not a flood of reports.
import type { ReplySender } from '../ai/agent-ports.js';
import type { Clock, Timer } from '../clock.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import {
  type AiFailureReason,
  formatDeveloperReport,
  formatDeveloperSummary,
  type InboundIncident,
  type ReportedDropReason,
} from './developer-report.js';

export const REPORT_INTERVAL_MS = 60_000;

export interface DeveloperReporterOptions {
  /** The developer's JID, parsed from `DEVELOPER_NUMBER`. */
  developerJid: string;
  replies: ReplySender;
  clock: Clock;
  logger: Pick<Logger, 'info' | 'warn'>;
  newTraceId: () => string;
}

/** An agent's minute after a report: what happens meanwhile is counted, and summed up when the minute ends. */
interface Interval {
  timer: Timer;
  /** When the first event counted in this interval happened. */
  since: number;
  aiFailures: Map<AiFailureReason, number>;
  dropped: Map<ReportedDropReason, number>;
}

export class DeveloperReporter {
  private readonly intervals = new Map<string, Interval>();
  private readonly sending = new Set<Promise<void>>();

  constructor(private readonly options: DeveloperReporterOptions) {}

  /**
   * Sends the report at once when the agent had none within the last minute, and resolves once it is sent (or
   * failed); otherwise counts it for the summary at the end of that minute, and resolves at once.
   */
  report(incident: InboundIncident): Promise<void> {
    const interval = this.intervals.get(incident.agentId);
    if (interval) {
      if (interval.aiFailures.size === 0 && interval.dropped.size === 0) interval.since = this.options.clock.now();
      if (incident.kind === 'ai_failure') increment(interval.aiFailures, incident.reason);
      else increment(interval.dropped, incident.reason);
      return Promise.resolve();
    }
    this.open(incident.agentId);
    const text = formatDeveloperReport(incident, new Date(this.options.clock.now()));
    return this.send(incident.agentId, text, incident.traceId);
  }

  /** Resolves when every report under way has been sent or has failed. */
  async idle(): Promise<void> {
    while (this.sending.size > 0) await Promise.all(this.sending);
  }

  /** Sends the summaries still counting now, stops every timer, and waits for the sends. */
  async close(): Promise<void> {
    for (const agentId of [...this.intervals.keys()]) this.end(agentId, false);
    await this.idle();
  }

  private open(agentId: string): void {
    const timer = this.options.clock.setTimeout(() => this.end(agentId, true), REPORT_INTERVAL_MS, {
      // Housekeeping: a summary never keeps the process alive, and close() sends what is left.
      background: true,
    });
    this.intervals.set(agentId, { timer, since: 0, aiFailures: new Map(), dropped: new Map() });
  }

  /** Ends the agent's interval; a summary, when there is one, opens the next (`reopen`), so reports stay a minute apart. */
  private end(agentId: string, reopen: boolean): void {
    const interval = this.intervals.get(agentId);
    if (!interval) return;
    interval.timer.cancel();
    this.intervals.delete(agentId);
    if (interval.aiFailures.size === 0 && interval.dropped.size === 0) return;
    if (reopen) this.open(agentId);
    const { since, aiFailures, dropped } = interval;
    const at = new Date(this.options.clock.now());
    const text = formatDeveloperSummary({ agentId, since: new Date(since), at, aiFailures, dropped });
    void this.send(agentId, text, this.options.newTraceId());
  }

  private send(agentId: string, text: string, traceId: string): Promise<void> {
    const { replies, developerJid, logger } = this.options;
    const sent = replies.sendText(agentId, developerJid, text, { traceId }).then(
      () => logger.info({ event: 'inbound.developer_notified', agentId, traceId }),
      (err: unknown) =>
        logger.warn({ event: 'inbound.developer_report_failed', agentId, traceId, err: errorMessage(err) }),
    );
    this.sending.add(sent);
    return sent.finally(() => this.sending.delete(sent));
  }
}

function increment<K>(counts: Map<K, number>, key: K): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}
