// A real database with faults on demand: statements of a given prepared name can be made to fail, or held until
// released, as a database that is down or stalled would; every statement is counted by name.
import type { Database, QueryFn } from '../../src/db/client.js';

/** What node-postgres throws when the server refuses connections. */
export function connectionRefused(): Error {
  return Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
}

export interface FaultyDatabase {
  database: Database;
  /** Statements run so far, by prepared name ('unnamed' for the others). */
  counts: Map<string, number>;
  /** The next `count` statements whose name matches fail with `error` (a refused connection by default). */
  fail(name: string | RegExp, count?: number, error?: () => Error): void;
  /** Every statement whose name matches fails until `heal()`. */
  down(name?: string | RegExp): void;
  heal(): void;
  /** The next `count` statements whose name matches (all of them by default) wait, before reaching the database, until `release()`. */
  hold(name: string | RegExp, count?: number): void;
  /** Lets the held statements go on, and holds no more. */
  release(): void;
  /** How many statements are held now. */
  readonly held: number;
}

export function faultyDatabase(inner: Database): FaultyDatabase {
  const counts = new Map<string, number>();
  const failures: Array<{ name: string | RegExp; left: number; error: () => Error }> = [];
  let holding: string | RegExp | null = null;
  let holdsLeft = 0;
  let waiting: Array<() => void> = [];
  const matches = (pattern: string | RegExp, name: string) =>
    typeof pattern === 'string' ? pattern === name : pattern.test(name);

  const wrap =
    (query: QueryFn): QueryFn =>
    async (sql, params, name) => {
      const key = name ?? 'unnamed';
      counts.set(key, (counts.get(key) ?? 0) + 1);
      if (holding !== null && holdsLeft > 0 && matches(holding, key)) {
        holdsLeft -= 1;
        await new Promise<void>((resolve) => waiting.push(resolve));
      }
      const failure = failures.find((f) => f.left > 0 && matches(f.name, key));
      if (failure) {
        failure.left -= 1;
        throw failure.error();
      }
      return query(sql, params, name);
    };

  const query = wrap(inner.query);
  const database: Database = {
    ...inner,
    query,
    queryRelaxed: wrap(inner.queryRelaxed),
    withConnection: (fn) => inner.withConnection((connection) => fn(wrap(connection))),
    transaction: (fn) => inner.transaction((connection) => fn(wrap(connection))),
    async ping() {
      await query('SELECT 1', [], 'ping');
    },
  };
  return {
    database,
    counts,
    fail(name, count = 1, error = connectionRefused) {
      failures.push({ name, left: count, error });
    },
    down(name = /.*/) {
      failures.push({ name, left: Number.POSITIVE_INFINITY, error: connectionRefused });
    },
    heal() {
      failures.splice(0);
    },
    hold(name, count = Number.POSITIVE_INFINITY) {
      holding = name;
      holdsLeft = count;
    },
    release() {
      holding = null;
      const resume = waiting;
      waiting = [];
      for (const go of resume) go();
    },
    get held() {
      return waiting.length;
    },
  };
}
