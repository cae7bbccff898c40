// Tells a database that cannot answer now (down, unreachable, overloaded, too slow) from a statement that is wrong,
// so that callers answer 503 DATABASE_UNAVAILABLE with Retry-After instead of a 500.
import { AppError } from '../errors.js';

/** How long a client is asked to wait before retrying, in seconds. */
const DATABASE_RETRY_AFTER_S = 5;

/** Socket errors: the server cannot be reached, or the connection broke. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * SQLSTATEs of a server that cannot serve now: class 08 (connection exception), too many connections, out of
 * resources, shutting down or starting up, and a statement cancelled by statement_timeout.
 */
const UNAVAILABLE_STATES = /^(08...|53000|53100|53200|53300|57P01|57P02|57P03|57014)$/;

/** node-postgres reports a broken or refused connection, and a full pool, by message only. */
const UNAVAILABLE_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|Client was closed|database is closed|Cannot use a pool after calling end/i;

export function isDatabaseUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err instanceof AppError) return err.code === 'DATABASE_UNAVAILABLE';
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (NETWORK_CODES.has(code) || UNAVAILABLE_STATES.test(code))) return true;
  if (err instanceof AggregateError && err.errors.some(isDatabaseUnavailable)) return true;
  // Drizzle wraps the driver's error ("Failed query: …") with the original as its cause.
  return UNAVAILABLE_MESSAGES.test(err.message) || (err.cause !== undefined && isDatabaseUnavailable(err.cause));
}

/** Connection failures before any statement was sent: the server never saw it. */
const NEVER_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
/** Refused at connection (08001, 08004, 53300, 57P03), or cancelled by statement_timeout and so rolled back (57014). */
const NEVER_COMMITTED_STATES = new Set(['08001', '08004', '53300', '57P03', '57014']);
const NEVER_SENT_MESSAGES =
  /timeout exceeded when trying to connect|database is closed|Cannot use a pool after calling end/i;

/**
 * Whether a failed write may still have committed: the connection broke after the statement left (a reset, a
 * terminated connection), so the server may have run it. False only when the failure proves it did not.
 */
export function mayHaveCommitted(err: unknown): boolean {
  if (err instanceof AggregateError) return err.errors.some(mayHaveCommitted);
  if (!(err instanceof Error)) return true;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (NEVER_SENT_CODES.has(code) || NEVER_COMMITTED_STATES.has(code))) return false;
  if (NEVER_SENT_MESSAGES.test(err.message)) return false;
  return err.cause === undefined || mayHaveCommitted(err.cause);
}

/** The 503 a request gets when the database cannot take its write or read now. */
export function databaseUnavailable(cause?: unknown, message?: string): AppError {
  return new AppError('DATABASE_UNAVAILABLE', message, {
    cause,
    headers: { 'retry-after': String(DATABASE_RETRY_AFTER_S) },
  });
}
