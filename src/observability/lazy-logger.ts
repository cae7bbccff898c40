// A child logger that is only built when something is logged through it. Fastify gives every request a child (for
// its traceId) and the agent routes add another (for the agentId); building a pino child serializes its bindings,
// which is a real share of a fast request's cost when, as on most requests, nothing at an enabled level is logged.
import type { FastifyBaseLogger } from 'fastify';
import type { Bindings, ChildLoggerOptions, Level, LevelWithSilentOrString } from 'pino';

/** What a lazy child needs from its parent: pino, or another lazy child. */
type Parent = FastifyBaseLogger & { isLevelEnabled(level: string): boolean };

export class LazyLogger implements FastifyBaseLogger {
  private built: Parent | undefined;

  constructor(
    private readonly parent: Parent,
    private readonly bindings: Bindings,
    private readonly options: ChildLoggerOptions = {},
  ) {}

  get level(): LevelWithSilentOrString {
    return this.built?.level ?? this.options.level ?? this.parent.level;
  }

  set level(level: LevelWithSilentOrString) {
    this.logger().level = level;
  }

  isLevelEnabled(level: string): boolean {
    if (this.built) return this.built.isLevelEnabled(level);
    return this.options.level === undefined ? this.parent.isLevelEnabled(level) : this.logger().isLevelEnabled(level);
  }

  child(bindings: Bindings, options?: ChildLoggerOptions): LazyLogger {
    return new LazyLogger(this, bindings, options);
  }

  fatal(...args: unknown[]): void {
    this.write('fatal', args);
  }
  error(...args: unknown[]): void {
    this.write('error', args);
  }
  warn(...args: unknown[]): void {
    this.write('warn', args);
  }
  info(...args: unknown[]): void {
    this.write('info', args);
  }
  debug(...args: unknown[]): void {
    this.write('debug', args);
  }
  trace(...args: unknown[]): void {
    this.write('trace', args);
  }
  silent(): void {}

  private write(level: Level, args: unknown[]): void {
    if (!this.isLevelEnabled(level)) return;
    const logger = this.logger();
    Reflect.apply(logger[level], logger, args);
  }

  private logger(): Parent {
    const parent = this.parent instanceof LazyLogger ? this.parent.logger() : this.parent;
    this.built ??= parent.child(this.bindings, this.options) as Parent;
    return this.built;
  }
}

/** Fastify's `childLoggerFactory`: the request's logger, built on first use (pino's own child otherwise). */
export function lazyChildLogger(
  logger: FastifyBaseLogger,
  bindings: Bindings,
  options: ChildLoggerOptions,
): FastifyBaseLogger {
  return canCheckLevels(logger) ? new LazyLogger(logger, bindings, options) : logger.child(bindings, options);
}

function canCheckLevels(logger: FastifyBaseLogger): logger is Parent {
  return typeof (logger as Partial<Parent>).isLevelEnabled === 'function';
}
