#!/usr/bin/env node
/**
 * The installer's command line, called by installer/*.sh (thin bash wrappers):
 *   install | preflight | upgrade | uninstall | bundle create | bundle verify
 */
import { Command, CommanderError, Option } from 'commander';
import { createBundle, verifyBundle } from './bundle.js';
import { InstallerError } from './exec.js';
import { install } from './install.js';
import { DEFAULT_INSTALL_DIR } from './layout.js';
import { CHECK_IDS, formatReport, runPreflight } from './preflight.js';
import { uninstall } from './uninstall.js';
import { upgrade } from './upgrade.js';
import { exitCodeFor } from '../server/doctor/checks.js';

const collect = (v: string, prev: string[]): string[] => [...prev, ...v.split(',').map((s) => s.trim()).filter(Boolean)];
const port = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InstallerError(`not a port: ${v}`, 2);
  return n;
};
const skipEnv = (): string[] => (process.env.ENCLAVE_SKIP_CHECKS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
const skipHelp = `skip a preflight check (repeatable, comma-separated; also ENCLAVE_SKIP_CHECKS): ${CHECK_IDS.join(', ')}`;

export function buildInstaller(): Command {
  const program = new Command('enclave-installer').description('Enclave appliance installer').exitOverride().showHelpAfterError(false);

  program
    .command('install')
    .description('preflight, generate .env, secrets, TLS and the Keycloak realm, create volumes, start the stack')
    .option('--dir <path>', 'install directory', DEFAULT_INSTALL_DIR)
    .option('--hostname <name>', 'public DNS name (or IP) users open; required on the first run')
    .option('--http-port <port>', 'published HTTP port (redirects to HTTPS)', port)
    .option('--https-port <port>', 'published HTTPS port', port)
    .option('--san <name>', 'extra name or IP for the generated certificate (repeatable)', collect, [])
    .option('--tls-cert <file>', 'your certificate chain (PEM) instead of the generated CA')
    .option('--tls-key <file>', 'its private key (PEM, unencrypted)')
    .option('--tls-ca <file>', 'CA bundle that issued --tls-cert (so the server trusts its own URL)')
    .option('--admin-email <email>', 'first admin (a Keycloak user in the enclave realm)')
    .option('--ollama', 'enable the ollama profile (local models on an NVIDIA GPU)')
    .option('--no-ollama', 'disable the ollama profile')
    .option('--image <name>', 'Enclave image repository')
    .option('--offline <bundle>', 'air-gapped: verify the bundle and docker load its images; no network access')
    .option('--no-pull', 'do not pull images (they are already present)')
    .option('--no-start', 'write the configuration only; do not start the stack')
    .option('--skip-check <id>', skipHelp, collect, [])
    .option('--yes', 'non-interactive (the installer never prompts; accepted for scripts)')
    .action(async (o) => {
      await install({
        dir: o.dir,
        hostname: o.hostname,
        httpPort: o.httpPort,
        httpsPort: o.httpsPort,
        sans: o.san,
        tlsCert: o.tlsCert,
        tlsKey: o.tlsKey,
        tlsCa: o.tlsCa,
        adminEmail: o.adminEmail,
        ollama: o.ollama,
        image: o.image,
        offlineBundle: o.offline,
        pull: o.pull,
        start: o.start,
        skipChecks: [...o.skipCheck, ...skipEnv()],
      });
    });

  program
    .command('preflight')
    .description('run the preflight checks only (exit 0 ok, 1 warnings, 2 failures)')
    .option('--dir <path>', 'install directory', DEFAULT_INSTALL_DIR)
    .option('--http-port <port>', 'HTTP port to check', port, 80)
    .option('--https-port <port>', 'HTTPS port to check', port, 443)
    .option('--ollama', 'include the GPU check and the larger resource thresholds')
    .option('--skip-check <id>', skipHelp, collect, [])
    .option('--json', 'print JSON')
    .action(async (o) => {
      const r = await runPreflight({ dir: o.dir, ports: [o.httpPort, o.httpsPort], ollama: !!o.ollama, skip: [...o.skipCheck, ...skipEnv()] });
      process.stdout.write(o.json ? JSON.stringify(r, null, 2) + '\n' : formatReport(r) + `overall: ${r.status}\n`);
      process.exitCode = exitCodeFor(r.status);
    });

  program
    .command('upgrade')
    .description('preflight, backup, load/pull images, migrate, start, verify; refuses to skip a required version stop')
    .option('--dir <path>', 'install directory', DEFAULT_INSTALL_DIR)
    .option('--to <version>', 'target version (default: this release)')
    .option('--offline <bundle>', 'air-gapped: upgrade from a verified bundle')
    .option('--skip-backup', 'do not take the pre-upgrade backup (only with a fresh backup at hand)')
    .option('--skip-check <id>', skipHelp, collect, [])
    .action(async (o) => {
      await upgrade({ dir: o.dir, to: o.to, offlineBundle: o.offline, skipBackup: o.skipBackup, skipChecks: [...o.skipCheck, ...skipEnv()] });
    });

  program
    .command('uninstall')
    .description('remove containers and networks; data volumes and secrets are kept unless told otherwise')
    .option('--dir <path>', 'install directory', DEFAULT_INSTALL_DIR)
    .option('--delete-data', 'also delete the data volumes (irreversible)')
    .option('--purge', 'also delete the install directory with secrets and TLS (needs --delete-data)')
    .option('--yes', 'confirm --delete-data / --purge')
    .action((o) => {
      uninstall({ dir: o.dir, deleteData: o.deleteData, purge: o.purge, yes: o.yes });
    });

  const bundle = program.command('bundle').description('air-gapped bundles');
  bundle
    .command('create')
    .description('vendor side: save every image, copy the release, write and sign manifest.json')
    .requiredOption('--out <dir>', 'new, empty output directory')
    .requiredOption('--signing-key <file>', 'licence issuer key file (enclave license keygen / certify)')
    .option('--no-pull', 'use the local images as they are')
    .action((o) => {
      createBundle({ out: o.out, signingKey: o.signingKey, pull: o.pull });
    });
  bundle
    .command('verify')
    .description('check the manifest signature and the SHA-256 of every file (before docker load)')
    .argument('<dir>', 'bundle directory')
    .addOption(new Option('--license-mode <mode>', 'trust roots: production, or test (also trusts the committed test root)').choices(['production', 'test']))
    .option('--json', 'print JSON')
    .action((dir: string, o) => {
      const v = verifyBundle(dir, { mode: o.licenseMode });
      if (o.json) process.stdout.write(JSON.stringify({ ok: true, version: v.manifest.version, files: v.manifest.files.length, images: v.manifest.images.map((i) => i.ref), issuerKid: v.issuerKid, signedAt: v.signedAt }, null, 2) + '\n');
      else process.stdout.write(`bundle ${v.manifest.version} OK: ${v.manifest.files.length} files, ${v.manifest.images.length} images, signed by ${v.issuerKid} at ${v.signedAt}\n`);
    });
  return program;
}

export async function runInstaller(argv: string[]): Promise<void> {
  try {
    await buildInstaller().parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode;
      return;
    }
    const code = e instanceof InstallerError ? e.exitCode : 1;
    process.stderr.write(`enclave-installer: ${e instanceof InstallerError ? e.message : `failed: ${(e as Error).stack ?? e}`}\n`);
    process.exitCode = code;
  }
}

await runInstaller(process.argv);
