import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { copyFileSync, createReadStream, existsSync, linkSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { describeConfig } from '../../config/load.js';
import type { Config } from '../../config/settings.js';
import { databaseFile, openDatabase } from '../../db/connection.js';
import { loadMigrations, migrationStatus } from '../../db/migrator.js';
import { APP_VERSION } from '../../paths.js';
import type { TarEntry } from '../archive/tar.js';
import { fsyncPath } from '../../fsync.js';
import { writeArchive } from './archive.js';
import { sealer, type EncryptTo } from './envelope.js';
import { installationSigner, SIGNATURE_ENTRY, trustFor, type ManifestSigner } from './signature.js';
import { writeBackupRecord, type BackupRecord } from './records.js';
import { acquireLock, activeRestore } from '../process-registry.js';
import { pidAlive } from '../pid-alive.js';
import { databaseTarget } from '../../db/dialect.js';
import { createPostgresBackup, type PostgresPart } from './postgres.js';

/**
 * `enclave backup create`: a consistent snapshot while the server and worker keep writing.
 *
 * 1. `VACUUM INTO` a staging file (a read transaction: a consistent snapshot that other
 *    processes' writes do not restart, unlike the online backup API), fsync it,
 *    `PRAGMA integrity_check` + `foreign_key_check` on the copy.
 * 2. Parts: the database (the installed licence lives in its settings table and is also
 *    copied out as license/license.lic), the non-secret effective config, uploaded files
 *    under the data dir's BACKUP_FILE_DIRS.
 * 3. manifest.json (versions, migration head, SQLite version, installation id, every part
 *    with size and SHA-256, what was skipped and why), first in a tar.gz, then manifest.sig
 *    (the manifest signed with the installation's Ed25519 key, plus a passphrase MAC for
 *    passphrase backups: signature.ts), optionally in the encryption envelope; written to a
 *    temporary name, fsynced, renamed.
 *
 * Secrets (master key, secret files) are never in it: `enclave backup secrets` exports them
 * separately. Redis (queue state) is transient and not backed up.
 * The scheduled backup (jobs issue) calls createBackup() with a recipient and `keep`.
 */

/** Data-dir subdirectories holding uploaded files (batch inputs …); add new file stores here. */
export const BACKUP_FILE_DIRS: string[] = ['files', 'uploads'];

/** What in the data dir is deliberately not in a backup, and why. */
export const SKIPPED_PATHS: readonly { path: string; reason: string }[] = [
  { path: 'secrets/', reason: 'secrets are exported separately and encrypted: enclave backup secrets' },
  { path: 'redis/', reason: 'queue and rate-limit state is transient' },
  { path: 'run/', reason: 'process registry of the running host' },
  { path: 'backups/', reason: 'earlier backups' },
  { path: 'worker.heartbeat', reason: 'liveness signal' },
  { path: 'enclave.db-wal, enclave.db-shm', reason: 'the database is copied with VACUUM INTO, never by file copy' },
];

export const MANIFEST_FORMAT = 'enclave-backup';
export const MANIFEST_VERSION = 1;

export interface ManifestPart {
  readonly name: string;
  readonly kind: 'database' | 'config' | 'license' | 'file';
  readonly size: number;
  readonly sha256: string;
}

export interface BackupManifest {
  readonly format: typeof MANIFEST_FORMAT;
  readonly formatVersion: number;
  readonly appVersion: string;
  /** Last migration applied in the backed-up database. */
  readonly migrationHead: string | null;
  /** Last migration this code ships (the code that made the backup). */
  readonly codeMigrationHead: string | null;
  /** SQLite backups: the library's version (absent in a PostgreSQL backup, see `database`). */
  readonly sqliteVersion?: string;
  readonly installationId: string | null;
  readonly createdAt: string;
  readonly host: string;
  readonly integrityCheck: string;
  readonly foreignKeyViolations: number;
  /** Row counts per table at the snapshot (no rows themselves). */
  readonly tables: Record<string, number>;
  readonly parts: readonly ManifestPart[];
  readonly skipped: readonly { path: string; reason: string }[];
  readonly secretsIncluded: false;
  /** PostgreSQL backups (postgres.ts): the tables as logical rows; absent: the SQLite file `db/enclave.db`. */
  readonly database?: PostgresPart;
}

export interface CreateBackupOptions {
  /** A file path, or a directory (existing, or ending in '/') for a generated name. Default <dataDir>/backups/. */
  readonly out?: string;
  readonly encrypt?: EncryptTo;
  /** Keep the newest N generated-name backups in the output directory, delete older ones. */
  readonly keep?: number;
  readonly onProgress?: (phase: string, done: number, total: number) => void;
  readonly now?: () => number;
  /**
   * Read the written file back and run the full verify on it (restore into a scratch dir,
   * checksums, integrity_check, schema). Works for recipient-encrypted backups too: the
   * content key is kept in memory only for this. Records last-verified on success.
   */
  readonly verify?: boolean;
}

export interface CreateBackupResult {
  readonly file: string;
  readonly size: number;
  readonly sha256: string;
  readonly manifest: BackupManifest;
  readonly encryption: string;
  readonly pruned: readonly string[];
  readonly durationMs: number;
  /** Set when opts.verify: the read-back verification. */
  readonly verified?: { readonly ok: boolean; readonly checks: readonly { id: string; status: string; message: string }[] };
}

export class BackupError extends Error {
  override readonly name = 'BackupError';
}

const NAME_RE = /^enclave-backup-\d{8}T\d{6}(?:\d{3})?Z-.+\.tar\.gz(?:\.enc)?$/;

export function backupFileName(at: Date, encrypted: boolean): string {
  const ts = at.toISOString().replace(/[-:]/g, '').replace(/\.(\d{3})Z$/, '$1Z');
  return `enclave-backup-${ts}-v${APP_VERSION}.tar.gz${encrypted ? '.enc' : ''}`;
}

export function defaultBackupDir(dataDir: string): string {
  return path.join(dataDir, 'backups');
}

function resolveOut(opts: CreateBackupOptions, dataDir: string, at: Date): { file: string; generated: boolean } {
  const out = opts.out ?? defaultBackupDir(dataDir) + path.sep;
  const isDir = out.endsWith('/') || out.endsWith(path.sep) || (existsSync(out) && statSync(out).isDirectory());
  if (isDir) {
    mkdirSync(out, { recursive: true, mode: 0o700 }); // backups hold every tenant's data
    return { file: path.resolve(out, backupFileName(at, !!opts.encrypt)), generated: true };
  }
  const file = path.resolve(out);
  if (existsSync(file)) throw new BackupError(`${file} already exists; choose another --out`);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  return { file, generated: false };
}


/** Removes staging dirs and temp files left by a backup that was killed. */
export function cleanStale(dir: string): string[] {
  const removed: string[] = [];
  if (!existsSync(dir)) return removed;
  for (const name of readdirSync(dir)) {
    const m = /^\.(?:enclave-backup-staging-(\d+)|.+\.tmp-(\d+))$/.exec(name);
    if (!m) continue;
    const pid = Number(m[1] ?? m[2]);
    if (pid !== process.pid && !pidAlive(pid)) {
      rmSync(path.join(dir, name), { recursive: true, force: true });
      removed.push(name);
    }
  }
  return removed;
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

function walk(root: string, rel = ''): string[] {
  const out: string[] = [];
  const dir = path.join(root, rel);
  for (const d of readdirSync(dir, { withFileTypes: true })) {
    const r = rel ? `${rel}/${d.name}` : d.name;
    if (d.isDirectory()) out.push(...walk(root, r));
    else if (d.isFile()) out.push(r);
  }
  return out.sort();
}

function sqlQuote(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** Row counts per user table (sqlite_% and the FTS shadow tables excluded). */
export function tableCounts(sqlite: Database.Database): Record<string, number> {
  const names = (sqlite.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
  const out: Record<string, number> = {};
  for (const n of names) out[n] = (sqlite.prepare(`SELECT count(*) AS c FROM "${n.replace(/"/g, '""')}"`).get() as { c: number }).c;
  return out;
}

/** Snapshot of the live database into `target` with VACUUM INTO, then fsync. */
export function snapshotDatabase(dbFile: string, target: string): void {
  const db = openDatabase(dbFile);
  try {
    db.$client.exec(`VACUUM INTO ${sqlQuote(target)}`);
  } finally {
    db.$client.close();
  }
  fsyncPath(target);
}

export function checkCopy(file: string): { integrity: string; fkViolations: number; migrationHead: string | null; sqliteVersion: string; installationId: string | null; tables: Record<string, number>; license?: string } {
  const sqlite = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const rows = sqlite.pragma('integrity_check') as { integrity_check: string }[];
    const integrity = rows.map((r) => r.integrity_check).join('; ');
    const fk = (sqlite.pragma('foreign_key_check') as unknown[]).length;
    const status = migrationStatus(sqlite);
    const sqliteVersion = (sqlite.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v;
    let installationId: string | null = null;
    let license: string | undefined;
    try {
      const inst = sqlite.prepare("SELECT value FROM settings WHERE key = 'license.installation'").get() as { value: string } | undefined;
      if (inst) installationId = (JSON.parse(inst.value) as { id?: string }).id ?? null;
      const lic = sqlite.prepare("SELECT value FROM settings WHERE key = 'license.current' AND secret = 0").get() as { value: string } | undefined;
      if (lic) license = (JSON.parse(lic.value) as { text?: string }).text;
    } catch {
      /* a database without these rows */
    }
    return { integrity, fkViolations: fk, migrationHead: status.databaseHead, sqliteVersion, installationId, tables: tableCounts(sqlite), ...(license ? { license } : {}) };
  } finally {
    sqlite.close();
  }
}

/**
 * Uploaded files are written once (temp name, then rename): hard-link (or copy) each into
 * staging right after the snapshot, so later deletions or replacements cannot tear the archive.
 * Returns the files that vanished meanwhile (listed as skipped).
 */
export async function stageFiles(dataDir: string, staging: string, addFile: (name: string, kind: ManifestPart['kind'], f: string) => Promise<void>): Promise<{ path: string; reason: string }[]> {
  const vanished: { path: string; reason: string }[] = [];
  for (const d of BACKUP_FILE_DIRS) {
    const root = path.join(dataDir, d);
    if (!existsSync(root)) continue;
    for (const rel of walk(root)) {
      if (/\.tmp(?:-\d+)?$|\.tmp\b/.test(rel)) continue;
      const staged = path.join(staging, 'files', d, ...rel.split('/'));
      mkdirSync(path.dirname(staged), { recursive: true, mode: 0o700 });
      try {
        try {
          linkSync(path.join(root, rel), staged);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw e;
          copyFileSync(path.join(root, rel), staged);
        }
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        vanished.push({ path: `${d}/${rel}`, reason: 'deleted while the backup ran' });
        continue;
      }
      await addFile(`files/${d}/${rel}`, 'file', staged);
    }
  }
  return vanished;
}

/** Deletes generated-name backups in `dir` beyond the newest `keep`. */
export function prune(dir: string, keep: number, protect: string): string[] {
  if (!Number.isInteger(keep) || keep < 1) throw new BackupError('--keep must be a positive whole number');
  const names = readdirSync(dir)
    .filter((n) => NAME_RE.test(n))
    .sort()
    .reverse();
  const removed: string[] = [];
  for (const n of names.slice(keep)) {
    const f = path.join(dir, n);
    if (f === protect) continue;
    rmSync(f, { force: true });
    removed.push(f);
  }
  return removed;
}

export async function createBackup(config: Config, opts: CreateBackupOptions = {}): Promise<CreateBackupResult> {
  const started = Date.now();
  const now = opts.now ?? Date.now;
  const at = new Date(now());
  if (databaseTarget(config).dialect === 'postgres') {
    if (opts.keep !== undefined && (!Number.isInteger(opts.keep) || opts.keep < 1)) throw new BackupError('--keep must be a positive whole number');
    // One backup at a time from this host (replicas on other hosts may back up too: each reads
    // its own snapshot, nothing is written but the archive and the settings record).
    const releaseLock = acquireLock(config.dataDir, 'backup', 'another backup');
    try {
      const out = resolveOut(opts, config.dataDir, at);
      cleanStale(path.dirname(out.file));
      return await createPostgresBackup(config, opts, out);
    } finally {
      releaseLock();
    }
  }
  const dbFile = databaseFile(config.dataDir);
  if (!existsSync(dbFile)) throw new BackupError(`${dbFile} does not exist: nothing to back up (start Enclave once, or check ENCLAVE_DATA_DIR)`);
  if (opts.keep !== undefined && (!Number.isInteger(opts.keep) || opts.keep < 1)) throw new BackupError('--keep must be a positive whole number');
  const restore = activeRestore(config.dataDir);
  if (restore) throw new BackupError(`a restore (pid ${restore.pid}) is replacing the database; back up when it has finished`);
  const releaseLock = acquireLock(config.dataDir, 'backup', 'another backup');
  try {
    return await createLocked(config, opts, at, dbFile, started);
  } finally {
    releaseLock();
  }
}

async function createLocked(config: Config, opts: CreateBackupOptions, at: Date, dbFile: string, started: number): Promise<CreateBackupResult> {
  const now = opts.now ?? Date.now;
  const { file, generated } = resolveOut(opts, config.dataDir, at);
  const outDir = path.dirname(file);
  cleanStale(outDir);

  // The installation key first: it may be created now, and the snapshot must then contain it.
  let signer: ManifestSigner;
  try {
    signer = await installationSigner(config);
  } catch (e) {
    throw new BackupError((e as Error).message);
  }
  const staging = path.join(outDir, `.enclave-backup-staging-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true, mode: 0o700 });
  try {
    opts.onProgress?.('snapshot', 0, 1);
    const copy = path.join(staging, 'enclave.db');
    snapshotDatabase(dbFile, copy);
    const check = checkCopy(copy);
    if (check.integrity !== 'ok') throw new BackupError(`integrity_check on the snapshot failed: ${check.integrity}; run enclave doctor and repair the database before backing up`);
    opts.onProgress?.('snapshot', 1, 1);

    const entries: TarEntry[] = [];
    const parts: ManifestPart[] = [];
    const addFile = async (name: string, kind: ManifestPart['kind'], f: string): Promise<void> => {
      const st = statSync(f);
      parts.push({ name, kind, size: st.size, sha256: await sha256File(f) });
      entries.push({ name, file: f, size: st.size, mtime: st.mtimeMs });
    };
    const addData = (name: string, kind: ManifestPart['kind'], data: Buffer): void => {
      parts.push({ name, kind, size: data.length, sha256: createHash('sha256').update(data).digest('hex') });
      entries.push({ name, data, size: data.length, mtime: at.getTime() });
    };
    await addFile('db/enclave.db', 'database', copy);
    addData('config/config.json', 'config', Buffer.from(JSON.stringify(describeConfig(config), null, 2) + '\n'));
    if (check.license) addData('license/license.lic', 'license', Buffer.from(check.license));
    const vanished = await stageFiles(config.dataDir, staging, addFile);

    const manifest: BackupManifest = {
      format: MANIFEST_FORMAT,
      formatVersion: MANIFEST_VERSION,
      appVersion: APP_VERSION,
      migrationHead: check.migrationHead,
      codeMigrationHead: loadMigrations().at(-1)?.tag ?? null,
      sqliteVersion: check.sqliteVersion,
      installationId: check.installationId,
      createdAt: at.toISOString(),
      host: hostname(),
      integrityCheck: check.integrity,
      foreignKeyViolations: check.fkViolations,
      tables: check.tables,
      parts,
      skipped: [...SKIPPED_PATHS, ...vanished],
      secretsIncluded: false,
    };
    const manifestBytes = Buffer.from(JSON.stringify(manifest, null, 2) + '\n');
    // The sealer first: a passphrase backup's MAC key comes from it (signature.ts).
    const seal = opts.encrypt ? sealer('backup', opts.encrypt) : undefined;
    const signed = signer.sign(manifestBytes, seal?.contentKey.macKey);
    const sigBytes = Buffer.from(JSON.stringify(signed, null, 2) + '\n');
    const all: TarEntry[] = [
      { name: 'manifest.json', data: manifestBytes, size: manifestBytes.length, mtime: at.getTime() },
      { name: SIGNATURE_ENTRY, data: sigBytes, size: sigBytes.length, mtime: at.getTime() },
      ...entries,
    ];
    const written = await writeArchive(file, all, {
      ...(seal ? { sealer: seal } : {}),
      content: 'backup',
      onProgress: (d, t) => opts.onProgress?.('archive', d, t),
    });
    const encryption = !opts.encrypt ? 'none' : 'passphrase' in opts.encrypt ? 'passphrase' : `x25519 ${opts.encrypt.recipient}`;
    const record: BackupRecord = { at: now(), file, size: written.size, sha256: written.sha256, encryption };
    let verified: CreateBackupResult['verified'];
    if (opts.verify) {
      const { verifyBackup } = await import('./verify.js');
      const keys = { ...(opts.encrypt && 'passphrase' in opts.encrypt ? { passphrase: opts.encrypt.passphrase } : {}), ...(written.contentKey ? { contentKey: written.contentKey } : {}) };
      const v = await verifyBackup(file, { keys, trust: trustFor(config.dataDir) });
      verified = { ok: v.ok, checks: v.checks };
      if (!v.ok) throw new BackupError(`the backup written to ${file} did not verify: ${v.checks.filter((c) => c.status === 'fail').map((c) => c.message).join('; ')}`);
    }
    const live = openDatabase(dbFile);
    try {
      writeBackupRecord(live.$client, 'lastSuccess', record);
      if (verified?.ok) writeBackupRecord(live.$client, 'lastVerified', { ...record, at: now() });
    } finally {
      live.$client.close();
    }
    const pruned = opts.keep !== undefined && generated ? prune(outDir, opts.keep, file) : [];
    return { file, size: written.size, sha256: written.sha256, manifest, encryption, pruned, durationMs: Date.now() - started, ...(verified ? { verified } : {}) };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}
