import type { Command } from 'commander';
import { mkdirSync } from 'node:fs';
import { databaseFile, openDatabase } from '../../server/db/connection.js';
import { migrate, SchemaTooNewError } from '../../server/db/migrator.js';
import { APP_VERSION } from '../../server/paths.js';
import { sqliteOnlyConfig } from '../config.js';
import { CliError, printJson } from '../output.js';

export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description('apply pending database migrations (the server also does this at start)')
    .option('--dry-run', 'list pending migrations without applying them')
    .option('--json', 'print JSON')
    .action((opts: { dryRun?: boolean; json?: boolean }) => {
      const config = sqliteOnlyConfig('enclave migrate', 'run enclave db migrate (the PostgreSQL migrations, under an advisory lock)');
      mkdirSync(config.dataDir, { recursive: true });
      const db = openDatabase(databaseFile(config.dataDir));
      try {
        const result = migrate(db.$client, { dryRun: opts.dryRun ?? false, appVersion: APP_VERSION });
        const out = {
          dryRun: opts.dryRun ?? false,
          applied: result.applied,
          pending: result.status.pending,
          head: result.status.head,
          databaseHead: result.status.databaseHead,
        };
        if (opts.json) printJson(out);
        else if (opts.dryRun) {
          process.stdout.write(
            out.pending.length ? `would apply: ${out.pending.join(', ')}\n` : `up to date (head ${out.head})\n`,
          );
        } else {
          process.stdout.write(
            out.applied.length ? `applied: ${out.applied.join(', ')}\n` : `up to date (head ${out.head})\n`,
          );
        }
      } catch (e) {
        if (e instanceof SchemaTooNewError) throw new CliError(e.message, 2);
        throw e;
      } finally {
        db.$client.close();
      }
    });
}
