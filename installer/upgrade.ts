import { readFileSync } from 'node:fs';
import path from 'node:path';
import { readEnvFile } from './env-file.js';
import { InstallerError, run, runOrThrow } from './exec.js';
import { composeArgs, resolveSettings, writeInstallFiles } from './install.js';
import { GENERATED, RELEASE_VERSION, releasePath } from './layout.js';
import { compareVersions, formatReport, runPreflight } from './preflight.js';

export function requiredStops(file = releasePath('installer', 'required-stops.json')): string[] {
  const data = JSON.parse(readFileSync(file, 'utf8')) as { stops: string[] };
  return [...data.stops].sort(compareVersions);
}

export interface UpgradePath {
  readonly ok: boolean;
  /** The versions to install in order, ending with the target. */
  readonly path: readonly string[];
  readonly message: string;
}

/**
 * Upgrading A → B must pass through every required stop S with A < S < B. Returns the path;
 * `ok` is false when stops are skipped (the caller refuses) or when B is older than A.
 */
export function upgradePath(from: string, to: string, stops: readonly string[]): UpgradePath {
  if (compareVersions(to, from) < 0) {
    return { ok: false, path: [], message: `${to} is older than the installed ${from}: downgrades are not supported; restore a backup made on ${to} instead` };
  }
  if (compareVersions(to, from) === 0) return { ok: true, path: [to], message: `${from} is already installed; re-applying it` };
  const between = stops.filter((s) => compareVersions(s, from) > 0 && compareVersions(s, to) < 0).sort(compareVersions);
  const full = [...between, to];
  if (between.length) {
    return {
      ok: false,
      path: full,
      message: `upgrading ${from} to ${to} would skip required version stop(s) ${between.join(', ')}; upgrade in order: ${[from, ...full].join(' -> ')}`,
    };
  }
  return { ok: true, path: full, message: `upgrade ${from} -> ${to}` };
}

export interface UpgradeOptions {
  readonly dir: string;
  readonly to?: string;
  readonly offlineBundle?: string;
  readonly skipBackup?: boolean;
  readonly skipChecks?: readonly string[];
  readonly stops?: readonly string[];
  readonly out?: (l: string) => void;
}

export interface UpgradeResult {
  readonly from: string;
  readonly to: string;
  readonly backup?: string;
  readonly verify: { doctor: unknown; ready: unknown };
}

/**
 * preflight → backup (old image) → load or pull images → files and .env for the new version →
 * stop worker then server → one-shot migrate → start and wait for health → verify
 * (doctor: migrations + master-key self-test; /readyz: database, redis, licence).
 */
export async function upgrade(opts: UpgradeOptions): Promise<UpgradeResult> {
  const out = opts.out ?? ((l: string) => process.stdout.write(l + '\n'));
  const dir = path.resolve(opts.dir);
  const prev = readEnvFile(path.join(dir, GENERATED.env));
  const from = prev.ENCLAVE_VERSION;
  if (!from) throw new InstallerError(`${dir} has no Enclave installation (.env with ENCLAVE_VERSION); run install.sh first`, 2);
  let to = opts.to ?? RELEASE_VERSION;
  let verifiedBundle: import('./bundle.js').BundleVerification | undefined;
  if (opts.offlineBundle) {
    const { verifyBundle } = await import('./bundle.js');
    verifiedBundle = verifyBundle(opts.offlineBundle);
    to = verifiedBundle.manifest.version;
    out(`bundle ${to} verified`);
  }
  const plan = upgradePath(from, to, opts.stops ?? requiredStops());
  if (!plan.ok) throw new InstallerError(plan.message, 3);
  out(plan.message);

  const pre = await runPreflight({
    dir,
    ports: [Number(prev.ENCLAVE_HTTP_PORT ?? 80), Number(prev.ENCLAVE_HTTPS_PORT ?? 443)],
    ollama: (prev.COMPOSE_PROFILES ?? '').split(',').includes('ollama'),
    skip: opts.skipChecks ?? [],
    portsOwnedByUs: true,
  });
  out(formatReport(pre).trimEnd());
  if (pre.status === 'fail') throw new InstallerError('preflight failed; fix the above, or skip a check with --skip-check <id>', 2);

  const compose = composeArgs(dir);
  let backup: string | undefined;
  if (!opts.skipBackup) {
    const name = `pre-upgrade-${from}-to-${to}-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    out(`backup with ${from} (enclave backup create) → backups/${name}`);
    const r = run('docker', [...compose, 'run', '--rm', '--no-deps', '-T', '-v', `${path.join(dir, GENERATED.backupsDir)}:/backups`, 'migrate', 'node', 'dist/cli/main.js', 'backup', 'create', '--out', `/backups/${name}`], {
      inherit: true,
      timeoutMs: 3_600_000,
    });
    if (r.code !== 0) throw new InstallerError('backup failed, nothing was changed; fix it, or pass --skip-backup if you have a fresh backup', 4);
    backup = path.join(dir, GENERATED.backupsDir, name);
  }

  if (verifiedBundle) {
    const { loadBundleImages } = await import('./bundle.js');
    loadBundleImages(opts.offlineBundle!, verifiedBundle.manifest, out);
  }
  const { env, extra } = resolveSettings({ dir, version: to });
  const { changes } = writeInstallFiles({ dir }, env, extra);
  for (const c of changes) if (c.action !== 'kept') out(`${c.action} ${path.relative(dir, c.path)}`);
  if (!verifiedBundle) {
    out('pulling images…');
    runOrThrow('docker', [...compose, 'pull', '--policy', 'missing'], { inherit: true, timeoutMs: 3_600_000 });
  }

  out('stopping worker (drains its jobs), then server');
  runOrThrow('docker', [...compose, 'stop', '--timeout', '60', 'worker'], { inherit: true });
  runOrThrow('docker', [...compose, 'stop', '--timeout', '30', 'server'], { inherit: true });
  out('migrating (one-shot)…');
  const m = run('docker', [...compose, 'run', '--rm', 'migrate'], { inherit: true, timeoutMs: 3_600_000 });
  if (m.code !== 0) {
    throw new InstallerError(`migration failed (exit ${m.code}); the server stays stopped. Restore ${backup ?? 'your backup'} with ${from}, or fix and re-run the upgrade`, 5);
  }
  out('starting and waiting for health…');
  runOrThrow('docker', [...compose, 'up', '-d', '--wait', '--wait-timeout', '900', '--remove-orphans'], { inherit: true, timeoutMs: 1_200_000 });
  const verify = verifyRunning(dir);
  out(`upgraded ${from} -> ${to}`);
  return { from, to, backup, verify };
}

/** After start: doctor (migrations, master-key self-test) and /readyz, inside the server container. */
export function verifyRunning(dir: string): { doctor: unknown; ready: unknown } {
  const compose = composeArgs(dir);
  const d = run('docker', [...compose, 'exec', '-T', 'server', 'node', 'dist/cli/main.js', 'doctor', '--json']);
  let doctor: { status?: string; checks?: { id: string; status: string; message: string }[] } = {};
  try {
    doctor = JSON.parse(d.stdout) as typeof doctor;
  } catch {
    throw new InstallerError(`verification: enclave doctor gave no report (exit ${d.code}): ${d.stderr.trim().split('\n')[0] ?? ''}`, 6);
  }
  const failed = (doctor.checks ?? []).filter((c) => c.status === 'fail' && c.id !== 'redis');
  if (failed.length) throw new InstallerError(`verification failed: ${failed.map((c) => `${c.id}: ${c.message}`).join('; ')}`, 6);
  const r = run('docker', [
    ...compose,
    'exec',
    '-T',
    'server',
    'node',
    '-e',
    "fetch('http://127.0.0.1:8080/readyz').then(async r=>{process.stdout.write(await r.text());process.exit(r.ok?0:1)},()=>process.exit(2))",
  ]);
  let ready: unknown;
  try {
    ready = JSON.parse(r.stdout);
  } catch {
    ready = r.stdout;
  }
  if (r.code !== 0) throw new InstallerError(`verification failed: /readyz is not ready: ${typeof ready === 'string' ? ready : JSON.stringify(ready)}`, 6);
  return { doctor, ready };
}
