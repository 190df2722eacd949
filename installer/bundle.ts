import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, openSync, readSync, closeSync } from 'node:fs';
import path from 'node:path';
import { signDetached, verifyDetached, type IssuerKeyMaterial, type LicenseMode } from '../license/signing.js';
import { composeImages, loadCompose } from './compose-model.js';
import { InstallerError, run, runOrThrow } from './exec.js';
import { RELEASE_ROOT, RELEASE_VERSION } from './layout.js';
import { MIN } from './preflight.js';
import { requiredStops } from './upgrade.js';

/**
 * Air-gapped bundle (vendor side `installer/bundle.sh`, customer side `enclave bundle verify`
 * and `install.sh --offline BUNDLE`):
 *   manifest.json   version, images (+ ids/digests), sha256 + size of every other file
 *   manifest.sig    detached signature over manifest.json (licence issuer key, purpose bundle-manifest)
 *   images/enclave-images.tar   `docker save` of every image, all profiles
 *   release/…       compose file, installer, built CLI, docs
 */
export const MANIFEST = 'manifest.json';
export const SIGNATURE = 'manifest.sig';
export const IMAGE_ARCHIVE = 'images/enclave-images.tar';
export const SIGNATURE_PURPOSE = 'bundle-manifest';

/** What goes into release/ by default (paths relative to the release root; missing ones skipped). */
export const RELEASE_INCLUDE = [
  'package.json',
  'package-lock.json',
  'bin',
  'dist',
  'migrations',
  'migrations-pg',
  'compose',
  'grafana',
  'installer/install.sh',
  'installer/upgrade.sh',
  'installer/uninstall.sh',
  'installer/bundle.sh',
  'installer/lib.sh',
  'installer/required-stops.json',
  'docs/install.md',
  'node_modules',
];

export interface BundleManifest {
  readonly format: 'enclave-bundle';
  readonly v: 1;
  readonly version: string;
  readonly createdAt: string;
  readonly minCompose: string;
  readonly requiredStops: readonly string[];
  readonly images: readonly { ref: string; id: string; repoDigests: readonly string[] }[];
  readonly files: readonly { path: string; sha256: string; size: number }[];
}

export function sha256File(file: string): string {
  const h = createHash('sha256');
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** Every regular file under `dir`, relative, sorted, with forward slashes. */
export function listFiles(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(path.join(dir, rel)).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    const st = statSync(path.join(dir, r));
    if (st.isDirectory()) out.push(...listFiles(dir, r));
    else if (st.isFile()) out.push(r);
  }
  return out;
}

export interface CreateBundleOptions {
  readonly out: string;
  readonly signingKey: IssuerKeyMaterial;
  readonly version?: string;
  readonly pull?: boolean;
  readonly include?: readonly string[];
  readonly releaseRoot?: string;
  readonly now?: Date;
  readonly log?: (l: string) => void;
}

export function createBundle(opts: CreateBundleOptions): BundleManifest {
  const log = opts.log ?? ((l: string) => process.stdout.write(l + '\n'));
  const version = opts.version ?? RELEASE_VERSION;
  const root = opts.releaseRoot ?? RELEASE_ROOT;
  if (existsSync(opts.out) && readdirSync(opts.out).length) throw new InstallerError(`${opts.out} is not empty; choose a new directory`);
  mkdirSync(path.join(opts.out, 'images'), { recursive: true });

  const images = composeImages(loadCompose({ ENCLAVE_VERSION: version, ENCLAVE_PUBLIC_URL: 'https://bundle.invalid', ENCLAVE_HOSTNAME: 'bundle.invalid' }, path.join(root, 'compose', 'docker-compose.yml')));
  const imageInfo: { ref: string; id: string; repoDigests: string[] }[] = [];
  for (const ref of images) {
    if (opts.pull !== false && !ref.startsWith('enclave/')) {
      log(`pulling ${ref}`);
      runOrThrow('docker', ['pull', ref], { timeoutMs: 3_600_000 });
    }
    const r = runOrThrow('docker', ['image', 'inspect', '--format', '{{json .}}', ref]);
    const info = JSON.parse(r.stdout) as { Id: string; RepoDigests?: string[] };
    imageInfo.push({ ref, id: info.Id, repoDigests: info.RepoDigests ?? [] });
  }
  log(`saving ${images.length} images`);
  runOrThrow('docker', ['save', '-o', path.join(opts.out, IMAGE_ARCHIVE), ...images], { timeoutMs: 3_600_000 });

  for (const p of opts.include ?? RELEASE_INCLUDE) {
    const src = path.join(root, p);
    if (!existsSync(src)) continue;
    cpSync(src, path.join(opts.out, 'release', p), { recursive: true, dereference: false });
  }

  const files = listFiles(opts.out)
    .filter((f) => f !== MANIFEST && f !== SIGNATURE)
    .map((f) => ({ path: f, sha256: sha256File(path.join(opts.out, f)), size: statSync(path.join(opts.out, f)).size }));
  const manifest: BundleManifest = {
    format: 'enclave-bundle',
    v: 1,
    version,
    createdAt: (opts.now ?? new Date()).toISOString(),
    minCompose: MIN.compose,
    requiredStops: requiredStops(),
    images: imageInfo,
    files,
  };
  const bytes = Buffer.from(JSON.stringify(manifest, null, 2) + '\n');
  writeFileSync(path.join(opts.out, MANIFEST), bytes);
  writeFileSync(path.join(opts.out, SIGNATURE), signDetached(opts.signingKey, bytes, { purpose: SIGNATURE_PURPOSE, now: opts.now?.getTime() }) + '\n');
  log(`bundle ${version}: ${files.length} files, ${images.length} images, signed`);
  return manifest;
}

export interface BundleVerification {
  readonly manifest: BundleManifest;
  readonly issuerKid: string;
  readonly signedAt: string;
}

function licenseMode(): LicenseMode {
  return process.env.ENCLAVE_LICENSE_MODE === 'test' ? 'test' : 'production';
}

/**
 * Verifies a bundle before anything is loaded: the signature over manifest.json (licence key
 * chain), then size and SHA-256 of every listed file; an unlisted or missing file fails too.
 */
export function verifyBundle(dir: string, opts: { mode?: LicenseMode } = {}): BundleVerification {
  const mfile = path.join(dir, MANIFEST);
  const sfile = path.join(dir, SIGNATURE);
  if (!existsSync(mfile) || !existsSync(sfile)) throw new InstallerError(`${dir} is not an Enclave bundle (no ${MANIFEST} / ${SIGNATURE})`);
  const bytes = readFileSync(mfile);
  let sig;
  try {
    sig = verifyDetached(bytes, readFileSync(sfile, 'utf8'), { mode: opts.mode ?? licenseMode(), purpose: SIGNATURE_PURPOSE });
  } catch (e) {
    throw new InstallerError(`bundle signature invalid: ${(e as Error).message}`);
  }
  const manifest = JSON.parse(bytes.toString('utf8')) as BundleManifest;
  if (manifest.format !== 'enclave-bundle' || manifest.v !== 1) throw new InstallerError('unknown bundle manifest format');
  const problems: string[] = [];
  const listed = new Set<string>();
  for (const f of manifest.files) {
    if (path.isAbsolute(f.path) || f.path.split('/').includes('..')) {
      problems.push(`${f.path}: path escapes the bundle`);
      continue;
    }
    listed.add(f.path);
    const file = path.join(dir, f.path);
    if (!existsSync(file)) problems.push(`${f.path}: missing`);
    else if (statSync(file).size !== f.size) problems.push(`${f.path}: size differs`);
    else if (sha256File(file) !== f.sha256) problems.push(`${f.path}: SHA-256 differs`);
  }
  for (const f of listFiles(dir)) {
    if (f !== MANIFEST && f !== SIGNATURE && !listed.has(f)) problems.push(`${f}: not in the manifest`);
  }
  if (problems.length) throw new InstallerError(`bundle verification failed: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (+${problems.length - 5} more)` : ''}`);
  return { manifest, issuerKid: sig.issuerKid, signedAt: sig.signedAt };
}

/** `docker load` of the verified image archive, then checks every listed image is present. */
export function loadBundleImages(dir: string, manifest: BundleManifest, log: (l: string) => void): void {
  log('loading images (docker load)…');
  runOrThrow('docker', ['load', '-i', path.join(dir, IMAGE_ARCHIVE)], { timeoutMs: 3_600_000 });
  for (const img of manifest.images) {
    const r = run('docker', ['image', 'inspect', '--format', '{{.Id}}', img.ref]);
    if (r.code !== 0) throw new InstallerError(`image ${img.ref} is not present after docker load`);
    if (r.stdout.trim() !== img.id) throw new InstallerError(`image ${img.ref} has id ${r.stdout.trim()}, the manifest says ${img.id}`);
  }
}
