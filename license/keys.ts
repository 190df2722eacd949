import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { b64uDecode, b64uEncode } from './encoding.js';
import { LicenseError } from './errors.js';

/** The only signature algorithm today. A kid binds its algorithm; room for ES256 (FIPS buyers) later. */
export type SigningAlg = 'EdDSA';
export type KeyKind = 'root' | 'issuer' | 'installation';

/** A public key the verifier knows by id. */
export interface PublicKeyInfo {
  readonly kid: string;
  readonly alg: SigningAlg;
  /** Raw 32-byte Ed25519 public key, base64url. */
  readonly publicKey: string;
}

/** A trusted root: shipped in license/keys/ (production) or the committed test root. */
export interface RootKey extends PublicKeyInfo {
  readonly trust: 'production' | 'test';
  readonly note?: string;
}

/**
 * A key file as `enclave license keygen` writes it (JSON). Private keys are raw 32-byte
 * Ed25519 seeds (base64url). An issuer key file also carries its certificate (`ic`), the
 * root-signed mini-JWS that goes into every licence header it signs.
 */
export interface SigningKeyFile {
  readonly type: 'enclave-signing-key';
  readonly v: 1;
  readonly kind: 'root' | 'issuer';
  readonly kid: string;
  readonly alg: SigningAlg;
  readonly publicKey: string;
  readonly privateKey?: string;
  readonly certificate?: string;
  readonly createdAt?: string;
}

const keyFileSchema = z.object({
  type: z.literal('enclave-signing-key'),
  v: z.literal(1),
  kind: z.enum(['root', 'issuer']),
  kid: z.string().min(1),
  alg: z.literal('EdDSA'),
  publicKey: z.string().min(1),
  privateKey: z.string().min(1).optional(),
  certificate: z.string().min(1).optional(),
  createdAt: z.string().optional(),
});

const PREFIX: Record<KeyKind, string> = { root: 'root', issuer: 'iss', installation: 'inst' };

/** kid = kind prefix + first 80 bits of SHA-256(public key), hex: a kid names exactly one key. */
export function kidFor(kind: KeyKind, publicKeyRaw: Buffer): string {
  return `${PREFIX[kind]}-${createHash('sha256').update(publicKeyRaw).digest('hex').slice(0, 20)}`;
}

export function publicKeyObject(publicKeyB64u: string): KeyObject {
  const raw = b64uDecode(publicKeyB64u, 'public key');
  if (raw.length !== 32) throw new LicenseError('bad_key_file', 'an Ed25519 public key has 32 bytes');
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: publicKeyB64u }, format: 'jwk' });
}

export function privateKeyObject(publicKeyB64u: string, privateKeyB64u: string): KeyObject {
  const raw = b64uDecode(privateKeyB64u, 'private key');
  if (raw.length !== 32) throw new LicenseError('bad_key_file', 'an Ed25519 private key has 32 bytes');
  const key = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', x: publicKeyB64u, d: privateKeyB64u }, format: 'jwk' });
  // The JWK import does not check that x belongs to d; a mismatched file would sign unverifiable licences.
  const derived = createPublicKey(key).export({ format: 'jwk' }).x;
  if (derived !== publicKeyB64u) throw new LicenseError('bad_key_file', 'the private key does not match the public key');
  return key;
}

/** A new Ed25519 key pair as raw base64url halves. */
export function generateEd25519(): { publicKey: string; privateKey: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  return { publicKey: publicKey.export({ format: 'jwk' }).x!, privateKey: jwk.d! };
}

export function newKeyFile(kind: 'root' | 'issuer', now = new Date()): SigningKeyFile {
  const { publicKey, privateKey } = generateEd25519();
  return {
    type: 'enclave-signing-key',
    v: 1,
    kind,
    kid: kidFor(kind, b64uDecode(publicKey, 'public key')),
    alg: 'EdDSA',
    publicKey,
    privateKey,
    createdAt: now.toISOString(),
  };
}

export function publicHalf(file: SigningKeyFile): SigningKeyFile {
  const { privateKey: _drop, ...pub } = file;
  return pub;
}

/** Parses and checks a key file: the kid must be derived from the public key, the halves must match. */
export function parseKeyFile(text: string, where = 'key file'): SigningKeyFile {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new LicenseError('bad_key_file', `${where} is not JSON`);
  }
  const parsed = keyFileSchema.safeParse(raw);
  if (!parsed.success) {
    throw new LicenseError('bad_key_file', `${where} is not an Enclave signing key (${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message})`);
  }
  const f = parsed.data as SigningKeyFile;
  const pub = b64uDecode(f.publicKey, `${where} publicKey`);
  if (pub.length !== 32) throw new LicenseError('bad_key_file', `${where}: an Ed25519 public key has 32 bytes`);
  if (kidFor(f.kind, pub) !== f.kid) throw new LicenseError('bad_key_file', `${where}: kid does not match the public key`);
  if (f.privateKey) privateKeyObject(f.publicKey, f.privateKey);
  return f;
}

export function readKeyFile(file: string): SigningKeyFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new LicenseError('bad_key_file', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseKeyFile(text, file);
}

/** Key material that can sign: an issuer (with certificate) for licences and detached signatures, a root for certificates. */
export interface SigningKey {
  readonly kid: string;
  readonly alg: SigningAlg;
  readonly publicKey: string;
  readonly key: KeyObject;
  readonly certificate?: string;
}

export function signingKey(file: SigningKeyFile): SigningKey {
  if (!file.privateKey) throw new LicenseError('bad_key_file', `key ${file.kid} has no private half`);
  return {
    kid: file.kid,
    alg: file.alg,
    publicKey: file.publicKey,
    key: privateKeyObject(file.publicKey, file.privateKey),
    ...(file.certificate ? { certificate: file.certificate } : {}),
  };
}

export { b64uEncode };
