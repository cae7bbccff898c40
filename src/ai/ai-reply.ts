// Picks the reply text out of whatever JSON shape an AI backend answers with.

const REPLY_FIELDS = ['reply', 'output', 'response', 'text'] as const;

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The first non-empty string among reply, output, response and text, at the top level first and then under
 * `data`; null when there is none ("no reply", which is not an error). Whitespace alone counts as empty.
 */
export function extractReply(body: unknown): string | null {
  if (!isRecord(body)) return null;
  for (const scope of [body, body.data]) {
    if (!isRecord(scope)) continue;
    for (const field of REPLY_FIELDS) {
      const value = scope[field];
      if (typeof value === 'string' && value.trim() !== '') return value;
    }
  }
  return null;
}
