import { asc, getTableColumns, getTableName, gt, is, sql, type SQL } from 'drizzle-orm';
import { getTableConfig as pgTableConfig, PgTable } from 'drizzle-orm/pg-core';
import { getTableConfig as sqliteTableConfig, SQLiteTable } from 'drizzle-orm/sqlite-core';
import { existsSync } from 'node:fs';
import { ChainWalker, verifyChain, type AuditRow, type VerifyResult } from '../../audit/log.js';
import { openDatabase, type Db } from '../../db/connection.js';
import { assertSchemaCurrent, SchemaTooNewError } from '../../db/migrator.js';
import { checkPostgres, openPostgres, type PgDb, type PgSettings } from '../../db/pg/connection.js';
import { migratePostgres } from '../../db/pg/migrator.js';
import * as pgSchema from '../../db/pg/schema.js';
import * as sqliteSchema from '../../db/schema.js';

/**
 * `enclave db migrate-to-postgres` (issue 22): copies every table of an SQLite install into an
 * empty PostgreSQL database and proves the copy.
 *
 * 1. The SQLite database must be at this code's schema head (its columns are the ones the two
 *    schemas describe); the PostgreSQL database is migrated first (migrations-pg).
 * 2. A target with any row in any Enclave table is refused before anything is written.
 * 3. SQLite is read inside one read transaction (one consistent snapshot, even while the old
 *    server still runs); rows are selected through the SQLite table objects and inserted through
 *    the PostgreSQL ones, so drizzle maps every value (integer ms → timestamptz, 0/1 → boolean,
 *    JSON text → jsonb). Tables go in foreign-key order, in batches, inside ONE PostgreSQL
 *    transaction.
 * 4. Before that transaction commits: the row count of every table is compared, and the audit
 *    chain is recomputed over the PostgreSQL rows with the audit module's own check
 *    (ChainWalker, entryHash). Any difference rolls the whole copy back: the target stays empty.
 *
 * usage_rollups is copied as it is (SQLite keeps rollups of purged raw records), so the
 * PostgreSQL rollup triggers (usage_rollups, usage_team_rollups) are disabled for the copy (in the same transaction) and enabled again.
 * Not copied, because PostgreSQL has no use for them: schema_migrations (its own bookkeeping)
 * and the FTS5 search indexes (chat_search_ids, chat_fts*: derived from chat_messages; knowledge_fts*:
 * derived from the knowledge chunks).
 */

export type MigrateToPostgresFailure = 'bad_input' | 'target_not_empty' | 'verification_failed';

/** A failure with its exit code: 2 bad input, 3 target not empty, 4 the copy did not verify. */
export class MigrateToPostgresError extends Error {
  override readonly name = 'MigrateToPostgresError';
  constructor(
    readonly reason: MigrateToPostgresFailure,
    message: string,
    readonly report?: MigrationReport,
  ) {
    super(message);
  }
  get exitCode(): number {
    return this.reason === 'bad_input' ? 2 : this.reason === 'target_not_empty' ? 3 : 4;
  }
}

export interface TableReport {
  readonly table: string;
  readonly sqlite: number;
  readonly postgres: number;
  readonly ok: boolean;
}

export interface MigrationReport {
  readonly ok: boolean;
  readonly tables: readonly TableReport[];
  readonly audit: VerifyResult;
  readonly postgresVersion: string;
  readonly migrationsApplied: readonly string[];
  readonly ms: number;
}

export interface MigrateToPostgresOptions {
  readonly sqliteFile: string;
  readonly postgres: PgSettings;
  readonly appVersion?: string;
  /** Rows per INSERT (bounded further by PostgreSQL's 65535 parameters per statement). */
  readonly batchSize?: number;
  /** Progress lines (table names and counts only: never row contents). */
  readonly progress?: (line: string) => void;
}

/** SQLite tables that are deliberately not copied (see above). */
// FTS5 search indexes (chat, knowledge) and their id maps are derived from rows that are copied;
// PostgreSQL searches with its own indexes over those rows.
const NOT_COPIED = /^(schema_migrations|chat_search_ids|chat_fts(_.*)?|knowledge_fts(_.*)?|sqlite_.*)$/;

export interface TablePair {
  readonly name: string;
  readonly lite: SQLiteTable;
  readonly pg: PgTable;
}

/** Both schemas' tables, parents before children (foreign keys), by name for determinism. */
export function copyOrder(): TablePair[] {
  const pgByName = new Map<string, PgTable>();
  for (const v of Object.values(pgSchema)) if (is(v, PgTable)) pgByName.set(getTableName(v), v);
  const lite = new Map<string, SQLiteTable>();
  for (const v of Object.values(sqliteSchema)) if (is(v, SQLiteTable)) lite.set(getTableName(v), v);
  const deps = new Map<string, Set<string>>();
  for (const [name, t] of lite) {
    deps.set(name, new Set(sqliteTableConfig(t).foreignKeys.map((fk) => getTableName(fk.reference().foreignTable)).filter((d) => d !== name)));
  }
  const ordered: TablePair[] = [];
  const done = new Set<string>();
  while (done.size < lite.size) {
    const ready = [...lite.keys()].filter((n) => !done.has(n) && [...deps.get(n)!].every((d) => done.has(d))).sort();
    if (ready.length === 0) throw new Error(`foreign keys form a cycle among: ${[...lite.keys()].filter((n) => !done.has(n)).join(', ')}`);
    for (const name of ready) {
      const pg = pgByName.get(name);
      if (!pg) throw new Error(`table ${name} has no PostgreSQL definition in server/db/pg/schema.ts`);
      ordered.push({ name, lite: lite.get(name)!, pg });
      done.add(name);
    }
  }
  return ordered;
}

function countSqlite(db: Db, table: string): number {
  return (db.$client.prepare(`SELECT count(*) AS n FROM "${table}"`).get() as { n: number }).n;
}

async function countPg(tx: Tx, table: string): Promise<number> {
  const r = await tx.execute<{ n: string }>(sql`SELECT count(*) AS n FROM ${sql.identifier(table)}`);
  return Number(r.rows[0]!.n);
}

/** Every table of the SQLite file that is neither in the schema nor deliberately skipped: refused, never dropped silently. */
function unknownTables(db: Db, known: ReadonlySet<string>): string[] {
  const rows = db.$client.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[];
  return rows.map((r) => r.name).filter((n) => !known.has(n) && !NOT_COPIED.test(n));
}

export async function migrateToPostgres(opts: MigrateToPostgresOptions): Promise<MigrationReport> {
  const started = performance.now();
  const progress = opts.progress ?? (() => undefined);
  if (!existsSync(opts.sqliteFile)) throw new MigrateToPostgresError('bad_input', `no SQLite database at ${opts.sqliteFile}: set ENCLAVE_DATA_DIR to the install's data dir`);
  const lite = openDatabase(opts.sqliteFile, { readonly: true });
  const target = openPostgres({ ...opts.postgres, poolMax: 2, applicationName: 'enclave db migrate-to-postgres' });
  try {
    try {
      assertSchemaCurrent(lite.$client);
    } catch (e) {
      const why = e instanceof SchemaTooNewError ? e.message : `${(e as Error).message.replace(/run: enclave migrate$/, 'run enclave migrate first (with this version)')}`;
      throw new MigrateToPostgresError('bad_input', `the SQLite database is not at this version's schema: ${why}`);
    }
    const pairs = copyOrder();
    const unknown = unknownTables(lite, new Set(pairs.map((p) => p.name)));
    if (unknown.length > 0) {
      throw new MigrateToPostgresError('bad_input', `the SQLite database has tables this version does not know (${unknown.join(', ')}): nothing copied; use the Enclave version that made them`);
    }

    const { version } = await checkPostgres(target.$client, opts.postgres.url);
    const migrated = await migratePostgres(target.$client, { appVersion: opts.appVersion });
    progress(`PostgreSQL ${version}: schema at ${migrated.status.head}${migrated.applied.length ? ` (applied ${migrated.applied.length} migration(s))` : ''}`);

    // Refused before anything is written: one row anywhere means this is someone's database
    // (the rows the migrations themselves seed do not count; the copy replaces them).
    const nonEmpty = await nonEmptyTables(target, pairs);
    if (nonEmpty.length > 0) {
      throw new MigrateToPostgresError('target_not_empty', `the PostgreSQL database is not empty (rows in ${nonEmpty.slice(0, 5).join(', ')}${nonEmpty.length > 5 ? ', …' : ''}): nothing written; migrate into a new, empty database`);
    }

    const tables: TableReport[] = [];
    let audit: VerifyResult = { ok: true, checked: 0, head: null };
    // One read transaction on SQLite: every SELECT below sees the same snapshot (WAL).
    lite.$client.exec('BEGIN');
    try {
      await target.transaction(async (tx) => {
        // The SQLite install's version of a seeded row wins (an administrator may have edited it).
        for (const [table, where] of Object.entries(SEEDED)) await tx.execute(sql`DELETE FROM ${sql.identifier(table)} WHERE ${where}`);
        await tx.execute(sql`ALTER TABLE usage_records DISABLE TRIGGER usage_records_rollup`);
        await tx.execute(sql`ALTER TABLE usage_records DISABLE TRIGGER usage_records_team_rollup`); // usage_team_rollups is copied too (teams, issue 24)
        for (const p of pairs) {
          const copied = await copyTable(lite, tx, p, opts.batchSize ?? 1000);
          progress(`${p.name}: ${copied} row(s)`);
        }
        await tx.execute(sql`ALTER TABLE usage_records ENABLE TRIGGER usage_records_rollup`);
        await tx.execute(sql`ALTER TABLE usage_records ENABLE TRIGGER usage_records_team_rollup`); // usage_team_rollups is copied too (teams, issue 24)

        for (const p of pairs) {
          const a = countSqlite(lite, p.name);
          const b = await countPg(tx, p.name);
          tables.push({ table: p.name, sqlite: a, postgres: b, ok: a === b });
        }
        audit = await verifyPgChain(tx);
        if (!audit.ok || tables.some((t) => !t.ok)) {
          const report: MigrationReport = { ok: false, tables, audit, postgresVersion: version, migrationsApplied: migrated.applied, ms: Math.round(performance.now() - started) };
          const source = verifyChain(lite);
          const what = !audit.ok
            ? `the audit chain does not verify on the copy at entry ${audit.broken.seq}: ${audit.broken.problem}${source.ok ? '' : ' (it is broken in the SQLite database too: run enclave audit verify there)'}`
            : `row counts differ: ${tables.filter((t) => !t.ok).map((t) => `${t.table} ${t.sqlite} → ${t.postgres}`).join(', ')}`;
          throw new MigrateToPostgresError('verification_failed', `verification failed, nothing written (rolled back): ${what}`, report);
        }
      });
    } finally {
      lite.$client.exec('COMMIT');
    }
    return { ok: true, tables, audit, postgresVersion: version, migrationsApplied: migrated.applied, ms: Math.round(performance.now() - started) };
  } finally {
    lite.$client.close();
    await target.$client.end();
  }
}

export type Tx = Parameters<Parameters<PgDb['transaction']>[0]>[0];

/**
 * Tables with a row that is someone's data: one row anywhere means the database is in use (the
 * rows the migrations themselves seed do not count; a copy or a restore replaces them).
 */
export async function nonEmptyTables(db: PgDb | Tx, pairs: readonly TablePair[]): Promise<string[]> {
  const nonEmpty: string[] = [];
  for (const p of pairs) {
    const seeded = SEEDED[p.name];
    const r = await db.execute<{ any: boolean }>(
      seeded ? sql`SELECT EXISTS (SELECT 1 FROM ${sql.identifier(p.name)} WHERE NOT (${seeded})) AS any` : sql`SELECT EXISTS (SELECT 1 FROM ${sql.identifier(p.name)}) AS any`,
    );
    if (r.rows[0]?.any) nonEmpty.push(p.name);
  }
  return nonEmpty;
}

/** Rows the PostgreSQL migrations seed (migrations-pg 0008: the default plan), by table. */
export const SEEDED: Record<string, SQL> = { plans: sql`name = 'default'` };

/**
 * Keyset pages by SQLite's rowid (every Enclave table has one), so a large table costs one index
 * seek per page instead of an OFFSET scan; rows keep their insertion order.
 */
async function copyTable(lite: Db, tx: Tx, p: TablePair, batchSize: number): Promise<number> {
  const columns = getTableColumns(p.lite);
  const perRow = pgTableConfig(p.pg).columns.length;
  const size = Math.max(1, Math.min(batchSize, Math.floor(60_000 / perRow)));
  let after = Number.MIN_SAFE_INTEGER;
  let copied = 0;
  for (;;) {
    const page = lite
      .select({ ...columns, __rowid: sql<number>`rowid` })
      .from(p.lite)
      .where(gt(sql`rowid`, after))
      .orderBy(asc(sql`rowid`))
      .limit(size)
      .all() as (Record<string, unknown> & { __rowid: number })[];
    if (page.length === 0) return copied;
    after = page.at(-1)!.__rowid;
    const rows = page.map(({ __rowid: _r, ...row }) => row);
    try {
      await tx.insert(p.pg).values(rows as never);
    } catch (e) {
      // PostgreSQL's own message (the cause) names the column or constraint; drizzle's wrapper
      // would print the statement's parameters, i.e. customer data (prompts, chat messages).
      const cause = (e as { cause?: unknown }).cause ?? e;
      throw new Error(`copying ${p.name} (rows ${copied + 1}–${copied + rows.length}) failed: ${(cause as Error).message}`);
    }
    copied += rows.length;
  }
}

/** The audit chain over the PostgreSQL rows, through the audit module's own rules and hash. */
export async function verifyPgChain(tx: Tx): Promise<VerifyResult> {
  const walker = new ChainWalker();
  let after = 0;
  for (;;) {
    const page = await tx.select().from(pgSchema.auditLog).where(gt(pgSchema.auditLog.seq, after)).orderBy(asc(pgSchema.auditLog.seq)).limit(1000);
    for (const row of page) {
      const broken = walker.next(row as AuditRow);
      if (broken) return broken;
    }
    if (page.length < 1000) break;
    after = page.at(-1)!.seq;
  }
  const head = (await tx.select().from(pgSchema.auditHead).where(sql`${pgSchema.auditHead.id} = 1`))[0];
  return walker.finish(head);
}
