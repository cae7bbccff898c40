// The pino logger: JSON lines, secrets redacted, human-readable only on a TTY outside production.
import { type LevelWithSilentOrString, type LogFn, type Logger, type LoggerOptions, pino } from 'pino';
import { scrubText, serializeError } from './error-scrub.js';

export type { Logger };

const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'headers.authorization',
  '*.apiKey',
  '*.api_key',
  '*.apikey',
  '*.accessToken',
  '*.access_token',
  '*.token',
  '*.adminApiKey',
  'apiKey',
  'api_key',
  'apikey',
  'token',
];

/**
 * The message of a line may be an error's (`logger.error(err)` takes err.message as its message) or embed one: it is
 * scrubbed like the error itself.
 */
function scrubMessages(this: Logger, args: Parameters<LogFn>, method: LogFn): void {
  const [first, second] = args;
  if (first instanceof Error && typeof second !== 'string') {
    method.apply(this, [first, scrubText(first.message)]);
    return;
  }
  // Most lines need nothing: the arguments go through as they are, without a copy.
  if (!args.some((arg) => typeof arg === 'string' && scrubText(arg) !== arg)) {
    method.apply(this, args);
    return;
  }
  method.apply(this, args.map((arg) => (typeof arg === 'string' ? scrubText(arg) : arg)) as Parameters<LogFn>);
}

export interface LoggerSettings {
  level: LevelWithSilentOrString;
  pretty?: boolean;
  /** Where lines go; stdout when absent. Tests pass a stream to read what was logged. */
  destination?: NodeJS.WritableStream;
}

export function createLogger({ level, pretty = false, destination }: LoggerSettings): Logger {
  const options: LoggerOptions = {
    level,
    base: null, // no pid or hostname on every line
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
    // A database error carries the statement's values (a key, a message's text): logged errors go without them.
    serializers: { err: serializeError, error: serializeError, reason: serializeError },
    hooks: { logMethod: scrubMessages },
  };
  if (destination) return pino(options, destination);
  if (pretty) {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss' } } });
  }
  return pino(options);
}
