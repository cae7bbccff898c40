// The messages sent to DEVELOPER_NUMBER: an AI failure or a dropped inbound message in full, and the summary of
// what else happened to an agent's messages within the minute after a report.

const REPORT_TEXT_MAX_CHARS = 500;

export type AiFailureReason = 'TIMEOUT' | 'ERROR';

/** Drops worth a report: the user wrote and will get no answer, and nothing else will tell anyone. */
export type ReportedDropReason = 'overloaded' | 'dedup_unavailable' | 'reply_not_queued' | 'reply_failed';

/** What happened to one message, reported in full. */
export type InboundIncident = {
  agentId: string;
  senderJid: string;
  text: string;
  traceId: string;
} & ({ kind: 'ai_failure'; reason: AiFailureReason } | { kind: 'dropped'; reason: ReportedDropReason });

/** What happened to an agent's messages since its last report, counted by reason. */
export interface DeveloperSummary {
  agentId: string;
  since: Date;
  at: Date;
  aiFailures: ReadonlyMap<AiFailureReason, number>;
  dropped: ReadonlyMap<ReportedDropReason, number>;
}

export function formatDeveloperReport(incident: InboundIncident, at: Date): string {
  return [
    incident.kind === 'ai_failure' ? '[AI failure]' : '[Inbound message dropped]',
    `agent: ${incident.agentId}`,
    `sender: ${incident.senderJid}`,
    `reason: ${incident.reason}`,
    `traceId: ${incident.traceId}`,
    `time: ${at.toISOString()}`,
    `text: ${truncate(incident.text, REPORT_TEXT_MAX_CHARS)}`,
  ].join('\n');
}

export function formatDeveloperSummary(summary: DeveloperSummary): string {
  const lines = [
    '[Inbound report]',
    `agent: ${summary.agentId}`,
    `since: ${summary.since.toISOString()}`,
    `time: ${summary.at.toISOString()}`,
  ];
  if (summary.aiFailures.size > 0) lines.push(`AI failures: ${tally(summary.aiFailures)}`);
  if (summary.dropped.size > 0) lines.push(`dropped: ${tally(summary.dropped)}`);
  return lines.join('\n');
}

/** `12 (ERROR 2, TIMEOUT 10)`: the total, then each reason in alphabetical order. */
function tally(counts: ReadonlyMap<string, number>): string {
  const total = [...counts.values()].reduce((sum, n) => sum + n, 0);
  const parts = [...counts.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([reason, n]) => `${reason} ${n}`);
  return `${total} (${parts.join(', ')})`;
}

/** Cuts by code point, so an emoji at the boundary is not split into half a surrogate pair. */
function truncate(text: string, max: number): string {
  const chars = Array.from(text);
  return chars.length <= max ? text : `${chars.slice(0, max).join('')}…`;
}
