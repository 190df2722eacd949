import { createHash, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { resolveIssuer, type VerifiedIssuer } from './cert.js';
import { strictJsonObject } from './encoding.js';
import { LicenseError } from './errors.js';
import { parseCompact, signCompact, verifyParts } from './jws.js';
import { parseKeyFile, readKeyFile, signingKey, type SigningKey, type SigningKeyFile } from './keys.js';
import { trustStore, type LicenseMode, type TrustStore } from './trust.js';

/**
 * Detached signatures over arbitrary bytes (air-gap bundle manifests, usage files) with the
 * same key chain as licences: an issuer key, certified by a trusted root, revocation
 * honoured. The signature is a small JWS whose payload states the SHA-256 of the bytes,
 * when they were signed and for what purpose (domain separation: a manifest signature can
 * never be replayed as a licence, the `typ` differs, nor as another purpose's signature).
 *
 *   const sig = signDetached(readKeyFile('issuer.key.json'), manifestBytes, { purpose: 'bundle-manifest' });
 *   const { issuerKid } = verifyDetached(manifestBytes, sig, { mode: 'production', purpose: 'bundle-manifest' });
 */
export const DETACHED_TYP = 'enclave-signature+jws;v=1';

const statementSchema = z.object({
  v: z.literal(1),
  digest_alg: z.literal('sha256'),
  digest: z.string().regex(/^[0-9a-f]{64}$/),
  iat: z.number().int(),
  purpose: z.string().min(1).max(100),
});

export type IssuerKeyMaterial = SigningKey | SigningKeyFile | string;

/** An issuer key from a SigningKey, a parsed key file, or a key file's JSON text / path. */
export function issuerKey(material: IssuerKeyMaterial): SigningKey {
  if (typeof material === 'string') {
    const file = material.trimStart().startsWith('{') ? parseKeyFile(material) : readKeyFile(material);
    return issuerKey(file);
  }
  const key = 'key' in material ? material : signingKey(material);
  if (!key.certificate) {
    throw new LicenseError('bad_key_file', `key ${key.kid} has no issuer certificate: certify it with a root (enclave license certify)`);
  }
  return key;
}

export function signDetached(
  material: IssuerKeyMaterial,
  bytes: Uint8Array,
  opts: { purpose?: string; now?: number } = {},
): string {
  const key = issuerKey(material);
  const statement = {
    v: 1,
    digest_alg: 'sha256',
    digest: createHash('sha256').update(bytes).digest('hex'),
    iat: Math.floor((opts.now ?? Date.now()) / 1000),
    purpose: opts.purpose ?? 'detached',
  };
  return signCompact({ alg: key.alg, typ: DETACHED_TYP, kid: key.kid, ic: key.certificate! }, Buffer.from(JSON.stringify(statement)), key.key);
}

export interface DetachedVerification {
  readonly issuerKid: string;
  readonly rootKid: string;
  readonly rootTrust: 'production' | 'test';
  readonly signedAt: string;
  readonly purpose: string;
}

/**
 * Verifies `signature` over `bytes`: strict header, issuer certificate chained to a root
 * trusted in `mode`, nothing revoked, the issuer valid when it signed, the digest equal,
 * and (when given) the purpose equal. Throws LicenseError with a stable code otherwise.
 */
export function verifyDetached(
  bytes: Uint8Array,
  signature: string,
  opts: { mode: LicenseMode; purpose?: string; store?: TrustStore },
): DetachedVerification {
  const store = opts.store ?? trustStore(opts.mode);
  const parts = parseCompact(signature.replace(/\s+/g, ''), { typ: DETACHED_TYP, extra: ['ic'], what: 'signature' });
  const body = strictJsonObject(parts.payload, 'signature statement');
  const parsed = statementSchema.safeParse(body);
  if (!parsed.success) throw new LicenseError('bad_payload', `signature statement is invalid (${parsed.error.issues[0]?.path.join('.')})`);
  const chain: VerifiedIssuer = resolveIssuer(parts.header.ic as string, parts.kid, parsed.data.iat, store);
  verifyParts(parts, chain.issuer, 'signature');
  const digest = createHash('sha256').update(bytes).digest();
  if (!timingSafeEqual(digest, Buffer.from(parsed.data.digest, 'hex'))) {
    throw new LicenseError('bad_signature', 'the signature does not match these bytes (they were changed after signing)');
  }
  if (opts.purpose !== undefined && parsed.data.purpose !== opts.purpose) {
    throw new LicenseError('wrong_type', `the signature is for "${parsed.data.purpose}", not "${opts.purpose}"`);
  }
  return {
    issuerKid: chain.issuer.kid,
    rootKid: chain.rootKid,
    rootTrust: chain.rootTrust,
    signedAt: new Date(parsed.data.iat * 1000).toISOString(),
    purpose: parsed.data.purpose,
  };
}

export { LicenseError } from './errors.js';
export type { LicenseMode } from './trust.js';
