import type { Command } from 'commander';
import { verifyBundle } from '../../installer/bundle.js';
import { InstallerError } from '../../installer/exec.js';
import { CliError, printJson } from '../output.js';

/** `enclave bundle verify DIR`: signature and SHA-256 of every file, before `docker load`. */
export function registerBundle(program: Command): void {
  const bundle = program.command('bundle').description('air-gapped install bundles');
  bundle
    .command('verify')
    .description('verify a bundle: manifest signature (licence key chain) and the SHA-256 of every file')
    .argument('<dir>', 'bundle directory')
    .option('--license-mode <mode>', 'production (default) or test (also trusts the committed test root)')
    .option('--json', 'print JSON')
    .action((dir: string, o: { licenseMode?: string; json?: boolean }) => {
      if (o.licenseMode && o.licenseMode !== 'production' && o.licenseMode !== 'test') throw new CliError('--license-mode is production or test', 2);
      let v;
      try {
        v = verifyBundle(dir, { mode: o.licenseMode as 'production' | 'test' | undefined });
      } catch (e) {
        if (e instanceof InstallerError) throw new CliError(e.message, e.exitCode);
        throw e;
      }
      const summary = { ok: true, version: v.manifest.version, files: v.manifest.files.length, images: v.manifest.images.map((i) => i.ref), issuerKid: v.issuerKid, signedAt: v.signedAt };
      if (o.json) printJson(summary);
      else process.stdout.write(`bundle ${summary.version} OK: ${summary.files} files, ${summary.images.length} images, signed by ${summary.issuerKid} at ${summary.signedAt}\n`);
    });
}
