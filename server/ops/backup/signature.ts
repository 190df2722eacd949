import { eq } from 'drizzle-orm';
import Database from 'better-sqlite3';
import { createHash, createHmac, sign as cryptoSign, timingSafeEqual, type KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { ensureInstallation, INSTALLATION_KEY, INSTALLATION_SECRET, installationIdFor, verifyInstallationSignature, type InstallationRecord } from '../../../license/installation.js';
import { privateKeyObject } from '../../../license/keys.js';
import { systemClock } from '../../clock.js';
import { resolveMasterKey } from '../../config/master-key.js';
import { RuntimeSettings } from '../../config/runtime-settings.js';
import { sqliteStore, type Store } from '../../db/store.js';
import type { SecretBox } from '../../config/secret-box.js';
import type { Config } from '../../config/settings.js';
import { databaseFile, openDatabase } from '../../db/connection.js';

/**
 * Backup authenticity. The manifest (which holds every part's size and SHA-256) is signed
 * with the installation's Ed25519 key (license/installation.ts: generated at first start,
 * private half in the database encrypted under the master key, so a backup alone cannot
 * sign anything). The signature sits in `manifest.sig`, the archive's second entry.
 * Passphrase backups also carry an HMAC of the manifest under a key derived from the
 * passphrase (envelope.ts macKey): who knows the passphrase made it.
 *
 * verify and restore accept a manifest only when its signature verifies and the signer is
 * trusted: the installation of the data dir being verified/restored into (its public key is
 * read from the live database), or one named with --trust-installation (id or public key).
 * A repacked archive with recomputed sums fails the signature; one re-signed with another
 * key names a signer nobody trusted.
 */
export const SIGNATURE_ENTRY = 'manifest.sig';
export const SIGNATURE_FORMAT = 'enclave-backup-signature';

export interface ManifestSignature {
  readonly format: typeof SIGNATURE_FORMAT;
  readonly alg: 'Ed25519';
  readonly installationId: string;
  /** base64url of the raw 32-byte Ed25519 public key. */
  readonly publicKey: string;
  /** base64url Ed25519 signature over the manifest.json bytes. */
  readonly signature: string;
  /** Passphrase backups: hex HMAC-SHA256 of the manifest bytes under the passphrase-derived MAC key. */
  readonly mac?: string;
}

/** A short fingerprint of an installation public key (what operators compare). */
export function keyFingerprint(publicKey: string): string {
  const hex = createHash('sha256').update(Buffer.from(publicKey, 'base64url')).digest('hex').slice(0, 32);
  return `SHA256:${hex.match(/.{4}/g)!.join(':')}`;
}

export function describeSigner(s: { installationId: string; publicKey: string }): string {
  return `installation ${s.installationId} (key ${keyFingerprint(s.publicKey)})`;
}

export function manifestMac(macKey: Buffer, manifest: Buffer): string {
  return createHmac('sha256', macKey).update('enclave-backup manifest\n').update(manifest).digest('hex');
}

export interface ManifestSigner {
  readonly installationId: string;
  readonly publicKey: string;
  sign(manifest: Buffer, macKey?: Buffer): ManifestSignature;
}

/**
 * The installation key of `config`'s data dir, created on first use, with its private half
 * decrypted into memory. Called before the snapshot, so a backup of a database that had no
 * identity yet carries the identity that signed it.
 */
export async function installationSigner(config: Config): Promise<ManifestSigner> {
  const box = signingBox(config);
  const db = openDatabase(databaseFile(config.dataDir));
  try {
    return await storeSigner(sqliteStore(db), box);
  } finally {
    db.$client.close();
  }
}

/** The master key that decrypts the installation's private key (a one-line reason when there is none). */
export function signingBox(config: Config): SecretBox {
  try {
    return resolveMasterKey(config, undefined, { create: false }).box;
  } catch (e) {
    throw new Error(`cannot sign the backup: the master key is needed to use the installation key (${(e as Error).message})`);
  }
}

/** The installation key kept in `store` (SQLite or PostgreSQL), created on first use, its private half decrypted into memory. */
export async function storeSigner(store: Store, box: SecretBox): Promise<ManifestSigner> {
  const settings = new RuntimeSettings(store, box, systemClock);
  const inst: InstallationRecord = await ensureInstallation(store, settings, () => Date.now());
  let key: KeyObject;
  try {
    key = privateKeyObject(inst.publicKey, (await settings.getSecret(INSTALLATION_SECRET)) ?? '');
  } catch (e) {
    throw new Error(`cannot sign the backup with installation ${inst.id}: its private key does not decrypt with this master key (${(e as Error).message})`);
  }
  return {
    installationId: inst.id,
    publicKey: inst.publicKey,
    sign: (manifest, macKey) => ({
      format: SIGNATURE_FORMAT,
      alg: 'Ed25519',
      installationId: inst.id,
      publicKey: inst.publicKey,
      signature: cryptoSign(null, manifest, key).toString('base64url'),
      ...(macKey ? { mac: manifestMac(macKey, manifest) } : {}),
    }),
  };
}

/** The installation identity of a data dir, read-only (undefined: no database or no identity yet). */
export function localInstallation(dataDir: string): InstallationRecord | undefined {
  const file = databaseFile(dataDir);
  if (!existsSync(file)) return undefined;
  const sqlite = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const row = sqlite.prepare('SELECT value FROM settings WHERE key = ? AND secret = 0').get(INSTALLATION_KEY) as { value: string } | undefined;
    return row ? (JSON.parse(row.value) as InstallationRecord) : undefined;
  } catch {
    return undefined; // a database without the settings table
  } finally {
    sqlite.close();
  }
}

/** Whom verify/restore trust: the local installation and installations named by the operator. */
export interface SignerTrust {
  readonly local?: InstallationRecord | undefined;
  /** --trust-installation values: installation ids (inst_…) or base64url public keys. */
  readonly extra?: readonly string[];
}

export function trustFor(dataDir: string | undefined, extra: readonly string[] = []): SignerTrust {
  return { local: dataDir ? localInstallation(dataDir) : undefined, extra };
}

export type SignatureCheck = { readonly ok: true; readonly signer: ManifestSignature; readonly message: string } | { readonly ok: false; readonly signer?: ManifestSignature; readonly message: string };

/**
 * Checks `manifest.sig` against the manifest bytes: present, well-formed, the id belongs to
 * the key, the signature verifies, the passphrase MAC (when the archive was passphrase-encrypted)
 * verifies, and the signer is trusted. Every refusal names the signer it saw.
 */
export function checkSignature(manifest: Buffer, raw: Buffer | undefined, o: { trust: SignerTrust; macKey?: Buffer | undefined }): SignatureCheck {
  if (!raw) return { ok: false, message: 'the backup is not signed (no manifest.sig): it was not made by this Enclave release or the signature was removed; refusing it' };
  let sig: ManifestSignature;
  try {
    sig = JSON.parse(raw.toString('utf8')) as ManifestSignature;
  } catch {
    return { ok: false, message: 'manifest.sig is not valid JSON (damaged or forged archive)' };
  }
  if (sig.format !== SIGNATURE_FORMAT || sig.alg !== 'Ed25519' || typeof sig.publicKey !== 'string' || typeof sig.signature !== 'string' || typeof sig.installationId !== 'string' || Buffer.from(sig.publicKey, 'base64url').length !== 32) {
    return { ok: false, message: 'manifest.sig is not an Enclave backup signature (unknown format or algorithm)' };
  }
  const who = describeSigner(sig);
  let idOfKey: string;
  try {
    idOfKey = installationIdFor(sig.publicKey);
  } catch {
    return { ok: false, message: `manifest.sig holds a malformed public key (claims ${sig.installationId})` };
  }
  if (idOfKey !== sig.installationId) return { ok: false, signer: sig, message: `manifest.sig claims installation ${sig.installationId}, but its key belongs to ${idOfKey}: forged signature` };
  if (!verifyInstallationSignature(sig.publicKey, manifest, sig.signature)) {
    return { ok: false, signer: sig, message: `the manifest's signature by ${who} does not verify: the archive was altered after it was signed` };
  }
  if (o.macKey) {
    const want = Buffer.from(manifestMac(o.macKey, manifest), 'hex');
    const got = Buffer.from(typeof sig.mac === 'string' ? sig.mac : '', 'hex');
    if (got.length !== want.length || !timingSafeEqual(got, want)) {
      return { ok: false, signer: sig, message: `the manifest's passphrase MAC is ${sig.mac ? 'wrong' : 'missing'} (signed by ${who}): not made with this passphrase` };
    }
  }
  const local = o.trust.local;
  if (local && local.publicKey === sig.publicKey) return { ok: true, signer: sig, message: `signed by ${who}: this installation` };
  const named = (o.trust.extra ?? []).map((t) => t.trim());
  if (named.some((t) => t === sig.installationId || t === sig.publicKey)) return { ok: true, signer: sig, message: `signed by ${who}: trusted with --trust-installation` };
  const here = local ? `this installation is ${describeSigner({ installationId: local.id, publicKey: local.publicKey })}` : 'this data dir has no installation yet';
  return {
    ok: false,
    signer: sig,
    message: `signed by ${who}, which is not trusted (${here}); if that installation made this backup, pass --trust-installation ${sig.installationId}`,
  };
}

/** The installation identity kept in a store's settings (PostgreSQL: the database verify/restore trusts), read-only. */
export async function storeInstallation(store: Store): Promise<InstallationRecord | undefined> {
  const { q, t } = store;
  const row = await store.one(q.select({ value: t.settings.value, secret: t.settings.secret }).from(t.settings).where(eq(t.settings.key, INSTALLATION_KEY)));
  return row && !row.secret ? (JSON.parse(row.value) as InstallationRecord) : undefined;
}
