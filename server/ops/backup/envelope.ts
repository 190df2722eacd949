import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  scryptSync,
  timingSafeEqual,
  type CipherGCM,
  type DecipherGCM,
  type KeyObject,
} from 'node:crypto';
import { closeSync, openSync, readSync, statSync } from 'node:fs';

/**
 * The encryption envelope of backups and secrets exports:
 *
 *   "ENCLVBK1" | u32 BE header length | header JSON | AES-256-GCM ciphertext | 16-byte tag
 *
 * The header (authenticated as AAD) says how the 32-byte content key was derived:
 *   - passphrase: scrypt(passphrase, salt, N=2^logN, r, p)
 *   - x25519:     HKDF-SHA256(X25519(ephemeral, recipient), epk ‖ recipient pub) — the
 *                 appliance needs only the operator's public key, never the private half.
 * A key-check value (HMAC of a fixed label under a second derived key) lets a wrong
 * passphrase or identity be told apart from a damaged archive.
 */
export const ENVELOPE_MAGIC = Buffer.from('ENCLVBK1', 'ascii');
const TAG_LEN = 16;
const INFO = 'enclave-backup v1';
export const PUBLIC_KEY_PREFIX = 'enclave-x25519:';

export type EnvelopeContent = 'backup' | 'secrets';

export type KdfHeader =
  | { readonly type: 'scrypt'; readonly salt: string; readonly logN: number; readonly r: number; readonly p: number }
  | { readonly type: 'x25519'; readonly epk: string; readonly recipient: string };

export interface EnvelopeHeader {
  readonly v: 1;
  readonly content: EnvelopeContent;
  readonly cipher: 'aes-256-gcm';
  readonly iv: string;
  readonly kdf: KdfHeader;
  readonly check: string;
}

export class BackupCryptoError extends Error {
  override readonly name = 'BackupCryptoError';
}

/** How to encrypt: a passphrase or an operator's X25519 public key. */
export type EncryptTo = { readonly passphrase: string; readonly logN?: number } | { readonly recipient: string };

/** What may decrypt: any of a passphrase and identities (private keys). */
export interface Keyring {
  readonly passphrase?: string;
  readonly identities?: readonly KeyObject[];
  /** The content key a Sealer used (read-back verification right after writing, no private key needed). */
  readonly contentKey?: ContentKey;
}

export interface ContentKey {
  readonly key: Buffer;
  readonly check: Buffer;
  /**
   * Passphrase envelopes only: a key for the manifest MAC (server/ops/backup/signature.ts),
   * derived from the same scrypt output with its own HKDF label. Recipient envelopes have
   * none: anyone holding the public key could compute it.
   */
  readonly macKey?: Buffer;
}

function derive(secret: Buffer, salt: Buffer): { key: Buffer; check: Buffer } {
  const okm = Buffer.from(hkdfSync('sha256', secret, salt, INFO, 64));
  const key = okm.subarray(0, 32);
  return { key, check: createHmac('sha256', okm.subarray(32)).update('enclave-backup key check').digest().subarray(0, 16) };
}

function macKeyOf(secret: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, salt, 'enclave-backup manifest mac v1', 32));
}

function scryptKey(passphrase: string, salt: Buffer, logN: number, r: number, p: number): Buffer {
  const N = 2 ** logN;
  return scryptSync(passphrase.normalize('NFC'), salt, 32, { N, r, p, maxmem: 128 * N * r * 2 + 1024 * 1024 });
}

// ---------------------------------------------------------------- X25519 keys

export function generateRecipientKeyPair(): { publicKey: string; privateKeyPem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  return { publicKey: publicKeyText(publicKey), privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

export function publicKeyText(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' });
  return PUBLIC_KEY_PREFIX + jwk.x!;
}

export function parseRecipient(text: string): KeyObject {
  const t = text.trim();
  if (!t.startsWith(PUBLIC_KEY_PREFIX)) throw new BackupCryptoError(`recipient must look like ${PUBLIC_KEY_PREFIX}<base64url> (made by: enclave backup keygen)`);
  const x = t.slice(PUBLIC_KEY_PREFIX.length);
  if (Buffer.from(x, 'base64url').length !== 32) throw new BackupCryptoError('recipient public key must be 32 bytes (base64url)');
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x }, format: 'jwk' });
}

export function parseIdentity(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new BackupCryptoError('identity is not a PEM private key (made by: enclave backup keygen)');
  }
  if (key.asymmetricKeyType !== 'x25519') throw new BackupCryptoError(`identity is a ${key.asymmetricKeyType} key; an X25519 key is needed`);
  return key;
}

// ---------------------------------------------------------------- header

export interface Sealer {
  /** Magic, length and header: write these first. */
  readonly prefix: Buffer;
  readonly cipher: CipherGCM;
  /** Kept in memory only, for reading the file back once written. */
  readonly contentKey: ContentKey;
}

export function sealer(content: EnvelopeContent, to: EncryptTo): Sealer {
  let kdf: KdfHeader;
  let derived: ContentKey;
  if ('passphrase' in to) {
    if (!to.passphrase) throw new BackupCryptoError('empty passphrase');
    const salt = randomBytes(16);
    const logN = to.logN ?? 17;
    const secret = scryptKey(to.passphrase, salt, logN, 8, 1);
    derived = { ...derive(secret, salt), macKey: macKeyOf(secret, salt) };
    kdf = { type: 'scrypt', salt: salt.toString('base64'), logN, r: 8, p: 1 };
  } else {
    const rpk = parseRecipient(to.recipient);
    const eph = generateKeyPairSync('x25519');
    const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: rpk });
    const epkRaw = Buffer.from(eph.publicKey.export({ format: 'jwk' }).x!, 'base64url');
    const rRaw = Buffer.from(rpk.export({ format: 'jwk' }).x!, 'base64url');
    derived = derive(shared, Buffer.concat([epkRaw, rRaw]));
    kdf = { type: 'x25519', epk: epkRaw.toString('base64url'), recipient: publicKeyText(rpk) };
  }
  const iv = randomBytes(12);
  const header: EnvelopeHeader = { v: 1, content, cipher: 'aes-256-gcm', iv: iv.toString('base64'), kdf, check: derived.check.toString('base64') };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(json.length);
  const prefix = Buffer.concat([ENVELOPE_MAGIC, len, json]);
  const cipher = createCipheriv('aes-256-gcm', derived.key, iv);
  cipher.setAAD(prefix);
  return { prefix, cipher, contentKey: derived };
}

export interface OpenedEnvelope {
  readonly header: EnvelopeHeader;
  readonly bodyStart: number;
  /** Inclusive end offset of the ciphertext in the file. */
  readonly bodyEnd: number;
  readonly decipher: DecipherGCM;
  /** Passphrase envelopes: the manifest MAC key (ContentKey.macKey). */
  readonly macKey?: Buffer;
}

/** True when the file starts with the envelope magic (else it is a plain archive). */
export function isEnvelope(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(8);
    return readSync(fd, b, 0, 8, 0) === 8 && b.equals(ENVELOPE_MAGIC);
  } finally {
    closeSync(fd);
  }
}

export function describeEncryption(header: EnvelopeHeader): string {
  return header.kdf.type === 'scrypt' ? 'passphrase (scrypt, AES-256-GCM)' : `X25519 recipient ${header.kdf.recipient} (AES-256-GCM)`;
}

/**
 * Reads the header of an envelope file and prepares a decipher with the right key.
 * Throws BackupCryptoError naming what is missing or wrong.
 */
export function openEnvelope(file: string, keys: Keyring, expect?: EnvelopeContent): OpenedEnvelope {
  const size = statSync(file).size;
  const fd = openSync(file, 'r');
  let prefix: Buffer;
  let tag: Buffer;
  try {
    const head = Buffer.alloc(12);
    if (readSync(fd, head, 0, 12, 0) !== 12 || !head.subarray(0, 8).equals(ENVELOPE_MAGIC)) throw new BackupCryptoError('not an encrypted Enclave file (bad magic)');
    const hlen = head.readUInt32BE(8);
    if (hlen > 64 * 1024 || 12 + hlen + TAG_LEN > size) throw new BackupCryptoError('encrypted file is truncated or its header is damaged');
    prefix = Buffer.alloc(12 + hlen);
    readSync(fd, prefix, 0, prefix.length, 0);
    tag = Buffer.alloc(TAG_LEN);
    readSync(fd, tag, 0, TAG_LEN, size - TAG_LEN);
  } finally {
    closeSync(fd);
  }
  let header: EnvelopeHeader;
  try {
    header = JSON.parse(prefix.subarray(12).toString('utf8')) as EnvelopeHeader;
  } catch {
    throw new BackupCryptoError('encrypted file header is damaged (not JSON)');
  }
  if (header.v !== 1 || header.cipher !== 'aes-256-gcm' || !header.kdf || (header.content !== 'backup' && header.content !== 'secrets')) {
    throw new BackupCryptoError('unsupported or damaged encryption header');
  }
  if (expect && header.content !== expect) throw new BackupCryptoError(`this file is a ${header.content} file, not a ${expect} file`);
  let derived: ContentKey | undefined;
  const kdf = header.kdf;
  if (keys.contentKey && safeEq(keys.contentKey.check, Buffer.from(header.check, 'base64'))) {
    derived = keys.contentKey;
  } else if (kdf.type === 'scrypt') {
    if (keys.passphrase === undefined) throw new BackupCryptoError('this file is encrypted with a passphrase: pass --passphrase-file');
    if (!Number.isInteger(kdf.logN) || kdf.logN < 10 || kdf.logN > 22) throw new BackupCryptoError('damaged encryption header (scrypt cost)');
    const salt = Buffer.from(kdf.salt, 'base64');
    const secret = scryptKey(keys.passphrase, salt, kdf.logN, kdf.r, kdf.p);
    derived = { ...derive(secret, salt), macKey: macKeyOf(secret, salt) };
    if (!safeEq(derived.check, Buffer.from(header.check, 'base64'))) throw new BackupCryptoError('wrong passphrase for this file');
  } else if (kdf.type === 'x25519') {
    if (!keys.identities?.length) throw new BackupCryptoError(`this file is encrypted to ${kdf.recipient}: pass --identity with its private key`);
    const rpk = parseRecipient(kdf.recipient);
    const rRaw = Buffer.from(rpk.export({ format: 'jwk' }).x!, 'base64url');
    const epkRaw = Buffer.from(kdf.epk, 'base64url');
    const epk = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: kdf.epk }, format: 'jwk' });
    const id = keys.identities.find((k) => publicKeyText(createPublicKey(k)) === kdf.recipient);
    if (!id) {
      const given = keys.identities.map((k) => publicKeyText(createPublicKey(k))).join(', ');
      throw new BackupCryptoError(`wrong key: this file is encrypted to ${kdf.recipient}, the given identity is ${given}`);
    }
    derived = derive(diffieHellman({ privateKey: id, publicKey: epk }), Buffer.concat([epkRaw, rRaw]));
    if (!safeEq(derived.check, Buffer.from(header.check, 'base64'))) throw new BackupCryptoError('wrong key for this file (key check failed)');
  } else {
    throw new BackupCryptoError('unsupported key derivation in the encryption header');
  }
  const decipher = createDecipheriv('aes-256-gcm', derived.key, Buffer.from(header.iv, 'base64'));
  decipher.setAAD(prefix);
  decipher.setAuthTag(tag);
  return { header, bodyStart: prefix.length, bodyEnd: size - TAG_LEN - 1, decipher, ...(kdf.type === 'scrypt' && derived.macKey ? { macKey: derived.macKey } : {}) };
}

function safeEq(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Encrypts a small buffer into a complete envelope (secrets exports). */
export function sealBuffer(content: EnvelopeContent, to: EncryptTo, plaintext: Buffer): Buffer {
  const s = sealer(content, to);
  const body = Buffer.concat([s.cipher.update(plaintext), s.cipher.final()]);
  return Buffer.concat([s.prefix, body, s.cipher.getAuthTag()]);
}

export const AUTH_FAILED = 'archive failed authentication: it was damaged or tampered with after it was written';
