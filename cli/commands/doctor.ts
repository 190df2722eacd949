import type { Command } from 'commander';
import { exitCodeFor, runDoctor } from '../../server/doctor/checks.js';
import { printJson, printTable } from '../output.js';
import { cliConfig } from '../config.js';

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('check this installation: node, data dir, disk, database, migrations, Redis, master key (exit 0 ok, 1 warnings, 2 failures)')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const report = await runDoctor(cliConfig());
      if (opts.json) printJson(report);
      else {
        printTable(report.checks as unknown as Record<string, unknown>[], ['id', 'status', 'message']);
        process.stdout.write(`\noverall: ${report.status}\n`);
      }
      process.exitCode = exitCodeFor(report.status);
    });
}
