import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openDatabase } from '../../db/connection.js';
import { migrate, migrationStatus } from '../../db/migrator.js';
import { APP_VERSION } from '../../paths.js';
import { ArchiveError } from '../archive/tar.js';
import { readArchive } from './archive.js';
import { checkCopy, MANIFEST_FORMAT, MANIFEST_VERSION, type BackupManifest } from './create.js';
import { BackupCryptoError, type Keyring } from './envelope.js';
import { boxFromExport, checkStoredSecrets, type SecretsExport } from './secrets.js';
import { verifyPostgresParts } from './postgres.js';
import { checkSignature, SIGNATURE_ENTRY, type ManifestSignature, type SignerTrust } from './signature.js';

export type VerifyStatus = 'ok' | 'warn' | 'fail';

export interface VerifyCheck {
  readonly id: string;
  readonly status: VerifyStatus;
  readonly message: string;
}

export interface VerifyResult {
  readonly ok: boolean;
  readonly file: string;
  readonly encryption: string;
  readonly manifest?: BackupManifest;
  readonly checks: readonly VerifyCheck[];
  /** The restored parts (only when keepScratch). */
  readonly scratch?: string;
  /** The database schema is older than this code (restore migrates it). */
  readonly older?: boolean;
  /** The database schema is newer than this code (restore refuses). */
  readonly newer?: boolean;
  /** Who signed the manifest (also when the signer was not trusted). */
  readonly signer?: ManifestSignature;
}

export interface VerifyOptions {
  readonly keys?: Keyring;
  /** A decrypted secrets export: the stored secrets are decrypted with its master key. */
  readonly secrets?: SecretsExport;
  /** Where to restore into (default: a new temp dir). */
  readonly scratchDir?: string;
  /** Keep the scratch dir (restore uses the verified parts from there). */
  readonly keepScratch?: boolean;
  /** Migrate an older database in the scratch copy to prove it upgrades (default true). */
  readonly migrateOlder?: boolean;
  /**
   * Whose signatures are accepted (signature.ts trustFor: the installation of a data dir and
   * --trust-installation values). Without it no signer is trusted and verification fails.
   */
  readonly trust?: SignerTrust;
}

/**
 * `enclave backup verify`: decrypt, restore every part into a scratch directory checking its
 * size and SHA-256 against the manifest, `integrity_check` the database, compare migration
 * heads and row counts with the manifest, trial-migrate an older schema, and, given a
 * (before any of that: the manifest's signature must verify and name a trusted signer),
 * secrets export, decrypt every stored secret with its master key. ok only if all pass.
 */
export async function verifyBackup(file: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const checks: VerifyCheck[] = [];
  const fail = (id: string, message: string): VerifyResult => {
    checks.push({ id, status: 'fail', message });
    return { ok: false, file, encryption: 'unknown', checks };
  };
  if (!existsSync(file)) return fail('archive', `${file} does not exist`);
  const scratch = opts.scratchDir ?? mkdtempSync(path.join(tmpdir(), 'enclave-verify-'));
  let keep = false;
  try {
    let read;
    try {
      read = await readArchive(file, opts.keys ?? {}, scratch);
    } catch (e) {
      if (e instanceof BackupCryptoError || e instanceof ArchiveError) return fail('archive', e.message);
      throw e;
    }
    const encryption = read.encryption;
    checks.push({ id: 'archive', status: 'ok', message: `read ${read.entries.length} entries (encryption: ${encryption})` });
    const done = (extra: Partial<VerifyResult> = {}): VerifyResult => {
      const ok = checks.every((c) => c.status !== 'fail');
      keep = ok && !!opts.keepScratch;
      return { ok, file, encryption, checks, ...(keep ? { scratch } : {}), ...extra };
    };

    const raw = read.memory.get('manifest.json');
    if (!raw || read.entries[0]?.name !== 'manifest.json') {
      checks.push({ id: 'manifest', status: 'fail', message: 'manifest.json is missing (not an Enclave backup, or a damaged one)' });
      return done();
    }
    let manifest: BackupManifest;
    try {
      manifest = JSON.parse(raw.toString('utf8')) as BackupManifest;
    } catch {
      checks.push({ id: 'manifest', status: 'fail', message: 'manifest.json is not valid JSON (damaged archive)' });
      return done();
    }
    if (manifest.format !== MANIFEST_FORMAT || manifest.formatVersion > MANIFEST_VERSION || !Array.isArray(manifest.parts)) {
      checks.push({ id: 'manifest', status: 'fail', message: `unsupported backup format ${manifest.format} v${manifest.formatVersion}; use the Enclave release that made it (${manifest.appVersion})` });
      return done({ manifest });
    }
    checks.push({ id: 'manifest', status: 'ok', message: `made by Enclave ${manifest.appVersion} at ${manifest.createdAt} on ${manifest.host}, schema ${manifest.migrationHead}` });

    // Authenticity before anything in the archive is believed: the sums below only mean
    // something once the manifest that lists them is known to come from a trusted installation.
    const sig = checkSignature(raw, read.memory.get(SIGNATURE_ENTRY), { trust: opts.trust ?? {}, macKey: read.header?.kdf.type === 'scrypt' ? read.macKey : undefined });
    const signer = sig.signer ? { signer: sig.signer } : {};
    if (read.header?.kdf.type === 'scrypt' && !read.macKey) {
      checks.push({ id: 'signature', status: 'fail', message: 'passphrase archive without a MAC key (internal error)' });
      return done({ manifest, ...signer });
    }
    if (!sig.ok || read.entries[1]?.name !== SIGNATURE_ENTRY) {
      checks.push({ id: 'signature', status: 'fail', message: sig.ok ? 'manifest.sig is not the second entry of the archive (repacked)' : sig.message });
      return done({ manifest, ...signer });
    }
    checks.push({ id: 'signature', status: 'ok', message: sig.message });

    const byName = new Map(read.entries.map((e) => [e.name, e]));
    const problems: string[] = [];
    for (const p of manifest.parts) {
      const e = byName.get(p.name);
      if (!e) problems.push(`part ${p.name} is missing`);
      else if (e.size !== p.size) problems.push(`part ${p.name} has ${e.size} bytes, the manifest says ${p.size}`);
      else if (e.sha256 !== p.sha256) problems.push(`part ${p.name} fails its SHA-256 checksum`);
    }
    const listed = new Set(manifest.parts.map((p) => p.name));
    for (const e of read.entries) if (e.name !== 'manifest.json' && e.name !== SIGNATURE_ENTRY && !listed.has(e.name)) problems.push(`unexpected entry ${e.name} not in the manifest`);
    if (problems.length) {
      checks.push({ id: 'checksums', status: 'fail', message: problems.join('; ') });
      return done({ manifest });
    }
    checks.push({ id: 'checksums', status: 'ok', message: `all ${manifest.parts.length} parts match their size and SHA-256` });

    if (manifest.database?.dialect === 'postgres') {
      // A PostgreSQL backup's tables are logical rows: checked on the parts, no database needed.
      const { older, newer } = await verifyPostgresParts(scratch, manifest, checks, opts.secrets ? boxFromExport(opts.secrets) : undefined);
      return done({ manifest, older, newer, signer: sig.signer });
    }
    const dbFile = path.join(scratch, 'db', 'enclave.db');
    if (!existsSync(dbFile)) {
      checks.push({ id: 'database', status: 'fail', message: 'the backup has no database part' });
      return done({ manifest });
    }
    const copy = checkCopy(dbFile);
    if (copy.integrity !== 'ok') {
      checks.push({ id: 'database', status: 'fail', message: `integrity_check: ${copy.integrity}` });
      return done({ manifest });
    }
    const mismatched = Object.entries(manifest.tables ?? {}).filter(([t, n]) => copy.tables[t] !== n);
    if (mismatched.length) {
      checks.push({ id: 'database', status: 'fail', message: `row counts differ from the manifest: ${mismatched.map(([t, n]) => `${t} ${copy.tables[t] ?? 'missing'} != ${n}`).join(', ')}` });
      return done({ manifest });
    }
    checks.push({ id: 'database', status: 'ok', message: `integrity_check ok; ${Object.keys(copy.tables).length} tables with the row counts of the manifest` });

    let older = false;
    let newer = false;
    const db = openDatabase(dbFile);
    try {
      const s = migrationStatus(db.$client);
      if (s.databaseHead !== manifest.migrationHead) {
        checks.push({ id: 'schema', status: 'fail', message: `database migration head ${s.databaseHead} differs from the manifest's ${manifest.migrationHead}` });
      } else if (s.unknown.length) {
        newer = true;
        checks.push({
          id: 'schema',
          status: 'fail',
          message: `backup schema ${s.databaseHead} is newer than this Enclave ${APP_VERSION} (head ${s.head}); restore it with Enclave ${manifest.appVersion} or newer`,
        });
      } else if (s.pending.length) {
        older = true;
        if (opts.migrateOlder !== false) {
          try {
            migrate(db.$client, { appVersion: APP_VERSION });
            checks.push({ id: 'schema', status: 'ok', message: `backup schema ${s.databaseHead} is older than ${s.head}: ${s.pending.length} migration(s) applied cleanly to the scratch copy` });
          } catch (e) {
            checks.push({ id: 'schema', status: 'fail', message: `backup schema ${s.databaseHead} does not migrate to ${s.head}: ${(e as Error).message}` });
          }
        } else {
          checks.push({ id: 'schema', status: 'ok', message: `backup schema ${s.databaseHead} is older than ${s.head}; restore migrates it` });
        }
      } else {
        checks.push({ id: 'schema', status: 'ok', message: `schema ${s.databaseHead} matches this Enclave` });
      }
      if (opts.secrets) {
        const r = checkStoredSecrets(db.$client, boxFromExport(opts.secrets));
        if (r.failed.length || r.selfTest !== 'ok') {
          const first = r.failed.slice(0, 5).map((f) => `${f.table}.${f.column}:${f.id} (${f.reason})`).join('; ');
          checks.push({ id: 'secrets', status: 'fail', message: `master key ${opts.secrets.masterKey.kid} does not decrypt ${r.failed.length} of ${r.checked} stored secret(s), self-test ${r.selfTest}${first ? `: ${first}` : ''}` });
        } else {
          checks.push({ id: 'secrets', status: 'ok', message: `master key ${opts.secrets.masterKey.kid} decrypts all ${r.checked} stored secret(s)` });
        }
      }
    } finally {
      db.$client.close();
    }
    return done({ manifest, older, newer, signer: sig.signer });
  } finally {
    if (!keep) rmSync(scratch, { recursive: true, force: true });
  }
}
