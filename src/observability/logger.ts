// The pino logger: JSON lines, secrets redacted, human-readable only on a TTY outside production.
import { type LevelWithSilentOrString, type Logger, type LoggerOptions, pino } from 'pino';

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
  };
  if (destination) return pino(options, destination);
  if (pretty) {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss' } } });
  }
  return pino(options);
}
