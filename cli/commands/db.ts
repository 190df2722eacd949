import type { Command } from 'commander';
import { ConfigError, loadConfig } from '../../server/config/load.js';
import { databaseFile } from '../../server/db/connection.js';
import { DatabaseConnectionError } from '../../server/db/pg/connection.js';
import { migrateToPostgres, MigrateToPostgresError, type MigrationReport } from '../../server/ops/db-migrate/to-postgres.js';
import { APP_VERSION } from '../../server/paths.js';
import { CliError, printJson, printTable } from '../output.js';

/**
 * `enclave db`: the database dialect (issue 22). Reads the config itself instead of through
 * cliConfig, which refuses ENCLAVE_DATABASE_URL (the other commands speak SQLite only): here the
 * URL is the migration target.
 */
export function registerDb(program: Command): void {
  const db = program.command('db').description('the database: copy an SQLite install to PostgreSQL (docs/postgres.md)');
  db.command('migrate-to-postgres')
    .description(
      'copy every table of this SQLite install (ENCLAVE_DATA_DIR) into an empty PostgreSQL database, then verify row counts and the audit chain; exit 0 copied, 2 bad input, 3 target not empty, 4 verification failed (nothing written), 1 other errors',
    )
    .option('--url <url>', 'the PostgreSQL database (default: ENCLAVE_DATABASE_URL)')
    .option('--batch-size <rows>', 'rows per INSERT', (v) => Number(v), 1000)
    .option('--json', 'print the report as JSON')
    .action(async (opts: { url?: string; batchSize: number; json?: boolean }) => {
      let config;
      try {
        config = loadConfig();
      } catch (e) {
        if (e instanceof ConfigError) throw new CliError(e.message, 2);
        throw e;
      }
      const url = opts.url ?? config.databaseUrl;
      if (!url) throw new CliError('name the PostgreSQL database: --url postgres://user@host:5432/db?sslmode=verify-full (or set ENCLAVE_DATABASE_URL)', 2);
      if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) throw new CliError('--batch-size must be a positive whole number', 2);
      const progress = opts.json ? undefined : (line: string) => process.stderr.write(`${line}\n`);
      let report: MigrationReport;
      try {
        report = await migrateToPostgres({
          sqliteFile: databaseFile(config.dataDir),
          postgres: { url, poolMax: 2, caFile: config.databaseCaFile, statementTimeoutMs: 0 },
          appVersion: APP_VERSION,
          batchSize: opts.batchSize,
          progress,
        });
      } catch (e) {
        if (e instanceof MigrateToPostgresError) {
          if (e.report) print(e.report, opts.json);
          throw new CliError(e.message, e.exitCode);
        }
        if (e instanceof DatabaseConnectionError) throw new CliError(e.message, 1);
        throw e;
      }
      print(report, opts.json);
    });
}

function print(report: MigrationReport, json: boolean | undefined): void {
  if (json) {
    printJson(report);
    return;
  }
  printTable(
    report.tables.map((t) => ({ table: t.table, sqlite: t.sqlite, postgres: t.postgres, check: t.ok ? 'ok' : 'DIFFERS' })),
    ['table', 'sqlite', 'postgres', 'check'],
  );
  const a = report.audit;
  process.stdout.write(a.ok ? `audit chain verified on PostgreSQL: ${a.checked} entries\n` : `audit chain broken at entry ${a.broken.seq}: ${a.broken.problem}\n`);
  if (report.ok) process.stdout.write(`copied to PostgreSQL ${report.postgresVersion} in ${(report.ms / 1000).toFixed(1)} s\n`);
}
