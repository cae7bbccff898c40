import { describe, expect, it } from 'vitest';
import { createTestDatabase, usingPostgres } from '../../test/helpers/database.js';
import { AppError } from '../errors.js';
import { databaseUnavailable, isDatabaseUnavailable, mayHaveCommitted } from './availability.js';
import { openDatabase } from './client.js';

const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

describe('isDatabaseUnavailable', () => {
  it('tells a database that cannot answer from a statement that is wrong', () => {
    expect(isDatabaseUnavailable(withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'))).toBe(true);
    expect(isDatabaseUnavailable(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isDatabaseUnavailable(new Error('timeout exceeded when trying to connect'))).toBe(true); // pool exhausted
    expect(isDatabaseUnavailable(new Error('Query read timeout'))).toBe(true);
    expect(isDatabaseUnavailable(withCode('canceling statement due to statement timeout', '57014'))).toBe(true);
    expect(isDatabaseUnavailable(withCode('the database system is starting up', '57P03'))).toBe(true);
    expect(isDatabaseUnavailable(withCode('sorry, too many clients already', '53300'))).toBe(true);
    // Drizzle's wrapper, with the driver's error as its cause.
    const wrapped = new Error('Failed query: select 1', { cause: withCode('read ECONNRESET', 'ECONNRESET') });
    expect(isDatabaseUnavailable(wrapped)).toBe(true);

    expect(isDatabaseUnavailable(withCode('duplicate key value violates unique constraint', '23505'))).toBe(false);
    expect(isDatabaseUnavailable(withCode('unsupported Unicode escape sequence', '22P05'))).toBe(false);
    expect(isDatabaseUnavailable(new Error('something else'))).toBe(false);
    expect(isDatabaseUnavailable('not an error')).toBe(false);
  });

  it('answers 503 DATABASE_UNAVAILABLE with Retry-After', () => {
    const error = databaseUnavailable(new Error('down'));
    expect(error).toBeInstanceOf(AppError);
    expect(error).toMatchObject({ code: 'DATABASE_UNAVAILABLE', status: 503, headers: { 'retry-after': '5' } });
  });
});

describe('mayHaveCommitted', () => {
  it('is false only when the failure proves the statement never ran or was rolled back', () => {
    expect(mayHaveCommitted(withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'))).toBe(false);
    expect(mayHaveCommitted(new Error('timeout exceeded when trying to connect'))).toBe(false);
    expect(mayHaveCommitted(withCode('canceling statement due to statement timeout', '57014'))).toBe(false);
    expect(mayHaveCommitted(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(mayHaveCommitted(withCode('read ECONNRESET', 'ECONNRESET'))).toBe(true);
    expect(mayHaveCommitted(new Error('Query read timeout'))).toBe(true);
  });
});

describe.skipIf(!usingPostgres())('statement timeout on PostgreSQL', () => {
  it('cancels a statement past DB_STATEMENT_TIMEOUT_MS, as an unavailable database', async () => {
    const test = await createTestDatabase();
    const database = await openDatabase({ url: test.url ?? '', poolSize: 1, statementTimeoutMs: 200 });
    try {
      const err = await database.query('SELECT pg_sleep(2)').catch((e: unknown) => e);
      expect(err).toMatchObject({ code: '57014' });
      expect(isDatabaseUnavailable(err)).toBe(true);
      expect(await database.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    } finally {
      await database.close();
      await test.drop();
    }
  });
});
