import { createHash, sign as cryptoSign, verify as cryptoVerify } from 'node:crypto';
import type { RuntimeSettings } from '../server/config/runtime-settings.js';
import type { Store } from '../server/db/store.js';
import { b64uDecode, b64uEncode } from './encoding.js';
import { generateEd25519, privateKeyObject, publicKeyObject } from './keys.js';
import { lockSettings } from './store.js';

/**
 * The installation identity: an Ed25519 key pair generated at first start and stored in
 * the database (private half encrypted under the master key), so it survives container
 * re-creation and backup/restore, and HA nodes share it. No hardware fingerprints.
 * installation id = "inst_" + base32(SHA-256(public key)), 26 characters.
 */
export const INSTALLATION_KEY = 'license.installation';
export const INSTALLATION_SECRET = 'license.installation.private';

export interface InstallationRecord {
  readonly id: string;
  readonly publicKey: string;
  readonly createdAt: string;
}

export interface Installation extends InstallationRecord {
  sign(bytes: Uint8Array): string;
}

const B32 = 'abcdefghijklmnopqrstuvwxyz234567';
function base32(bytes: Buffer): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

export function installationIdFor(publicKey: string): string {
  return `inst_${base32(createHash('sha256').update(b64uDecode(publicKey, 'installation public key')).digest()).slice(0, 26)}`;
}

export function verifyInstallationSignature(publicKey: string, bytes: Uint8Array, signature: string): boolean {
  try {
    return cryptoVerify(null, bytes, publicKeyObject(publicKey), b64uDecode(signature, 'signature'));
  } catch {
    return false;
  }
}

/**
 * Loads the installation identity, creating it on first use: one writer wins across processes
 * and replicas (a transaction holding the key's lock from the check to the writes; see
 * lockSettings). The private half is decrypted here, so `sign` stays synchronous; when it does
 * not decrypt (a wrong master key: support bundle, restore checks) loading still succeeds and
 * `sign` throws why, as before.
 */
export async function ensureInstallation(store: Store, settings: RuntimeSettings, now: () => number): Promise<Installation> {
  let rec = await settings.get<InstallationRecord>(INSTALLATION_KEY);
  if (!rec) {
    await store.tx(async () => {
      await lockSettings(store, INSTALLATION_KEY);
      if (await settings.get<InstallationRecord>(INSTALLATION_KEY)) return;
      const kp = generateEd25519();
      await settings.setSecret(INSTALLATION_SECRET, kp.privateKey);
      await settings.set(INSTALLATION_KEY, { id: installationIdFor(kp.publicKey), publicKey: kp.publicKey, createdAt: new Date(now()).toISOString() });
    });
    rec = (await settings.get<InstallationRecord>(INSTALLATION_KEY))!;
  }
  const record = rec;
  let key: ReturnType<typeof privateKeyObject> | undefined;
  let keyError: Error | undefined;
  try {
    key = privateKeyObject(record.publicKey, (await settings.getSecret(INSTALLATION_SECRET))!);
  } catch (e) {
    keyError = e as Error;
  }
  return {
    ...record,
    sign(bytes: Uint8Array): string {
      if (!key) throw keyError ?? new Error('the installation private key is not available');
      return b64uEncode(cryptoSign(null, bytes, key));
    },
  };
}

/** The id only, without creating anything (read-only callers). */
export function readInstallation(settings: RuntimeSettings): Promise<InstallationRecord | undefined> {
  return settings.get<InstallationRecord>(INSTALLATION_KEY);
}
