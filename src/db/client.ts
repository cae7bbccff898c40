// Opens the database: PostgreSQL through pg when a URL is given, otherwise an embedded PGlite in a directory.
import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import pg from 'pg';
import { PgListener } from './listener.js';
import { schema } from './schema.js';

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;
export type Row = Record<string, unknown>;

/**
 * Runs SQL on one connection; without params, several statements may be sent at once. A `name` makes it a prepared
 * statement on PostgreSQL, parsed and planned once per connection: for hot statements whose text never changes.
 */
export type QueryFn = (sql: string, params?: unknown[], name?: string) => Promise<Row[]>;

export interface Database {
  readonly kind: 'postgres' | 'pglite';
  readonly db: Db;
  /** Raw SQL on any connection. */
  query: QueryFn;
  /**
   * Raw SQL whose commits do not wait for the write-ahead log to reach the disk (synchronous_commit off), for
   * writes that are safe to lose in a crash of the database server itself (never in a restart of this service):
   * inbound dedup markers and outcomes, on every message's path. Plain `query` on PGlite.
   */
  queryRelaxed: QueryFn;
  /** Runs fn on a single dedicated connection (for advisory locks and multi-statement migrations). */
  withConnection<T>(fn: (query: QueryFn) => Promise<T>): Promise<T>;
  /**
   * Runs fn in one transaction, its statements alone on their connection (on PGlite no other statement runs in
   * between): committed when fn resolves, rolled back when it throws. Statements keep the statement_timeout.
   */
  transaction<T>(fn: (query: QueryFn) => Promise<T>): Promise<T>;
  /**
   * Calls `handler` with each payload NOTIFY sends on `channel`; resolves once listening, with the unsubscribe. On
   * PostgreSQL a dedicated connection listens and comes back after a drop; `resync` is called then, because what was
   * notified meanwhile is lost.
   */
  listen(channel: string, handler: (payload: string) => void, resync?: () => void): Promise<() => Promise<void>>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export type DatabaseLocation =
  | {
      url: string;
      poolSize?: number;
      /** statement_timeout of every connection: a statement past it is cancelled by the server (5 s). */
      statementTimeoutMs?: number;
    }
  | { dataDir: string }
  | { memory: true };

export async function openDatabase(location: DatabaseLocation): Promise<Database> {
  if (!('url' in location)) return openPglite(location);
  return openPostgres(location.url, location.poolSize ?? 10, location.statementTimeoutMs ?? 5_000);
}

async function openPostgres(url: string, poolSize: number, statementTimeoutMs: number): Promise<Database> {
  const timeout = `-c statement_timeout=${Math.round(statementTimeoutMs)}`;
  // The server cancels a statement past statement_timeout; a server that has stopped answering altogether cannot, so
  // the client gives up a little later, and the pool drops that connection.
  const readTimeoutMs = Math.round(statementTimeoutMs) + 1_000;
  const pool = createPool(url, poolSize, readTimeoutMs, timeout);
  const relaxed = createPool(url, 2, readTimeoutMs, `${timeout} -c synchronous_commit=off`);
  const client = await pool.connect(); // fail at boot, not at the first request, when the server is unreachable
  client.release();
  const listener = new PgListener(
    () =>
      new pg.Client({
        connectionString: url,
        connectionTimeoutMillis: readTimeoutMs,
        // The listening connection never sends on its own: TCP keepalive probes start after 10 s of quiet, not
        // the system's 2 hours, so a link a NAT or load balancer dropped is found within the system's probe count
        // (minutes), and the listener reconnects and resyncs.
        keepAlive: true,
        keepAliveInitialDelayMillis: 10_000,
      }),
  );
  const run = async (q: pg.Pool | pg.PoolClient, text: string, values?: unknown[], name?: string) => {
    const query: pg.QueryConfig = name === undefined ? { text } : { text, name };
    if (values !== undefined) query.values = values;
    return (await q.query<Row>(query)).rows;
  };
  /** A dedicated connection's statements may wait long on purpose (a migration waiting for another's lock). */
  const runUnbounded = async (conn: pg.PoolClient, text: string, values?: unknown[], name?: string) => {
    const query: pg.QueryConfig & { query_timeout: number } = { text, query_timeout: DAY_MS };
    if (name !== undefined) query.name = name;
    if (values !== undefined) query.values = values;
    return (await conn.query<Row>(query)).rows;
  };
  return {
    kind: 'postgres',
    db: drizzlePg(pool, { schema }),
    query: (sql, params, name) => run(pool, sql, params, name),
    queryRelaxed: (sql, params, name) => run(relaxed, sql, params, name),
    async withConnection(fn) {
      const conn = await pool.connect();
      try {
        return await fn((sql, params, name) => runUnbounded(conn, sql, params, name));
      } finally {
        conn.release();
      }
    },
    async transaction(fn) {
      const conn = await pool.connect();
      let broken = false;
      try {
        await conn.query('BEGIN');
        const result = await fn((sql, params, name) => run(conn, sql, params, name));
        await conn.query('COMMIT');
        return result;
      } catch (err) {
        await conn.query('ROLLBACK').catch(() => {
          broken = true;
        });
        throw err;
      } finally {
        // A connection that could not even roll back is dropped, not handed to the next caller mid-transaction.
        conn.release(broken);
      }
    },
    listen: (channel, handler, resync) => listener.listen(channel, handler, resync),
    async ping() {
      await pool.query('SELECT 1');
    },
    async close() {
      await Promise.all([listener.close(), pool.end(), relaxed.end()]);
    },
  };
}

const DAY_MS = 24 * 60 * 60 * 1000;

function createPool(url: string, max: number, readTimeoutMs: number, settings: string): pg.Pool {
  // Named statements are parsed once per connection, but each run gets a plan for its own parameters. A generic plan,
  // cached while a table is still small, would keep scanning the whole table as it grows: for a join on an
  // array of ids, for instance, a sequential scan per batch instead of one index lookup per row. The settings go in
  // the startup packet: no extra statement racing the first query of a new connection.
  const pool = new pg.Pool({
    connectionString: url,
    max,
    // Connecting to a server that stopped answering takes as long as a statement may, no more.
    connectionTimeoutMillis: readTimeoutMs,
    query_timeout: readTimeoutMs,
    options: `-c plan_cache_mode=force_custom_plan ${settings}`.trim(),
  });
  // An idle client that loses its server emits 'error' on the pool; without a listener the process would crash.
  pool.on('error', () => {});
  return pool;
}

async function openPglite(location: { dataDir: string } | { memory: true }): Promise<Database> {
  if ('dataDir' in location) await mkdir(location.dataDir, { recursive: true });
  const pglite = await PGlite.create('dataDir' in location ? location.dataDir : undefined);
  let closed = false;
  const query: QueryFn = async (sql, params) => {
    if (closed) throw new Error('database is closed');
    if (params === undefined || params.length === 0) {
      const results = await pglite.exec(sql);
      return (results.at(-1)?.rows ?? []) as Row[];
    }
    return (await pglite.query<Row>(sql, params)).rows;
  };
  // One connection only: callers that need it to themselves (a migration's BEGIN…COMMIT) take turns.
  let turn: Promise<unknown> = Promise.resolve();
  return {
    kind: 'pglite',
    db: drizzlePglite(pglite, { schema }),
    query,
    queryRelaxed: query,
    withConnection(fn) {
      const result = turn.then(() => fn(query));
      turn = result.catch(() => {});
      return result;
    },
    transaction(fn) {
      if (closed) return Promise.reject(new Error('database is closed'));
      return pglite.transaction((tx) =>
        fn(async (sql, params) => {
          if (params === undefined || params.length === 0) return ((await tx.exec(sql)).at(-1)?.rows ?? []) as Row[];
          return (await tx.query<Row>(sql, params)).rows;
        }),
      );
    },
    async listen(channel, handler) {
      // One process, one connection: nothing can be missed, so there is never anything to resynchronize.
      return pglite.listen(channel, handler);
    },
    async ping() {
      await query('SELECT 1');
    },
    async close() {
      if (closed) return;
      closed = true;
      await pglite.close();
    },
  };
}
