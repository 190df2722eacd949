import type { Command } from 'commander';
import { InstallerError } from '../../installer/exec.js';
import { DEFAULT_INSTALL_DIR } from '../../installer/layout.js';
import { upgrade } from '../../installer/upgrade.js';
import { CliError } from '../output.js';

/** `enclave upgrade`: the same logic as installer/upgrade.sh, on the host that runs compose. */
export function registerUpgrade(program: Command): void {
  program
    .command('upgrade')
    .description('upgrade this installation: preflight, backup, load/pull images, migrate, start, verify (refuses to skip a required version stop)')
    .option('--dir <path>', 'install directory', DEFAULT_INSTALL_DIR)
    .option('--to <version>', 'target version (default: this release)')
    .option('--offline <bundle>', 'air-gapped: upgrade from a verified bundle')
    .option('--skip-backup', 'do not take the pre-upgrade backup')
    .option('--skip-check <id>', 'skip a preflight check (repeatable)', (v: string, p: string[]) => [...p, v], [] as string[])
    .action(async (o: { dir: string; to?: string; offline?: string; skipBackup?: boolean; skipCheck: string[] }) => {
      try {
        await upgrade({ dir: o.dir, to: o.to, offlineBundle: o.offline, skipBackup: o.skipBackup, skipChecks: o.skipCheck });
      } catch (e) {
        if (e instanceof InstallerError) throw new CliError(e.message, e.exitCode);
        throw e;
      }
    });
}
