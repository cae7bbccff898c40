// How large a request body each route reads. Authentication runs before any of it is read (onRequest hooks).

/** Every route without a limit of its own: session creation, pairing codes, sandbox control. */
export const DEFAULT_BODY_LIMIT = 64 * 1024;

/**
 * POST /agents/{agentId}/messages: a 65,536-character message even when every character is escaped as \uXXXX
 * (6 bytes; Python's json.dumps does it for all non-ASCII text), plus 256 mentions and the other fields.
 */
export const TEXT_BODY_LIMIT = 512 * 1024;

/** POST /agents/{agentId}/run: free-form fields (context_memory, metadata…) pass through to the AI backend. */
export const RUN_BODY_LIMIT = 1024 * 1024;

/**
 * POST /agents/{agentId}/media: the image in base64 (4 bytes per 3), with room for what encoders add (line breaks
 * every 76 characters, escaped slashes: an eighth more), plus 256 KiB for the caption, URL and mentions.
 */
export function mediaBodyLimit(mediaMaxBytes: number): number {
  const base64 = Math.ceil(mediaMaxBytes / 3) * 4;
  return Math.ceil(base64 * 1.125) + 256 * 1024;
}
