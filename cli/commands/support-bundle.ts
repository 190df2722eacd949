import type { Command } from 'commander';
import { supportBundle } from '../../server/ops/support-bundle/bundle.js';
import { cliConfig } from '../config.js';
import { CliError, printJson, printTable } from '../output.js';

export function registerSupportBundle(program: Command): void {
  program
    .command('support-bundle')
    .description('diagnostics for support: versions, doctor, redacted config, logs, metrics, database statistics, licence claims; never the database, prompts or secrets')
    .option('--out <path>', 'file to write, or a directory (default: ./enclave-support-<time>.tar.gz)')
    .option('--dry-run', 'list what would be included, write nothing')
    .option('--log-dir <dir>', 'include the newest part of the *.log / *.jsonl files in this directory (redacted)')
    .option('--metrics-url <url>', 'where to take the metrics snapshot (default http://127.0.0.1:$PORT/metrics)')
    .option('--providers', 'let the doctor part contact provider deployments (outbound calls)')
    .option('--json', 'print JSON')
    .action(async (o: { out?: string; dryRun?: boolean; logDir?: string; metricsUrl?: string; providers?: boolean; json?: boolean }) => {
      const config = cliConfig();
      let r;
      try {
        r = await supportBundle(config, {
          dryRun: !!o.dryRun,
          ...(o.out ? { out: o.out } : {}),
          ...(o.logDir ? { logDir: o.logDir } : {}),
          ...(o.metricsUrl ? { metricsUrl: o.metricsUrl } : {}),
          doctor: { providers: !!o.providers },
        });
      } catch (e) {
        throw new CliError((e as Error).message);
      }
      if (o.json) {
        printJson(r);
        return;
      }
      if (o.dryRun) process.stdout.write('would include:\n');
      printTable(r.files as unknown as Record<string, unknown>[], ['name', 'description']);
      for (const n of r.notes) process.stdout.write(`note: ${n}\n`);
      if (r.file) {
        const total = r.redactions.reduce((n, x) => n + x.count, 0);
        process.stdout.write(`\nsupport bundle written: ${r.file} (${total} value(s) redacted; see redactions.json, SUMMARY.md). Review it before sharing.\n`);
      }
    });
}
