// The message sent to DEVELOPER_NUMBER when an agent's AI backend fails on an inbound message.

const REPORT_TEXT_MAX_CHARS = 500;

export interface DeveloperReport {
  agentId: string;
  senderJid: string;
  text: string;
  reason: 'TIMEOUT' | 'ERROR';
  traceId: string;
  at: Date;
}

export function formatDeveloperReport(report: DeveloperReport): string {
  return [
    '[AI failure]',
    `agent: ${report.agentId}`,
    `sender: ${report.senderJid}`,
    `reason: ${report.reason}`,
    `traceId: ${report.traceId}`,
    `time: ${report.at.toISOString()}`,
    `text: ${truncate(report.text, REPORT_TEXT_MAX_CHARS)}`,
  ].join('\n');
}

/** Cuts by code point, so an emoji at the boundary is not split into half a surrogate pair. */
function truncate(text: string, max: number): string {
  const chars = Array.from(text);
  return chars.length <= max ? text : `${chars.slice(0, max).join('')}…`;
}
