// The table of error codes, and the AppError that services throw. One handler (http/error-handler.ts) maps them.

export const ERRORS = {
  INVALID_PAYLOAD: { status: 400, message: 'The request is not valid.' },
  INVALID_AGENT_ID: { status: 400, message: 'agentId must match ^[A-Za-z0-9_-]{1,64}$.' },
  INVALID_RECIPIENT: { status: 400, message: 'The recipient is not a phone number, JID or group JID.' },
  MEDIA_URL_FORBIDDEN: { status: 400, message: 'The media URL is not allowed.' },
  WEBHOOK_URL_FORBIDDEN: { status: 400, message: 'The webhook URL is not allowed.' },
  UNAUTHORIZED: { status: 401, message: 'A valid API key is required.' },
  FORBIDDEN: { status: 403, message: 'This key does not cover this agent.' },
  NOT_FOUND: { status: 404, message: 'Not found.' },
  MEDIA_LINK_INVALID: { status: 403, message: 'The media link is invalid or has expired.' },
  MEDIA_NOT_FOUND: { status: 404, message: 'The file is no longer stored.' },
  SESSION_NOT_FOUND: { status: 404, message: 'No session exists for this agent.' },
  WEBHOOK_NOT_FOUND: { status: 404, message: 'No webhook with this id exists here.' },
  DELIVERY_NOT_FOUND: { status: 404, message: 'No delivery with this id exists for this webhook.' },
  MESSAGE_NOT_FOUND: { status: 404, message: 'No message with this id exists for this agent.' },
  SESSION_NOT_READY: { status: 409, message: 'The WhatsApp session is not connected.' },
  SESSION_ALREADY_CONNECTED: { status: 409, message: 'The session is already connected.' },
  AGENT_OWNED_BY_OTHER_USER: { status: 409, message: 'This agentId belongs to another user.' },
  MESSAGE_NOT_SENT: { status: 409, message: 'The message is not sent yet.' },
  IDEMPOTENCY_KEY_REUSED: { status: 409, message: 'This Idempotency-Key was used for a different request.' },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'The request body is too large.' },
  MEDIA_TOO_LARGE: { status: 413, message: 'The file is larger than the limit for its kind.' },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    message: 'The bytes are not of a type accepted for this kind of message (images: JPEG, PNG, WebP, GIF).',
  },
  UNSUPPORTED_CONTENT_TYPE: { status: 415, message: 'The request body must be JSON.' },
  MEDIA_FETCH_FAILED: { status: 422, message: 'The media URL could not be fetched.' },
  RATE_LIMITED: { status: 429, message: "The agent's send queue is full." },
  NEW_CONTACT_LIMIT: {
    status: 429,
    message: 'This agent has written to as many new contacts as its pacing profile allows in 24 h.',
  },
  TOO_MANY_AUTH_FAILURES: { status: 429, message: 'Too many failed authentications. Retry later.' },
  INTERNAL_ERROR: { status: 500, message: 'Internal server error.' },
  ENGINE_UNSUPPORTED: { status: 501, message: "This agent's engine does not support this." },
  AI_DOWNSTREAM_ERROR: { status: 502, message: 'The AI backend answered with an error.' },
  SERVICE_UNAVAILABLE: { status: 503, message: 'The service is unavailable.' },
  ENGINE_UNAVAILABLE: { status: 503, message: "The session's engine cannot start." },
  DATABASE_UNAVAILABLE: { status: 503, message: 'The database is unavailable. Retry later.' },
  AI_TIMEOUT: { status: 504, message: 'The AI backend did not answer in time.' },
  QR_TIMEOUT: { status: 504, message: 'No QR code appeared in time.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

export interface AppErrorOptions {
  cause?: unknown;
  /** Extra response headers, such as Retry-After. */
  headers?: Record<string, string>;
  /** Machine-readable facts about the error, sent as `error.details` (NEW_CONTACT_LIMIT: limit, retryAfter). */
  details?: Record<string, unknown>;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message?: string, options: AppErrorOptions = {}) {
    super(message ?? ERRORS[code].message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.headers = options.headers ?? {};
    this.details = options.details;
  }
}

export const isAppError = (err: unknown): err is AppError => err instanceof AppError;

/** Any thrown value as an Error, for callbacks that take one. */
export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** The message of any thrown value, for logs and `lastError`; never sent to clients for a 5xx. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return typeof err === 'string' ? err : JSON.stringify(err);
}
