import { Writable } from 'node:stream';
import { DrizzleQueryError } from 'drizzle-orm/errors';
import { describe, expect, it } from 'vitest';
import { errorMessage } from '../errors.js';
import { scrubText } from './error-scrub.js';
import { createLogger } from './logger.js';

const SECRET = 'sk-secret-0123456789';

/** What pg throws for a refused row: the row's values in `detail`. */
function pgError(message: string): Error {
  return Object.assign(new Error(message), {
    code: '23514',
    detail: `Failing row contains (u1, bot, ${SECRET}).`,
    where: `SQL statement with ${SECRET}`,
    constraint: 'some_check',
  });
}

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  });
  return { logger: createLogger({ level: 'debug', destination }), lines };
}

describe('logged errors lose the values they carried', () => {
  const failed = () =>
    new DrizzleQueryError(
      'insert into "whatsapp_user" ("agent_id", "api_key") values ($1, $2)',
      ['bot', SECRET],
      pgError('new row violates check constraint "some_check"'),
    );

  it('drops params and detail from an error and its causes, keeping the statement, the code and the stack', () => {
    const { logger, lines } = capture();
    logger.error({ err: new Error('request failed', { cause: failed() }), event: 'x' }, 'failed');
    logger.error({ err: failed() }, 'failed');
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(line).not.toContain(SECRET);
    const err = JSON.parse(lines[1] ?? '{}').err;
    expect(err.type).toBe('DrizzleQueryError');
    expect(err.message).toContain('Failed query: insert into "whatsapp_user" ("agent_id", "api_key") values ($1, $2)');
    expect(err.message).toContain('params: [redacted]: new row violates check constraint "some_check"');
    expect(err.query).toContain('insert into');
    expect(err.params).toBeUndefined();
    expect(err.stack).toMatch(/params: \[redacted\]\n\s+at /);
  });

  it('scrubs an error logged as the first argument, and one logged as a string', () => {
    const { logger, lines } = capture();
    logger.error(failed());
    logger.warn({ event: 'outbox.failed', err: errorMessage(failed()) });
    logger.info(`could not save: ${errorMessage(failed())}`);
    logger.error(new AggregateError([failed()], 'all failed'));
    expect(lines).toHaveLength(4);
    for (const line of lines) expect(line).not.toContain(SECRET);
    expect(JSON.parse(lines[0] ?? '{}').msg).toContain('Failed query');
  });

  it('survives circular causes and errors whose message changed after their stack was taken', () => {
    const { logger, lines } = capture();
    const a = new Error('a') as Error & { cause?: unknown };
    const b = new Error('b', { cause: a });
    a.cause = b;
    const changed = failed();
    changed.message = 'changed';
    logger.error({ err: a });
    logger.error({ err: changed });
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(line).not.toContain(SECRET);
  });

  it('hides the value PostgreSQL quotes in an invalid input error', () => {
    expect(scrubText(`invalid input syntax for type uuid: "${SECRET}"`)).toBe(
      'invalid input syntax for type uuid: [redacted]',
    );
    expect(scrubText('nothing to hide')).toBe('nothing to hide');
  });
});
