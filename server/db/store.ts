import { AsyncLocalStorage } from 'node:async_hooks';
import { getTableColumns, getTableName, is, sql, SQL, type Column, type Table } from 'drizzle-orm';
import type pg from 'pg';
import type { Db } from './connection.js';
import type { PgDb } from './pg/connection.js';
import * as pgSchema from './pg/schema.js';
import * as sqliteSchema from './schema.js';

/**
 * The async, dialect-neutral data layer (issue 22): one repository implementation runs on
 * SQLite (better-sqlite3, the embedded default) and on PostgreSQL (node-postgres pool).
 *
 * How a repository is written:
 *
 *   const { q, t } = store;                       // builder + the dialect's tables
 *   await store.all(q.select().from(t.users).where(eq(t.users.email, e)));
 *   await store.one(q.select().from(t.tenants).where(eq(t.tenants.id, id)));
 *   await store.run(q.update(t.users).set({ … }).where(…));   // → rows affected
 *   await store.tx(async () => { … });            // every statement inside joins the transaction
 *
 * - Tables come from `store.t`, never from an import of schema.ts: the PostgreSQL tables are
 *   different objects (native types) with the same names and the same TypeScript row types
 *   (test/unit/schema-parity.test.ts keeps the two schemas equal), so `t` is typed as the SQLite
 *   schema and holds the active dialect's tables at run time.
 * - Queries are built with `store.q`, typed as the SQLite builder. On PostgreSQL it is the pg
 *   builder (same method names); inside `tx` it is the transaction's. Execute only through
 *   `all` / `one` / `run` (not `.all()` / `.get()` / `.run()`, which exist only on SQLite, and
 *   not by awaiting the builder, which would bypass the SQLite transaction gate below).
 * - Counts: drizzle's `count()` (PostgreSQL's count(*) is a bigint that would arrive as a
 *   string). Dialect-specific SQL (date functions, full-text search) branches on `dialect`.
 *   Compare timestamps with drizzle's operators (`lt(col, ms)`), which encode the value through
 *   the column (a number of ms becomes a timestamptz on PostgreSQL); a raw `sql` template would
 *   not.
 *
 * SQLite stays synchronous underneath: `all/one/run` execute at once and return a resolved
 * promise (a microtask, no thread hop), so the embedded default keeps its speed.
 *
 * Transactions. PostgreSQL: `tx` takes a pooled connection (drizzle's transaction) and every
 * statement built from `store.q` inside the callback — in any repository — runs on it, found
 * through an AsyncLocalStorage rather than a tx handle passed to every repository call (a
 * statement that escaped to another pooled connection would not see the transaction's rows or
 * would wait on its locks). SQLite has one connection per process and better-sqlite3 cannot
 * run an async callback inside its transaction, so `tx` issues BEGIN IMMEDIATE / COMMIT itself
 * and holds a gate: while it is open, statements from other async flows wait in `all/one/run`
 * until it ends (otherwise they would run inside it, be undone by its rollback, or see its
 * uncommitted rows). Nested `tx` calls join the outer transaction.
 */
export type Dialect = 'sqlite' | 'postgres';
export type Tables = typeof sqliteSchema;
/** The query builder, typed as SQLite's (see above). */
export type QueryBuilder = Omit<Db, '$client' | 'transaction'>;

/** Anything executable on SQLite's builder: select / insert / update / delete, with or without returning. */
interface AllQuery<T> {
  all(): T[];
}
interface OneQuery<T> {
  get(): T | undefined;
}
interface RunQuery {
  run(): { changes: number };
}

export interface PreparedInsert<R> {
  /** Inserts the rows, all or none (one transaction); resolves when they are committed (or joined the open transaction). */
  run(rows: readonly R[]): Promise<void>;
}

/** A table's columns as [row key, column], in the table's column order. */
function columnsOf(table: Table): [string, Column][] {
  return Object.entries(getTableColumns(table));
}

/** One row value as the driver takes it: drizzle's own column mapping, the column's static default for undefined. */
function driverValue(c: Column, v: unknown): unknown {
  if (v === undefined) v = c.default !== undefined && !is(c.default, SQL) ? c.default : null;
  return v === null ? null : c.mapToDriverValue(v);
}

/** A table or column name quoted for SQL (names come from the schema, never from input). */
const ident = (name: string): string => `"${name.replace(/"/g, '""')}"`;

interface TxFrame {
  /** The transaction's builder (PostgreSQL); SQLite's frames use the one connection. */
  readonly q: QueryBuilder | undefined;
}

export interface Store {
  readonly dialect: Dialect;
  readonly t: Tables;
  /** The query builder of the current transaction, else of the database. */
  readonly q: QueryBuilder;
  all<T>(query: AllQuery<T>): Promise<T[]>;
  one<T>(query: OneQuery<T>): Promise<T | undefined>;
  /** Executes an insert/update/delete without `returning`; resolves with the rows affected. */
  run(query: RunQuery): Promise<number>;
  tx<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * Inside `tx`: serialises this transaction against every other one that locks the same key,
   * in any process or replica, until it ends — for a check-then-write ("is this the last
   * owner?", "is the seat limit reached?", "which is the chain's head?"). PostgreSQL (READ
   * COMMITTED, where two transactions could both pass the check): a transaction-scoped advisory
   * lock on the key's hash, taken before the check reads, so the check then sees the other's
   * commit; an advisory lock rather than SELECT … FOR UPDATE because the row may not exist yet.
   * SQLite: nothing to do — `tx` is BEGIN IMMEDIATE (the file's write lock) and the gate keeps
   * the process's other flows out.
   */
  lock(key: string): Promise<void>;
  /**
   * A prepared INSERT of whole rows into `table`, for hot repeated writes (usage records: one
   * per AI call). Built once, reused for every batch: SQLite runs one better-sqlite3 prepared
   * statement per row inside one transaction; PostgreSQL runs one named prepared statement per
   * batch, `INSERT … SELECT * FROM unnest($1::type[], …)` (one array parameter per column, so
   * the same statement serves any number of rows in one round trip). drizzle's multi-row
   * builder builds, escapes and maps the whole statement again on every call (≈ 68 µs of CPU
   * per row measured against ≈ 9 µs for a reused prepared statement; bench/usage-insert.ts).
   * Values are mapped by the table's own columns (booleans, timestamps, JSON) as drizzle
   * would; a key left undefined takes the column's static default, else NULL. Inside `tx` it
   * joins the transaction. Use the builder for everything else.
   *
   * `asyncCommit` (PostgreSQL, outside `tx`): the statement's own transaction commits without
   * waiting for the WAL flush (`synchronous_commit = off` for it alone). The row is in the
   * database server when the promise resolves, so the death of the Enclave process loses
   * nothing; a crash of the database server itself may lose such rows of its last
   * 3 × wal_writer_delay (600 ms by default). For rows an answer waits for (usage records):
   * a commit's disk flush per call would otherwise add milliseconds to every call. SQLite
   * (WAL, synchronous=NORMAL) commits without a flush already.
   */
  prepareInsert<R extends object>(table: Table, name: string, opts?: { asyncCommit?: boolean }): PreparedInsert<R>;
  /** The SQLite handle for code not yet on the store (undefined on PostgreSQL). */
  readonly sqlite: Db | undefined;
  close(): Promise<void>;
}

class SqliteStore implements Store {
  readonly dialect = 'sqlite' as const;
  readonly t: Tables = sqliteSchema;
  readonly q: QueryBuilder;
  private readonly frames = new AsyncLocalStorage<TxFrame>();
  /** The open transaction's frame and the promise that resolves when it ends. */
  private open: { frame: TxFrame; ended: Promise<void> } | undefined;

  constructor(readonly sqlite: Db) {
    this.q = sqlite;
  }

  /** Waits while another flow's transaction is open (see the class comment of the module). */
  private gate(): Promise<void> | undefined {
    const open = this.open;
    if (open === undefined || this.frames.getStore() === open.frame) return undefined;
    return open.ended.then(() => this.gate());
  }

  all<T>(query: AllQuery<T>): Promise<T[]> {
    const wait = this.gate();
    return wait === undefined ? Promise.resolve(query.all()) : wait.then(() => query.all());
  }

  one<T>(query: OneQuery<T>): Promise<T | undefined> {
    const wait = this.gate();
    return wait === undefined ? Promise.resolve(query.get()) : wait.then(() => query.get());
  }

  run(query: RunQuery): Promise<number> {
    const wait = this.gate();
    return wait === undefined ? Promise.resolve(query.run().changes) : wait.then(() => query.run().changes);
  }

  async tx<T>(fn: () => Promise<T>): Promise<T> {
    if (this.open && this.frames.getStore() === this.open.frame) return fn();
    while (this.open) await this.open.ended;
    const frame: TxFrame = { q: undefined };
    let end!: () => void;
    this.open = { frame, ended: new Promise<void>((r) => (end = r)) };
    const client = this.sqlite.$client;
    try {
      // IMMEDIATE: take the write lock now, so another process sharing the file (the worker)
      // cannot slip a write between this transaction's reads and writes.
      client.exec('BEGIN IMMEDIATE');
      let result: T;
      try {
        result = await this.frames.run(frame, fn);
      } catch (e) {
        if (client.inTransaction) client.exec('ROLLBACK');
        throw e;
      }
      client.exec('COMMIT');
      return result;
    } finally {
      this.open = undefined;
      end();
    }
  }

  async lock(_key: string): Promise<void> {
    if (this.open === undefined || this.frames.getStore() !== this.open.frame) throw new Error('store.lock() outside store.tx(): the lock would end at once');
  }

  prepareInsert<R extends object>(table: Table, _name: string, _opts?: { asyncCommit?: boolean }): PreparedInsert<R> {
    const cols = columnsOf(table);
    const client = this.sqlite.$client;
    // Prepared on first use (the table exists once the store's migrations ran), then reused.
    let insertAll: ((rows: readonly R[]) => void) | undefined;
    const exec = (rows: readonly R[]): void => {
      if (!insertAll) {
        const stmt = client.prepare(`INSERT INTO ${ident(getTableName(table))} (${cols.map(([, c]) => ident(c.name)).join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`);
        // better-sqlite3's transaction(): BEGIN/COMMIT, or a savepoint inside an open transaction (store.tx).
        insertAll = client.transaction((batch: readonly R[]) => {
          for (const r of batch) stmt.run(cols.map(([k, c]) => driverValue(c, (r as Record<string, unknown>)[k])));
        });
      }
      insertAll(rows);
    };
    return {
      run: (rows) => {
        if (!rows.length) return Promise.resolve();
        const wait = this.gate();
        if (wait !== undefined) return wait.then(() => exec(rows));
        try {
          exec(rows);
          return Promise.resolve();
        } catch (e) {
          return Promise.reject(e as Error); // a refused batch rejects (as on PostgreSQL) rather than throwing at the caller
        }
      },
    };
  }

  async close(): Promise<void> {
    this.sqlite.$client.close();
  }
}

/** node-postgres' result of an insert/update/delete without returning. */
interface PgCommandResult {
  rowCount: number | null;
}

class PgStore implements Store {
  readonly dialect = 'postgres' as const;
  // The pg tables carry the same names and row types as the SQLite ones (schema-parity test).
  readonly t = pgSchema as unknown as Tables;
  readonly sqlite = undefined;
  private readonly frames = new AsyncLocalStorage<TxFrame>();
  private readonly base: QueryBuilder;

  constructor(private readonly pg: PgDb) {
    // The pg builder has the SQLite builder's method names; typed as one so repositories are written once.
    this.base = pg as unknown as QueryBuilder;
  }

  get q(): QueryBuilder {
    return this.frames.getStore()?.q ?? this.base;
  }

  // On PostgreSQL a built query is a thenable that executes on the connection it was built from.
  async all<T>(query: AllQuery<T>): Promise<T[]> {
    return (await (query as unknown as PromiseLike<T[]>)) ?? [];
  }

  async one<T>(query: OneQuery<T>): Promise<T | undefined> {
    return (await (query as unknown as PromiseLike<T[]>))[0];
  }

  async run(query: RunQuery): Promise<number> {
    return (await (query as unknown as PromiseLike<PgCommandResult>)).rowCount ?? 0;
  }

  tx<T>(fn: () => Promise<T>): Promise<T> {
    if (this.frames.getStore()) return fn();
    // READ COMMITTED (the default): statements see what committed before they started; code
    // that needs more takes a lock (e.g. the audit append's advisory lock) rather than relying
    // on a snapshot.
    return this.pg.transaction((tx) => this.frames.run({ q: tx as unknown as QueryBuilder }, fn));
  }

  async lock(key: string): Promise<void> {
    const frame = this.frames.getStore();
    if (!frame?.q) throw new Error('store.lock() outside store.tx(): the lock would end at once');
    // hashtext: PostgreSQL's own 32-bit hash of the key, as the lock's 64-bit id.
    await (frame.q as unknown as { execute(q: SQL): PromiseLike<unknown> }).execute(sql`SELECT pg_advisory_xact_lock(hashtext(${key}))`);
  }

  prepareInsert<R extends object>(table: Table, name: string, opts?: { asyncCommit?: boolean }): PreparedInsert<R> {
    const cols = columnsOf(table);
    // One array parameter per column, cast to the column's type: any number of rows, one statement.
    const head = `INSERT INTO ${ident(getTableName(table))} (${cols.map(([, c]) => ident(c.name)).join(', ')})`;
    const rows = `unnest(${cols.map(([, c], i) => `$${i + 1}::${c.getSQLType()}[]`).join(', ')})`;
    const plain = { name: `enclave_insert_${name}`, text: `${head} SELECT * FROM ${rows}` };
    // set_config(…, true) lasts until the end of the statement's implicit transaction, whose
    // commit then does not wait for the WAL flush; the cross join evaluates it once.
    const async = { name: `enclave_insert_${name}_async`, text: `${head} SELECT u.* FROM ${rows} AS u CROSS JOIN (SELECT set_config('synchronous_commit', 'off', true)) AS s` };
    return {
      run: async (batch) => {
        if (!batch.length) return;
        const values = cols.map(([k, c]) => batch.map((r) => driverValue(c, (r as Record<string, unknown>)[k])));
        // Inside a transaction the setting would weaken the whole transaction's commit: not there.
        const inTx = this.frames.getStore() !== undefined;
        await this.client().query({ ...(opts?.asyncCommit && !inTx ? async : plain), values });
      },
    };
  }

  /** The connection of the open transaction (its statements must run on it), else the pool. */
  private client(): pg.Pool | pg.PoolClient {
    const tx = this.frames.getStore()?.q;
    if (!tx) return this.pg.$client;
    // drizzle's node-postgres transaction keeps its pooled connection as session.client (not typed as public).
    const client = (tx as unknown as { session?: { client?: pg.PoolClient } }).session?.client;
    if (!client) throw new Error("prepareInsert inside store.tx(): cannot find the transaction's connection");
    return client;
  }

  async close(): Promise<void> {
    await this.pg.$client.end();
  }
}

export function sqliteStore(db: Db): Store {
  return new SqliteStore(db);
}

export function postgresStore(db: PgDb): Store {
  return new PgStore(db);
}

/**
 * A unique-key violation on either dialect (PostgreSQL SQLSTATE 23505; SQLite's constraint
 * codes), directly or as the cause drizzle wraps it in: the loser of a race for a name.
 */
export function isUniqueViolation(e: unknown): boolean {
  const err = e as { code?: unknown; cause?: { code?: unknown } } | null;
  const code = err?.code ?? err?.cause?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}
