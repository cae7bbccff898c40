import { describe, expect, it } from 'vitest';
import { createTestDatabase, usingPostgres } from '../../test/helpers/database.js';
import { until } from '../../test/helpers/messaging.js';

describe('Database.listen', () => {
  it('hears what NOTIFY sends on its channel, and stops hearing after the unsubscribe', async () => {
    const test = await createTestDatabase();
    try {
      const heard: string[] = [];
      const stop = await test.database.listen('wamt_test', (payload) => heard.push(payload));
      await test.database.query(`SELECT pg_notify('wamt_test', 'one'), pg_notify('wamt_other', 'not ours')`);
      await until(() => heard.length === 1);
      await stop();
      await test.database.query(`SELECT pg_notify('wamt_test', 'two')`);
      await test.database.query('SELECT 1'); // a round trip after the notify: it would have arrived by now
      expect(heard).toEqual(['one']);
    } finally {
      await test.drop();
    }
  });

  it.skipIf(!usingPostgres())('listens again after its connection is killed, and asks to resync', async () => {
    const test = await createTestDatabase();
    try {
      const heard: string[] = [];
      let resyncs = 0;
      await test.database.listen(
        'wamt_test',
        (payload) => heard.push(payload),
        () => {
          resyncs += 1;
        },
      );
      await test.database.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND datname = current_database()`,
      );
      await until(() => resyncs === 1, 15_000);
      await test.database.query(`SELECT pg_notify('wamt_test', 'after')`);
      await until(() => heard.includes('after'));
    } finally {
      await test.drop();
    }
  });
});
