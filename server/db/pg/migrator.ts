import path from 'node:path';
import type pg from 'pg';
import { PACKAGE_ROOT } from '../../paths.js';
import { assertNotNewer, loadMigrations, statusOf, type MigrateResult, type Migration, type MigrationStatus } from '../migrator.js';

/**
 * Applies migrations-pg/ (drizzle-kit's PostgreSQL output, same journal format as migrations/)
 * with the same rules as the SQLite migrator (server/db/migrator.ts): bookkeeping in
 * schema_migrations, each migration in its own transaction (DDL is transactional in
 * PostgreSQL), a database with migrations this code does not know (or an applied one that was
 * edited) is refused.
 *
 * Replicas starting together must not race: the whole run holds a session advisory lock
 * (pg_advisory_lock) on one connection, and the bookkeeping is re-read after the lock is taken,
 * so the second migrator waits for the first and then finds nothing to do.
 */
export const PG_MIGRATIONS_DIR = path.join(PACKAGE_ROOT, 'migrations-pg');

/** The advisory lock key of Enclave's migrator: "enclmigr" as a 64-bit number (any fixed value; named so it is recognisable in pg_locks). */
export const MIGRATION_LOCK_KEY = BigInt('0x656e636c6d696772').toString();

const BOOKKEEPING = `CREATE TABLE IF NOT EXISTS schema_migrations (
  idx integer PRIMARY KEY,
  tag text NOT NULL UNIQUE,
  hash text NOT NULL,
  applied_at timestamp (3) with time zone NOT NULL,
  app_version text NOT NULL
)`;

let cached: Migration[] | undefined;

export function loadPgMigrations(dir = PG_MIGRATIONS_DIR): Migration[] {
  if (dir !== PG_MIGRATIONS_DIR) return loadMigrations(dir);
  cached ??= loadMigrations(dir);
  return cached;
}

async function appliedRows(client: pg.ClientBase): Promise<{ idx: number; tag: string; hash: string }[]> {
  const exists = await client.query("SELECT to_regclass('schema_migrations') IS NOT NULL AS present");
  if (!exists.rows[0]?.present) return [];
  return (await client.query<{ idx: number; tag: string; hash: string }>('SELECT idx, tag, hash FROM schema_migrations ORDER BY idx')).rows;
}

export async function pgMigrationStatus(pool: pg.Pool, migrations = loadPgMigrations()): Promise<MigrationStatus> {
  const client = await pool.connect();
  try {
    return statusOf(await appliedRows(client), migrations);
  } finally {
    client.release();
  }
}

/**
 * Applies pending migrations under the advisory lock. Migrations run without the pool's
 * statement_timeout (a large table's ALTER may take long); waiting for the lock does too.
 */
export async function migratePostgres(
  pool: pg.Pool,
  opts: { dryRun?: boolean; appVersion?: string; migrations?: Migration[]; now?: () => number } = {},
): Promise<MigrateResult> {
  const migrations = opts.migrations ?? loadPgMigrations();
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('SET statement_timeout = 0');
    if (opts.dryRun) {
      const status = statusOf(await appliedRows(client), migrations);
      assertNotNewer(status);
      return { applied: [], status };
    }
    await client.query('SELECT pg_advisory_lock($1::bigint)', [MIGRATION_LOCK_KEY]);
    try {
      await client.query(BOOKKEEPING);
      const before = statusOf(await appliedRows(client), migrations);
      assertNotNewer(before);
      const applied: string[] = [];
      for (const m of migrations) {
        if (!before.pending.includes(m.tag)) continue;
        await client.query('BEGIN');
        try {
          for (const stmt of m.statements) await client.query(stmt);
          await client.query('INSERT INTO schema_migrations (idx, tag, hash, applied_at, app_version) VALUES ($1, $2, $3, $4, $5)', [
            m.idx,
            m.tag,
            m.hash,
            new Date((opts.now ?? Date.now)()).toISOString(),
            opts.appVersion ?? 'unknown',
          ]);
          await client.query('COMMIT');
        } catch (e) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw new Error(`PostgreSQL migration ${m.tag} failed: ${(e as Error).message}`);
        }
        applied.push(m.tag);
      }
      return { applied, status: statusOf(await appliedRows(client), migrations) };
    } finally {
      await client.query('SELECT pg_advisory_unlock($1::bigint)', [MIGRATION_LOCK_KEY]).catch(() => {
        broken = true; // a connection that may still hold the lock must not go back to the pool
      });
    }
  } finally {
    await client.query('RESET statement_timeout').catch(() => {
      broken = true;
    });
    client.release(broken);
  }
}

/** Refuses a database that is behind or ahead of this code (for processes that do not migrate). */
export async function assertPgSchemaCurrent(pool: pg.Pool): Promise<MigrationStatus> {
  const status = await pgMigrationStatus(pool);
  assertNotNewer(status);
  if (status.pending.length > 0) {
    throw new Error(`PostgreSQL database has ${status.pending.length} pending migration(s) (${status.pending.join(', ')}); run the migrations first`);
  }
  return status;
}
