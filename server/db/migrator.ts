import type Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { MIGRATIONS_DIR } from '../paths.js';

/**
 * Applies the SQL migrations drizzle-kit generates into migrations/ (journal + NNNN_tag.sql).
 *
 * Our own runner instead of drizzle's migrate(): it takes the SQLite write lock first
 * (BEGIN IMMEDIATE), so a server and a worker starting together serialise instead of both
 * applying the same migration; it can report what it would do (dry run); and it refuses a
 * database that has migrations this code does not know (a newer release ran on it).
 */
export interface Migration {
  readonly idx: number;
  readonly tag: string;
  readonly hash: string;
  readonly statements: readonly string[];
}

export interface MigrationStatus {
  readonly applied: readonly string[];
  readonly pending: readonly string[];
  /** Tags present in the database that this code does not ship. */
  readonly unknown: readonly string[];
  /** Applied migrations whose file no longer matches what was applied. */
  readonly changed: readonly string[];
  readonly head: string | null;
  readonly databaseHead: string | null;
}

export class SchemaTooNewError extends Error {
  override readonly name = 'SchemaTooNewError';
}

const BOOKKEEPING = `CREATE TABLE IF NOT EXISTS schema_migrations (
  idx INTEGER PRIMARY KEY,
  tag TEXT NOT NULL UNIQUE,
  hash TEXT NOT NULL,
  applied_at INTEGER NOT NULL,
  app_version TEXT NOT NULL
)`;

let cached: Migration[] | undefined;

export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  if (dir === MIGRATIONS_DIR && cached) return cached;
  const journal = JSON.parse(readFileSync(path.join(dir, 'meta', '_journal.json'), 'utf8')) as {
    entries: { idx: number; tag: string }[];
  };
  const list = journal.entries.map((e) => {
    const text = readFileSync(path.join(dir, `${e.tag}.sql`), 'utf8');
    return {
      idx: e.idx,
      tag: e.tag,
      hash: createHash('sha256').update(text).digest('hex'),
      statements: text
        .split('--> statement-breakpoint')
        .map((s) => s.trim())
        .filter(Boolean),
    };
  });
  if (dir === MIGRATIONS_DIR) cached = list;
  return list;
}

function appliedRows(sqlite: Database.Database): { idx: number; tag: string; hash: string }[] {
  const exists = sqlite
    .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
    .get();
  if (!exists) return [];
  return sqlite.prepare('SELECT idx, tag, hash FROM schema_migrations ORDER BY idx').all() as {
    idx: number;
    tag: string;
    hash: string;
  }[];
}

export function migrationStatus(sqlite: Database.Database, migrations = loadMigrations()): MigrationStatus {
  return statusOf(appliedRows(sqlite), migrations);
}

/** The status given the bookkeeping rows (shared with the PostgreSQL migrator, server/db/pg/migrator.ts). */
export function statusOf(rows: readonly { tag: string; hash: string }[], migrations: readonly Migration[]): MigrationStatus {
  const known = new Map(migrations.map((m) => [m.tag, m.hash]));
  const done = new Set(rows.map((r) => r.tag));
  return {
    applied: rows.filter((r) => known.has(r.tag)).map((r) => r.tag),
    pending: migrations.filter((m) => !done.has(m.tag)).map((m) => m.tag),
    unknown: rows.filter((r) => !known.has(r.tag)).map((r) => r.tag),
    changed: rows.filter((r) => known.has(r.tag) && known.get(r.tag) !== r.hash).map((r) => r.tag),
    head: migrations.at(-1)?.tag ?? null,
    databaseHead: rows.at(-1)?.tag ?? null,
  };
}

export function assertNotNewer(status: MigrationStatus): void {
  if (status.changed.length > 0) {
    throw new Error(`migration ${status.changed[0]} was changed after it was applied; released migrations must never be edited`);
  }
  if (status.unknown.length > 0) {
    throw new SchemaTooNewError(
      `database schema is newer than this Enclave: it has migration ${status.unknown.at(-1)} but this version only knows up to ${status.head}; install the Enclave release that created it (or newer), or restore a backup made with this version`,
    );
  }
}

export interface MigrateResult {
  readonly applied: readonly string[];
  readonly status: MigrationStatus;
}

/**
 * Applies pending migrations, each in its own IMMEDIATE transaction, re-reading the
 * bookkeeping table after taking the lock so a concurrent migrator's work is seen.
 */
export function migrate(
  sqlite: Database.Database,
  opts: { dryRun?: boolean; appVersion?: string; migrations?: Migration[]; now?: () => number } = {},
): MigrateResult {
  const migrations = opts.migrations ?? loadMigrations();
  const before = migrationStatus(sqlite, migrations);
  assertNotNewer(before);
  if (opts.dryRun || before.pending.length === 0) return { applied: [], status: before };

  const previousTimeout = sqlite.pragma('busy_timeout', { simple: true }) as number;
  // Another process may hold the lock while it migrates; wait for it rather than failing.
  sqlite.pragma('busy_timeout = 60000');
  const applied: string[] = [];
  try {
    for (const m of migrations) {
      sqlite.exec('BEGIN IMMEDIATE');
      try {
        sqlite.exec(BOOKKEEPING);
        const rows = appliedRows(sqlite);
        assertNotNewer(migrationStatus(sqlite, migrations));
        if (rows.some((r) => r.tag === m.tag)) {
          sqlite.exec('COMMIT');
          continue;
        }
        for (const stmt of m.statements) sqlite.exec(stmt);
        sqlite
          .prepare('INSERT INTO schema_migrations (idx, tag, hash, applied_at, app_version) VALUES (?, ?, ?, ?, ?)')
          .run(m.idx, m.tag, m.hash, (opts.now ?? Date.now)(), opts.appVersion ?? 'unknown');
        sqlite.exec('COMMIT');
        applied.push(m.tag);
      } catch (e) {
        if (sqlite.inTransaction) sqlite.exec('ROLLBACK');
        throw e;
      }
    }
  } finally {
    sqlite.pragma(`busy_timeout = ${previousTimeout}`);
  }
  return { applied, status: migrationStatus(sqlite, migrations) };
}

/** Refuses to run against a database that is behind or ahead of this code. */
export function assertSchemaCurrent(sqlite: Database.Database): MigrationStatus {
  const status = migrationStatus(sqlite);
  assertNotNewer(status);
  if (status.pending.length > 0) {
    throw new Error(`database has ${status.pending.length} pending migration(s) (${status.pending.join(', ')}); run: enclave migrate`);
  }
  return status;
}
