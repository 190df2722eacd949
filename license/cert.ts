import { z } from 'zod';
import { b64uDecode, strictJsonObject } from './encoding.js';
import { LicenseError } from './errors.js';
import { parseCompact, signCompact, verifyParts } from './jws.js';
import { kidFor, type PublicKeyInfo, type SigningKey } from './keys.js';
import { assertNotRevoked, trustedRoot, type TrustStore } from './trust.js';

/**
 * An issuer certificate: a root-signed mini-JWS naming the issuer key and its validity
 * window. It rides in the `ic` header of every licence and detached signature the issuer
 * makes, so roots stay offline and issuers can be rotated without a release.
 */
export const CERT_TYP = 'enclave-issuer-cert+jws;v=1';

const certSchema = z.object({
  v: z.literal(1),
  kid: z.string().min(1),
  alg: z.literal('EdDSA'),
  publicKey: z.string().min(1),
  iat: z.number().int(),
  nbf: z.number().int(),
  exp: z.number().int(),
  name: z.string().max(200).optional(),
});
export type IssuerCertificate = z.infer<typeof certSchema>;

export function certifyIssuer(
  root: SigningKey,
  issuer: { kid: string; publicKey: string; name?: string },
  window: { nbf: number; exp: number; iat?: number },
): string {
  if (window.exp <= window.nbf) throw new LicenseError('bad_certificate', 'certificate exp must be after nbf');
  const payload: IssuerCertificate = {
    v: 1,
    kid: issuer.kid,
    alg: 'EdDSA',
    publicKey: issuer.publicKey,
    iat: window.iat ?? Math.floor(Date.now() / 1000),
    nbf: window.nbf,
    exp: window.exp,
    ...(issuer.name ? { name: issuer.name } : {}),
  };
  return signCompact({ alg: root.alg, typ: CERT_TYP, kid: root.kid }, Buffer.from(JSON.stringify(payload)), root.key);
}

export interface VerifiedIssuer {
  readonly issuer: PublicKeyInfo;
  readonly certificate: IssuerCertificate;
  readonly rootKid: string;
  readonly rootTrust: 'production' | 'test';
}

/** Verifies an issuer certificate against the trust store (root known, not revoked, signature, kid binding). */
export function verifyCertificate(compact: string, store: TrustStore): VerifiedIssuer {
  let parts;
  try {
    parts = parseCompact(compact, { typ: CERT_TYP, extra: [], what: 'issuer certificate' });
  } catch (e) {
    throw asCertError(e);
  }
  const root = trustedRoot(store, parts.kid);
  try {
    verifyParts(parts, root, 'issuer certificate');
  } catch (e) {
    throw asCertError(e);
  }
  const parsed = certSchema.safeParse(strictJsonObject(parts.payload, 'issuer certificate payload'));
  if (!parsed.success) throw new LicenseError('bad_certificate', `issuer certificate payload is invalid (${parsed.error.issues[0]?.path.join('.')})`);
  const cert = parsed.data;
  const raw = b64uDecode(cert.publicKey, 'issuer public key');
  if (raw.length !== 32 || kidFor('issuer', raw) !== cert.kid) {
    throw new LicenseError('bad_certificate', 'issuer certificate kid does not match its public key');
  }
  const issuer: PublicKeyInfo = { kid: cert.kid, alg: cert.alg, publicKey: cert.publicKey };
  assertNotRevoked(store, issuer, 'issuer');
  return { issuer, certificate: cert, rootKid: root.kid, rootTrust: root.trust };
}

/** Signature and format failures inside the certificate are reported as certificate problems. */
function asCertError(e: unknown): unknown {
  if (e instanceof LicenseError && (e.code === 'bad_signature' || e.code === 'malformed' || e.code === 'bad_base64url' || e.code === 'bad_json')) {
    return new LicenseError('bad_certificate', `issuer certificate: ${e.message}`);
  }
  return e;
}

/**
 * The issuer chain for a licence or detached signature: the `ic` certificate verifies
 * under a trusted root, names the header's kid, and was valid when the document was
 * signed (`at`, seconds).
 */
export function resolveIssuer(ic: string, kid: string, at: number, store: TrustStore): VerifiedIssuer {
  const v = verifyCertificate(ic, store);
  if (v.issuer.kid !== kid) throw new LicenseError('kid_mismatch', `the header kid ${kid} is not the certified issuer ${v.issuer.kid}`);
  if (at < v.certificate.nbf) {
    throw new LicenseError('issuer_not_yet_valid', `issuer ${kid} was not yet valid at ${iso(at)} (valid from ${iso(v.certificate.nbf)})`);
  }
  if (at > v.certificate.exp) {
    throw new LicenseError('issuer_expired', `issuer ${kid} had expired at ${iso(at)} (valid until ${iso(v.certificate.exp)})`);
  }
  return v;
}

export function iso(seconds: number): string {
  return new Date(seconds * 1000).toISOString();
}
