import type { Command } from 'commander';
import { DOCTOR_CHECK_IDS, exitCodeFor, runDoctor } from '../../server/doctor/checks.js';
import { CliError, printJson, printTable } from '../output.js';
import { cliConfig } from '../config.js';

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description(
      'check this installation: node, data dir, disk, clock, database, migrations, Redis, queues, master key, backup age; TLS and providers on request (exit 0 ok, 1 warnings, 2 failures)',
    )
    .option('--json', 'print JSON')
    .option('--skip <ids>', `comma-separated check ids to skip (${DOCTOR_CHECK_IDS.join(', ')})`)
    .option('--providers', 'also contact every enabled provider deployment (outbound calls)')
    .option('--tls-cert <file>', 'also check this TLS certificate (PEM): expiry and ENCLAVE_PUBLIC_URL host')
    .option('--backup-max-age <hours>', 'warn when the last backup is older (default 26)', (v) => Number(v))
    .action(async (opts: { json?: boolean; skip?: string; providers?: boolean; tlsCert?: string; backupMaxAge?: number }) => {
      const skip = (opts.skip ?? '').split(',').map((s) => s.trim()).filter(Boolean);
      const unknown = skip.filter((s) => !(DOCTOR_CHECK_IDS as readonly string[]).includes(s));
      if (unknown.length) throw new CliError(`unknown check id(s) for --skip: ${unknown.join(', ')}; known: ${DOCTOR_CHECK_IDS.join(', ')}`, 2);
      if (opts.backupMaxAge !== undefined && !(opts.backupMaxAge > 0)) throw new CliError('--backup-max-age must be a positive number of hours', 2);
      const report = await runDoctor(cliConfig(), {
        skip,
        providers: !!opts.providers,
        ...(opts.tlsCert ? { tlsCert: opts.tlsCert } : {}),
        ...(opts.backupMaxAge ? { backupMaxAgeHours: opts.backupMaxAge } : {}),
      });
      if (opts.json) printJson(report);
      else {
        printTable(report.checks as unknown as Record<string, unknown>[], ['id', 'status', 'message']);
        process.stdout.write(`\noverall: ${report.status}\n`);
      }
      process.exitCode = exitCodeFor(report.status);
    });
}
