import { getTableName, is } from 'drizzle-orm';
import { getTableConfig as pgConfig, PgTable } from 'drizzle-orm/pg-core';
import { getTableConfig as sqliteConfig, SQLiteTable } from 'drizzle-orm/sqlite-core';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as pgSchema from '../../server/db/pg/schema.js';
import * as sqliteSchema from '../../server/db/schema.js';

/**
 * The two dialects' schemas (server/db/schema.ts, server/db/pg/schema.ts) describe the same
 * database: every table and column in both, with the same nullability, defaults, primary keys,
 * uniques, indexes and foreign keys, and a PostgreSQL type that fits the SQLite one (times as
 * timestamptz, flags as boolean, counters as bigint, JSON as jsonb/json). A table or column
 * added to one only fails here. The newest migrations-pg snapshot must also contain the pg
 * schema (a change without `npm run db:generate` fails).
 */

type Shape = Record<string, unknown>;

interface ColumnLike {
  name: string;
  notNull: boolean;
  primary: boolean;
  isUnique: boolean;
  hasDefault: boolean;
  default: unknown;
  enumValues?: readonly string[] | undefined;
  columnType: string;
  getSQLType(): string;
}

interface TableShape {
  columns: Map<string, Shape>;
  sqlTypes: Map<string, string>;
  booleans: Set<string>;
  primaryKeys: string[][];
  uniques: Shape[];
  indexes: Shape[];
  foreignKeys: Shape[];
}

function column(c: ColumnLike): Shape {
  // Defaults compared by value, except where the types differ on purpose: a boolean default is
  // true/false in both; everything else (numbers, strings) is the same literal.
  return {
    notNull: c.notNull,
    primary: c.primary,
    unique: c.isUnique,
    hasDefault: c.hasDefault,
    default: c.default,
    enumValues: c.enumValues ?? null,
  };
}

function shape(config: ReturnType<typeof sqliteConfig> | ReturnType<typeof pgConfig>): TableShape {
  const columns = new Map<string, Shape>();
  const sqlTypes = new Map<string, string>();
  const booleans = new Set<string>();
  for (const c of config.columns as unknown as ColumnLike[]) {
    columns.set(c.name, column(c));
    sqlTypes.set(c.name, c.getSQLType());
    if (c.columnType === 'SQLiteBoolean' || c.columnType === 'PgBoolean') booleans.add(c.name);
  }
  return {
    columns,
    sqlTypes,
    booleans,
    primaryKeys: config.primaryKeys.map((pk) => pk.columns.map((c) => c.name)),
    uniques: config.uniqueConstraints.map((u) => ({ name: u.name ?? null, columns: u.columns.map((c) => c.name) })),
    indexes: config.indexes
      .map((i) => ({ name: i.config.name, unique: i.config.unique, columns: i.config.columns.map((c) => (c as { name?: string }).name ?? String(c)) }))
      .sort((a, b) => String(a.name).localeCompare(String(b.name))),
    foreignKeys: config.foreignKeys
      .map((fk) => {
        const ref = fk.reference();
        return {
          columns: ref.columns.map((c) => c.name),
          table: getTableName(ref.foreignTable),
          foreignColumns: ref.foreignColumns.map((c) => c.name),
          onDelete: fk.onDelete ?? 'no action',
          onUpdate: fk.onUpdate ?? 'no action',
        };
      })
      .sort((a, b) => a.columns.join().localeCompare(b.columns.join())),
  };
}

function sqliteTables(): Map<string, TableShape> {
  const out = new Map<string, TableShape>();
  for (const v of Object.values(sqliteSchema)) if (is(v, SQLiteTable)) out.set(getTableName(v), shape(sqliteConfig(v)));
  return out;
}

function pgTables(): Map<string, TableShape> {
  const out = new Map<string, TableShape>();
  for (const v of Object.values(pgSchema)) if (is(v, PgTable)) out.set(getTableName(v), shape(pgConfig(v)));
  return out;
}

const TIMESTAMPTZ = 'timestamp (3) with time zone';
/** Column names whose values can pass 2^31 (tokens, money in micro-units, bytes): bigint in PostgreSQL. */
const COUNTER = /(^|_)(tokens|micros|bytes|requests|errors|used|limit_value|seq)$|_micros_per_mtok$/;

describe('schema parity: SQLite and PostgreSQL', () => {
  const lite = sqliteTables();
  const pg = pgTables();

  it('has the same tables in both dialects', () => {
    expect([...pg.keys()].sort()).toEqual([...lite.keys()].sort());
    expect(lite.size).toBeGreaterThan(30);
  });

  it('has the same tenant-owned tables', () => {
    const names = (o: Record<string, unknown>) => Object.values(o).map((t) => getTableName(t as never)).sort();
    expect(names(pgSchema.TENANT_OWNED)).toEqual(names(sqliteSchema.TENANT_OWNED));
  });

  for (const [name, s] of sqliteTables()) {
    it(`${name}: same columns, keys, indexes and foreign keys; fitting types`, () => {
      const p = pg.get(name);
      expect(p, `table ${name} is missing from server/db/pg/schema.ts`).toBeDefined();
      if (!p) return;
      expect([...p.columns.keys()].sort(), `${name} columns`).toEqual([...s.columns.keys()].sort());
      for (const [col, shapeLite] of s.columns) {
        const pgCol = p.columns.get(col);
        // SQLite's INTEGER PRIMARY KEY assigns itself (rowid): drizzle counts that as a default. The
        // code always gives these values (audit seq, price version, audit_head id 1); PostgreSQL
        // has no default for them, so a row without one fails there instead of getting a number.
        const rowid = s.sqlTypes.get(col) === 'integer' && shapeLite.primary === true;
        expect(pgCol, `${name}.${col}`).toEqual(rowid ? { ...shapeLite, hasDefault: false } : shapeLite);
        const liteType = s.sqlTypes.get(col);
        const pgType = p.sqlTypes.get(col);
        const where = `${name}.${col}: SQLite ${s.booleans.has(col) ? 'boolean' : liteType}, PostgreSQL ${pgType}`;
        if (s.booleans.has(col)) expect(pgType, where).toBe('boolean');
        else if (liteType === 'integer') {
          expect(['integer', 'bigint', TIMESTAMPTZ], where).toContain(pgType);
          if (/(^|_)at$/.test(col)) expect(pgType, `${where}: a time is timestamptz`).toBe(TIMESTAMPTZ);
          if (COUNTER.test(col)) expect(pgType, `${where}: a counter is bigint`).toBe('bigint');
        } else if (liteType === 'blob') expect(pgType, where).toBe('bytea');
        else expect(['text', 'jsonb', 'json'], where).toContain(pgType);
      }
      expect(p.primaryKeys, `${name} composite primary key`).toEqual(s.primaryKeys);
      expect(p.uniques, `${name} unique constraints`).toEqual(s.uniques);
      expect(p.indexes, `${name} indexes`).toEqual(s.indexes);
      expect(p.foreignKeys, `${name} foreign keys`).toEqual(s.foreignKeys);
    });
  }

  it('the newest migrations-pg snapshot matches the PostgreSQL schema (run npm run db:generate after a schema change)', () => {
    const dir = path.resolve(import.meta.dirname, '../../migrations-pg/meta');
    const journal = JSON.parse(readFileSync(path.join(dir, '_journal.json'), 'utf8')) as { entries: { idx: number }[] };
    const last = journal.entries.at(-1)!.idx;
    const snapshot = JSON.parse(readFileSync(path.join(dir, `${String(last).padStart(4, '0')}_snapshot.json`), 'utf8')) as {
      tables: Record<string, { name: string; columns: Record<string, { name: string; type: string; notNull: boolean }> }>;
    };
    const fromSnapshot = Object.fromEntries(
      Object.values(snapshot.tables).map((t) => [t.name, Object.fromEntries(Object.values(t.columns).map((c) => [c.name, `${c.type}${c.notNull ? ' not null' : ''}`]))]),
    );
    const fromSchema = Object.fromEntries(
      [...pg].map(([t, s]) => [t, Object.fromEntries([...s.sqlTypes].map(([c, type]) => [c, `${type}${(s.columns.get(c) as { notNull: boolean }).notNull ? ' not null' : ''}`]))]),
    );
    expect(fromSnapshot).toEqual(fromSchema);
  });
});
