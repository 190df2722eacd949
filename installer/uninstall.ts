import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { InstallerError, run, runOrThrow } from './exec.js';
import { composeArgs } from './install.js';
import { GENERATED, VOLUMES } from './layout.js';

export interface UninstallOptions {
  readonly dir: string;
  /** Also delete the data volumes (database, Keycloak, metrics, models). Irreversible. */
  readonly deleteData?: boolean;
  /** Also delete the install dir (secrets, TLS, .env). Requires deleteData. */
  readonly purge?: boolean;
  readonly yes?: boolean;
  readonly out?: (l: string) => void;
}

/**
 * Stops and removes the containers and networks. Data volumes and the install dir (secrets!)
 * stay unless --delete-data / --purge are given with --yes.
 */
export function uninstall(opts: UninstallOptions): { removedVolumes: string[]; removedDir: boolean } {
  const out = opts.out ?? ((l: string) => process.stdout.write(l + '\n'));
  const dir = path.resolve(opts.dir);
  if (!existsSync(path.join(dir, 'docker-compose.yml'))) throw new InstallerError(`${dir} has no Enclave installation (no docker-compose.yml)`, 2);
  if (opts.purge && !opts.deleteData) throw new InstallerError('--purge deletes the secrets that decrypt the data: it needs --delete-data too', 2);
  if ((opts.deleteData || opts.purge) && !opts.yes) throw new InstallerError('--delete-data is irreversible: add --yes to confirm', 2);
  // No -v: the external volumes would survive anyway; this keeps anonymous volumes' intent clear.
  runOrThrow('docker', [...composeArgs(dir), '--profile', 'ollama', 'down', '--remove-orphans'], { inherit: true });
  out('containers and networks removed');
  const removedVolumes: string[] = [];
  if (opts.deleteData) {
    for (const v of VOLUMES) {
      if (run('docker', ['volume', 'inspect', v]).code !== 0) continue;
      runOrThrow('docker', ['volume', 'rm', v]);
      removedVolumes.push(v);
      out(`deleted volume ${v}`);
    }
  } else {
    out(`data kept in volumes ${VOLUMES.join(', ')}; secrets and config kept in ${dir}`);
    out('re-install later with install.sh --dir ' + dir + ' (it reuses both)');
  }
  let removedDir = false;
  if (opts.purge) {
    rmSync(dir, { recursive: true, force: true });
    removedDir = true;
    out(`deleted ${dir}`);
  } else if (opts.deleteData) {
    out(`kept ${path.join(dir, GENERATED.secretsDir)}: delete it yourself once you no longer need backups made with this master key`);
  }
  return { removedVolumes, removedDir };
}
