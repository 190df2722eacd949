import { checkPostgres, openPostgres, type PgSettings } from '../../db/pg/connection.js';
import { migratePostgres, pgMigrationStatus } from '../../db/pg/migrator.js';
import type { MigrationStatus } from '../../db/migrator.js';

/**
 * `enclave db status` and `enclave db migrate` for a PostgreSQL database (issue 22): what the
 * doctor's PostgreSQL checks will build on (docs/postgres.md, plan item 7) and what a
 * Kubernetes migration Job runs before the replicas start.
 */
export interface PgStatus {
  readonly version: string;
  /** This session's connection is encrypted (pg_stat_ssl). */
  readonly tls: boolean;
  /** A hot standby (read-only): Enclave needs the primary. */
  readonly inRecovery: boolean;
  readonly connections: { readonly database: number; readonly server: number; readonly max: number };
  readonly migrations: MigrationStatus;
}

export async function postgresStatus(s: PgSettings): Promise<PgStatus> {
  const db = openPostgres({ ...s, poolMax: 1, applicationName: 'enclave db status' });
  try {
    const { version } = await checkPostgres(db.$client, s.url);
    const r = await db.$client.query<{ tls: boolean | null; recovery: boolean; here: string; total: string; max: string }>(
      `SELECT (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS tls,
              pg_is_in_recovery() AS recovery,
              (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()) AS here,
              (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS total,
              current_setting('max_connections') AS max`,
    );
    const row = r.rows[0]!;
    return {
      version,
      tls: row.tls === true,
      inRecovery: row.recovery,
      connections: { database: Number(row.here), server: Number(row.total), max: Number(row.max) },
      migrations: await pgMigrationStatus(db.$client),
    };
  } finally {
    await db.$client.end();
  }
}

export async function migratePostgresDatabase(s: PgSettings, opts: { dryRun?: boolean; appVersion?: string }) {
  const db = openPostgres({ ...s, poolMax: 1, applicationName: 'enclave db migrate' });
  try {
    await checkPostgres(db.$client, s.url);
    return await migratePostgres(db.$client, opts);
  } finally {
    await db.$client.end();
  }
}
