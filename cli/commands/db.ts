import type { Command } from 'commander';
import { ConfigError, loadConfig } from '../../server/config/load.js';
import { databaseFile } from '../../server/db/connection.js';
import { SchemaTooNewError } from '../../server/db/migrator.js';
import { DatabaseConnectionError } from '../../server/db/pg/connection.js';
import { migratePostgresDatabase, postgresStatus } from '../../server/ops/db-migrate/status.js';
import { migrateToPostgres, MigrateToPostgresError, type MigrationReport } from '../../server/ops/db-migrate/to-postgres.js';
import { APP_VERSION } from '../../server/paths.js';
import { CliError, printJson, printTable } from '../output.js';

/** The bootstrap config, read without cliConfig's refusal of ENCLAVE_DATABASE_URL. */
function dbConfig() {
  try {
    return loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(e.message, 2);
    throw e;
  }
}

function targetUrl(given: string | undefined, config: ReturnType<typeof dbConfig>): string {
  const url = given ?? config.databaseUrl;
  if (!url) throw new CliError('name the PostgreSQL database: --url postgres://user@host:5432/db?sslmode=verify-full (or set ENCLAVE_DATABASE_URL)', 2);
  return url;
}

/** Connection failures and a database newer than this code: one line, exit 2. */
async function oneLine<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof DatabaseConnectionError || e instanceof SchemaTooNewError) throw new CliError(e.message, 2);
    throw e;
  }
}

/**
 * `enclave db`: the database dialect (issue 22). Reads the config itself instead of through
 * cliConfig, which refuses ENCLAVE_DATABASE_URL (the other commands speak SQLite only): here the
 * URL is the migration target.
 */
export function registerDb(program: Command): void {
  const db = program.command('db').description('PostgreSQL: copy an SQLite install into it, status, migrations (docs/postgres.md)');
  db.command('migrate-to-postgres')
    .description(
      'copy every table of this SQLite install (ENCLAVE_DATA_DIR) into an empty PostgreSQL database, then verify row counts and the audit chain; exit 0 copied, 2 bad input, 3 target not empty, 4 verification failed (nothing written), 1 other errors',
    )
    .option('--url <url>', 'the PostgreSQL database (default: ENCLAVE_DATABASE_URL)')
    .option('--batch-size <rows>', 'rows per INSERT', (v) => Number(v), 1000)
    .option('--json', 'print the report as JSON')
    .action(async (opts: { url?: string; batchSize: number; json?: boolean }) => {
      const config = dbConfig();
      const url = targetUrl(opts.url, config);
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
        if (e instanceof SchemaTooNewError) throw new CliError(`the PostgreSQL database: ${e.message}`, 2);
        throw e;
      }
      print(report, opts.json);
    });

  db.command('status')
    .description('a PostgreSQL database: server version, TLS, connections, migrations; exit 0 ok, 1 pending migrations, 2 unreachable, newer schema or a read-only standby')
    .option('--url <url>', 'the PostgreSQL database (default: ENCLAVE_DATABASE_URL)')
    .option('--json', 'print JSON')
    .action(async (opts: { url?: string; json?: boolean }) => {
      const config = dbConfig();
      const url = targetUrl(opts.url, config);
      const st = await oneLine(() => postgresStatus({ url, caFile: config.databaseCaFile, statementTimeoutMs: config.databaseStatementTimeoutMs }));
      const m = st.migrations;
      const problem =
        m.unknown.length > 0 || m.changed.length > 0
          ? `the database has migrations this version does not know or that were edited (${[...m.unknown, ...m.changed].join(', ')})`
          : st.inRecovery
            ? 'the server is a read-only standby: point ENCLAVE_DATABASE_URL at the primary'
            : undefined;
      if (opts.json) printJson({ ...st, problem: problem ?? null });
      else {
        process.stdout.write(
          `PostgreSQL ${st.version}${st.tls ? ', TLS' : ', no TLS'}${st.inRecovery ? ', standby' : ''}\n` +
            `connections: ${st.connections.database} to this database, ${st.connections.server} of ${st.connections.max} on the server\n` +
            `migrations: ${m.applied.length} applied, ${m.pending.length} pending${m.pending.length ? ` (${m.pending.join(', ')})` : ''}; head ${m.head}\n`,
        );
      }
      if (problem) throw new CliError(problem, 2);
      if (m.pending.length > 0) {
        if (!opts.json) process.stderr.write('enclave: pending migrations: run enclave db migrate\n');
        process.exitCode = 1;
      }
    });

  db.command('migrate')
    .description('apply pending PostgreSQL migrations (migrations-pg) under an advisory lock: replicas or Jobs running it at once apply each migration once')
    .option('--url <url>', 'the PostgreSQL database (default: ENCLAVE_DATABASE_URL)')
    .option('--dry-run', 'list pending migrations without applying them')
    .option('--json', 'print JSON')
    .action(async (opts: { url?: string; dryRun?: boolean; json?: boolean }) => {
      const config = dbConfig();
      const url = targetUrl(opts.url, config);
      const r = await oneLine(() => migratePostgresDatabase({ url, caFile: config.databaseCaFile }, { dryRun: opts.dryRun ?? false, appVersion: APP_VERSION }));
      const out = { dryRun: opts.dryRun ?? false, applied: r.applied, pending: r.status.pending, head: r.status.head, databaseHead: r.status.databaseHead };
      if (opts.json) printJson(out);
      else if (opts.dryRun) process.stdout.write(out.pending.length ? `would apply: ${out.pending.join(', ')}\n` : `up to date (head ${out.head})\n`);
      else process.stdout.write(out.applied.length ? `applied: ${out.applied.join(', ')}\n` : `up to date (head ${out.head})\n`);
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
