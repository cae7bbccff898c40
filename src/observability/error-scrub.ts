// Strips the values a database error carries (a statement's parameters, the row it refused) before it is logged.
import { stdSerializers } from 'pino';

/**
 * Error fields that hold values rather than a description: drizzle's and PGlite's `params`, pg's `detail` ("Failing
 * row contains (…)", "Key (agent_id)=(…) already exists"), `where` and `internalQuery` (PL/pgSQL context), PGlite's
 * `queryOptions`. The statement's text stays: our statements carry their values as parameters, never inline.
 */
const VALUE_FIELDS = new Set(['params', 'parameters', 'values', 'detail', 'where', 'internalQuery', 'queryOptions']);
const REDACTED = '[redacted]';

/** drizzle's DrizzleQueryError message: `Failed query: <sql>\nparams: <values joined by commas>`, to its end. */
const DRIZZLE_PARAMS = /\nparams: [\s\S]*$/;
/** PostgreSQL quotes the refused value: `invalid input syntax for type uuid: "…"`, to the end of the line. */
const QUOTED_INPUT = /(invalid input (?:syntax|value) for [^:\n]*):[^\n]*/g;
/** The same in a stack whose message was changed after it was taken: up to the first frame. */
const STACK_PARAMS = /\nparams: [\s\S]*?(?=\n\s+at |$)/;
const MAX_DEPTH = 8;

type ErrorLike = { message: string; stack?: unknown; cause?: unknown; errors?: unknown } & Record<string, unknown>;

const isErrorLike = (value: unknown): value is ErrorLike =>
  typeof value === 'object' && value !== null && typeof (value as { message?: unknown }).message === 'string';

/** A message or a logged string without the values an error put in it. */
export function scrubText(text: string): string {
  if (!text.includes('params: ') && !text.includes('invalid input')) return text;
  return text.replace(DRIZZLE_PARAMS, `\nparams: ${REDACTED}`).replace(QUOTED_INPUT, `$1: ${REDACTED}`);
}

/** A copy of the error, and of its causes, without value fields; its messages and stack scrubbed. */
export function scrubError(err: ErrorLike, depth = 0): ErrorLike {
  // Error.prototype has no enumerable members: a vendor prototype's getters (DOMException) would throw on a copy.
  const copy = Object.create(Error.prototype, {
    constructor: { value: err.constructor, enumerable: false, writable: true, configurable: true },
  }) as ErrorLike;
  const message = scrubText(err.message);
  define(copy, 'message', message);
  if (typeof err.stack === 'string') define(copy, 'stack', scrubStack(err.stack, err.message, message));
  for (const key of Object.keys(err)) {
    if (VALUE_FIELDS.has(key)) continue;
    copy[key] = scrubValue(err[key], depth);
  }
  if (err.cause !== undefined) define(copy, 'cause', scrubValue(err.cause, depth));
  if (Array.isArray(err.errors))
    define(
      copy,
      'errors',
      err.errors.map((inner) => scrubValue(inner, depth)),
    );
  return copy;
}

/** The stack starts with the message: the scrubbed one takes its place, and the frames after it stay. */
function scrubStack(stack: string, original: string, scrubbed: string): string {
  if (original !== scrubbed && stack.includes(original)) return stack.replace(original, () => scrubbed);
  if (!stack.includes('params: ') && !stack.includes('invalid input')) return stack;
  // The message changed after the stack was taken: cut the parameters up to the first frame.
  return stack.replace(STACK_PARAMS, `\nparams: ${REDACTED}`).replace(QUOTED_INPUT, `$1: ${REDACTED}`);
}

function scrubValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return scrubText(value);
  if (isErrorLike(value)) return depth < MAX_DEPTH ? scrubError(value, depth + 1) : { message: REDACTED };
  return value;
}

function define(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: false, writable: true, configurable: true });
}

/** pino's `err` serializer, on the scrubbed copy; a string (`err: errorMessage(e)`) is scrubbed as text. */
export function serializeError(value: unknown): unknown {
  if (typeof value === 'string') return scrubText(value);
  if (!isErrorLike(value)) return value;
  return stdSerializers.err(scrubError(value) as unknown as Error);
}
