import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { LicenseService } from '../../../license/service.js';
import { systemClock } from '../../clock.js';
import { generatedKeyFile, resolveMasterKey, writeKeyFile } from '../../config/master-key.js';
import { RuntimeSettings } from '../../config/runtime-settings.js';
import { sqliteStore } from '../../db/store.js';
import { SecretBox } from '../../config/secret-box.js';
import type { Config } from '../../config/settings.js';
import { databaseFile, openDatabase } from '../../db/connection.js';
import { migrationStatus } from '../../db/migrator.js';
import { acquireRestoreLock, runDir, stopProcesses, type ProcessRecord } from '../process-registry.js';
import { fsyncPath } from '../../fsync.js';
import { BACKUP_FILE_DIRS, defaultBackupDir, snapshotDatabase } from './create.js';
import type { Keyring } from './envelope.js';
import { checkStoredSecrets, type SecretCheckResult, type SecretsExport } from './secrets.js';
import { keyFingerprint, trustFor } from './signature.js';
import { verifyBackup, type VerifyCheck } from './verify.js';
import { pidAlive } from '../pid-alive.js';
import { databaseTarget } from '../../db/dialect.js';
import { postgresTrust, PostgresRestoreRefused, restorePostgresParts } from './postgres.js';

export class RestoreError extends Error {
  override readonly name = 'RestoreError';
  constructor(
    message: string,
    readonly checks: readonly VerifyCheck[] = [],
  ) {
    super(message);
  }
}

export interface RestoreOptions {
  readonly keys?: Keyring;
  readonly secrets?: SecretsExport;
  /** SIGTERM the server/worker processes on this host that use the data dir, then restore. */
  readonly stop?: boolean;
  /** Restore although processes are registered (the operator says they are gone). */
  readonly force?: boolean;
  readonly now?: () => number;
  /**
   * --trust-installation: installation ids or public keys whose signed backups may be restored
   * here besides this data dir's own installation (restoring onto another or a new installation).
   */
  readonly trustInstallations?: readonly string[];
}

export interface RestoreResult {
  readonly file: string;
  readonly dataDir: string;
  readonly preRestore?: string;
  readonly stopped: readonly Pick<ProcessRecord, 'pid' | 'role'>[];
  readonly fromVersion: string;
  readonly schema: { readonly backup: string | null; readonly now: string | null; readonly migrated: boolean };
  readonly masterKeyInstalled: boolean;
  readonly secrets: SecretCheckResult | { readonly error: string };
  readonly licence: { readonly state: string; readonly problem?: { code: string; message: string } };
  readonly checks: readonly VerifyCheck[];
  /** The installation that signed the backup. */
  readonly signer?: { readonly installationId: string; readonly fingerprint: string };
}


function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

function moveIfExists(from: string, to: string): boolean {
  if (!existsSync(from)) return false;
  mkdirSync(path.dirname(to), { recursive: true });
  renameSync(from, to);
  return true;
}

/**
 * `enclave backup restore`: verify the archive into a scratch dir inside the data dir (same
 * filesystem, so the swap is a rename), refuse a newer schema, migrate an older one there,
 * keep the current database (and files, generated key) under backups/pre-restore-<ts>/, swap
 * atomically, then decrypt every stored secret with the master key and re-verify the licence.
 * Holds the restore lock throughout; refuses while a server or worker uses the data dir.
 * Only a backup signed by this data dir's installation, or by one named in
 * `trustInstallations` (--trust-installation), is restored (signature.ts).
 */
export async function restoreBackup(config: Config, file: string, opts: RestoreOptions = {}): Promise<RestoreResult> {
  if (databaseTarget(config).dialect === 'postgres') return restoreIntoPostgres(config, file, opts);
  const now = opts.now ?? Date.now;
  const dataDir = config.dataDir;
  mkdirSync(dataDir, { recursive: true });
  const stopped = opts.stop ? await stopProcesses(dataDir) : [];
  const release = acquireRestoreLock(dataDir, { force: opts.force ?? false });
  const scratch = path.join(runDir(dataDir), `restore-${process.pid}`);
  // scratch dirs of restores that were killed
  for (const n of readdirSync(runDir(dataDir))) {
    const m = /^restore-(\d+)$/.exec(n);
    if (m && !pidAlive(Number(m[1]))) rmSync(path.join(runDir(dataDir), n), { recursive: true, force: true });
  }
  rmSync(scratch, { recursive: true, force: true });
  // Read before anything is replaced: the installation whose data dir this is.
  const trust = trustFor(dataDir, opts.trustInstallations ?? []);
  try {
    const v = await verifyBackup(file, { keys: opts.keys ?? {}, scratchDir: scratch, keepScratch: true, trust, ...(opts.secrets ? { secrets: opts.secrets } : {}) });
    if (!v.ok || !v.manifest) {
      const failed = v.checks.filter((c) => c.status === 'fail');
      const why = failed.map((c) => c.message).join('; ');
      throw new RestoreError(v.newer ? `refusing to restore: ${why}` : `backup did not verify, nothing was changed: ${why}`, v.checks);
    }
    const manifest = v.manifest;
    if (manifest.database?.dialect === 'postgres') {
      throw new RestoreError('refusing to restore: this is a backup of an Enclave on PostgreSQL; restore it with ENCLAVE_DATABASE_URL set to a new, empty PostgreSQL database', v.checks);
    }
    const stagedDb = path.join(scratch, 'db', 'enclave.db');
    for (const ext of ['-wal', '-shm']) {
      if (existsSync(stagedDb + ext)) {
        // verify closed it; a leftover WAL is checkpointed by opening and closing once more
        openDatabase(stagedDb).$client.close();
      }
    }

    const liveDb = databaseFile(dataDir);
    const ts = stamp(now());
    const pre = path.join(defaultBackupDir(dataDir), `pre-restore-${ts}`);
    let preRestore: string | undefined;
    if (existsSync(liveDb)) {
      mkdirSync(pre, { recursive: true, mode: 0o700 });
      snapshotDatabase(liveDb, path.join(pre, 'enclave.db'));
      preRestore = pre;
      const cur = openDatabase(liveDb);
      try {
        cur.$client.pragma('wal_checkpoint(TRUNCATE)');
      } finally {
        cur.$client.close();
      }
    }
    // Stale -wal/-shm of the old database must not be applied to the new one.
    for (const ext of ['-wal', '-shm']) rmSync(liveDb + ext, { force: true });
    renameSync(stagedDb, liveDb);
    fsyncPath(dataDir);

    for (const d of BACKUP_FILE_DIRS) {
      const target = path.join(dataDir, d);
      const staged = path.join(scratch, 'files', d);
      if (existsSync(target) && (existsSync(staged) || readdirSync(target).length)) {
        mkdirSync(pre, { recursive: true, mode: 0o700 });
        moveIfExists(target, path.join(pre, 'files', d));
        preRestore = pre;
      }
      moveIfExists(staged, target);
    }

    let masterKeyInstalled = false;
    if (opts.secrets && !config.masterKey && !config.masterKeyFile) {
      // Embedded mode: the generated key lives in the data dir; install the exported one.
      const keyFile = generatedKeyFile(dataDir);
      if (existsSync(keyFile)) {
        mkdirSync(pre, { recursive: true, mode: 0o700 });
        moveIfExists(keyFile, path.join(pre, 'secrets', 'master.key'));
        moveIfExists(`${keyFile}.previous`, path.join(pre, 'secrets', 'master.key.previous'));
        moveIfExists(`${keyFile}.next`, path.join(pre, 'secrets', 'master.key.next'));
        preRestore = pre;
      }
      writeKeyFile(keyFile, Buffer.from(opts.secrets.masterKey.current, 'base64'));
      if (opts.secrets.masterKey.previous[0]) writeKeyFile(`${keyFile}.previous`, Buffer.from(opts.secrets.masterKey.previous[0], 'base64'));
      masterKeyInstalled = true;
    }

    // Post-restore checks against the database now in place.
    const db = openDatabase(liveDb);
    let secrets: RestoreResult['secrets'];
    let licence: RestoreResult['licence'];
    let head: string | null;
    try {
      head = migrationStatus(db.$client).databaseHead;
      let box: SecretBox | undefined;
      try {
        // The configured key (or the generated one just installed) is what the server will use.
        box = resolveMasterKey(config, undefined, { create: false }).box;
        secrets = checkStoredSecrets(db.$client, box);
      } catch (e) {
        secrets = { error: (e as Error).message };
      }
      try {
        const store = sqliteStore(db);
        const settings = new RuntimeSettings(store, box ?? new SecretBox(randomBytes(32)), systemClock);
        const svc = await new LicenseService({ store, settings, clock: systemClock, log: pino({ level: 'silent' }), mode: config.licenseMode, environment: config.licenseEnvironment, pollMs: 0 }).start();
        try {
          const st = await svc.status();
          licence = { state: st.state, ...(st.problem ? { problem: st.problem } : {}) };
        } finally {
          await svc.stop();
        }
      } catch (e) {
        licence = { state: 'unknown', problem: { code: 'check_failed', message: (e as Error).message } };
      }
    } finally {
      db.$client.close();
    }
    return {
      file,
      dataDir,
      ...(preRestore ? { preRestore } : {}),
      stopped: stopped.map((p) => ({ pid: p.pid, role: p.role })),
      fromVersion: manifest.appVersion,
      schema: { backup: manifest.migrationHead, now: head, migrated: !!v.older },
      masterKeyInstalled,
      secrets,
      licence,
      checks: v.checks,
      ...(v.signer ? { signer: { installationId: v.signer.installationId, fingerprint: keyFingerprint(v.signer.publicKey) } } : {}),
    };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
    release();
  }
}

/**
 * Restore on PostgreSQL (postgres.ts): verify (the database's own installation is trusted, an
 * empty database has none: --trust-installation), then insert the rows into the configured
 * database, which must be empty and at the backup's migration level, in one transaction. The
 * uploaded files go into the data dir as on SQLite (the previous ones kept under backups/).
 */
async function restoreIntoPostgres(config: Config, file: string, opts: RestoreOptions): Promise<RestoreResult> {
  const now = opts.now ?? Date.now;
  const dataDir = config.dataDir;
  mkdirSync(dataDir, { recursive: true });
  const scratch = path.join(runDir(dataDir), `restore-${process.pid}`);
  rmSync(scratch, { recursive: true, force: true });
  try {
    const trust = await postgresTrust(config, opts.trustInstallations ?? []);
    const v = await verifyBackup(file, { keys: opts.keys ?? {}, scratchDir: scratch, keepScratch: true, trust });
    if (!v.ok || !v.manifest) {
      const why = v.checks.filter((c) => c.status === 'fail').map((c) => c.message).join('; ');
      throw new RestoreError(v.newer ? `refusing to restore: ${why}` : `backup did not verify, nothing was changed: ${why}`, v.checks);
    }
    const manifest = v.manifest;
    if (manifest.database?.dialect !== 'postgres') {
      throw new RestoreError('refusing to restore: this is a backup of an embedded (SQLite) Enclave; restore it into a data dir without ENCLAVE_DATABASE_URL, then copy it with enclave db migrate-to-postgres', v.checks);
    }
    if (v.older) throw new RestoreError(`refusing to restore: ${v.checks.find((c) => c.id === 'schema')?.message}`, v.checks);
    let r;
    try {
      r = await restorePostgresParts(config, scratch, manifest);
    } catch (e) {
      if (e instanceof PostgresRestoreRefused) throw new RestoreError(e.message, v.checks);
      throw e;
    }
    let preRestore: string | undefined;
    const pre = path.join(defaultBackupDir(dataDir), `pre-restore-${stamp(now())}`);
    for (const d of BACKUP_FILE_DIRS) {
      const target = path.join(dataDir, d);
      const staged = path.join(scratch, 'files', d);
      if (existsSync(target) && (existsSync(staged) || readdirSync(target).length)) {
        mkdirSync(pre, { recursive: true, mode: 0o700 });
        moveIfExists(target, path.join(pre, 'files', d));
        preRestore = pre;
      }
      moveIfExists(staged, target);
    }
    return {
      file,
      dataDir: r.database,
      ...(preRestore ? { preRestore } : {}),
      stopped: [],
      fromVersion: manifest.appVersion,
      schema: { backup: manifest.migrationHead, now: r.head, migrated: false },
      masterKeyInstalled: false,
      secrets: r.secrets,
      licence: r.licence,
      checks: [...v.checks, { id: 'restored', status: 'ok', message: `${Object.keys(r.tables).length} tables restored into ${r.database} in one transaction; row counts and the audit chain (${r.audit.checked} entries) verified before the commit` }],
      ...(v.signer ? { signer: { installationId: v.signer.installationId, fingerprint: keyFingerprint(v.signer.publicKey) } } : {}),
    };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

export function isDirEmpty(dir: string): boolean {
  return !existsSync(dir) || (statSync(dir).isDirectory() && readdirSync(dir).length === 0);
}
