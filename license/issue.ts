import { randomBytes } from 'node:crypto';
import { armor } from './armor.js';
import { iso } from './cert.js';
import { b64uDecode, strictJsonObject } from './encoding.js';
import { LicenseError } from './errors.js';
import { signCompact } from './jws.js';
import { licensePayloadSchema, type LicensePayload } from './payload.js';
import { issuerKey, type IssuerKeyMaterial } from './signing.js';
import { LICENSE_TYP, PRODUCT } from './verify.js';

/**
 * A licence spec as the vendor writes it (spec.json): the payload without the fields the
 * issuer fills in. `lid` defaults to a fresh id, `iat`/`nbf` to now, `iss` to "Enclave",
 * `aud.product` to "enclave", `aud.installation` to "*".
 */
export type LicenseSpec = Omit<Partial<LicensePayload>, 'aud'> & {
  aud?: Partial<LicensePayload['aud']>;
  seq: number;
  sub: LicensePayload['sub'];
};

export function issueLicense(material: IssuerKeyMaterial, spec: LicenseSpec, opts: { now?: number } = {}): { text: string; payload: LicensePayload } {
  const key = issuerKey(material);
  const now = Math.floor((opts.now ?? Date.now()) / 1000);
  const draft = {
    v: 1,
    iss: 'Enclave',
    plan: 'enterprise',
    capabilities: [],
    limits: {},
    deployment: { modes: ['on_prem'] },
    ...spec,
    lid: spec.lid ?? `lic_${randomBytes(12).toString('base64url')}`,
    iat: spec.iat ?? now,
    nbf: spec.nbf ?? spec.iat ?? now,
    aud: { product: PRODUCT, installation: '*', environment: 'production', ...spec.aud },
  };
  const parsed = licensePayloadSchema.safeParse(draft);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new LicenseError('bad_payload', `spec is invalid at ${issue?.path.join('.') || '(root)'}: ${issue?.message}`);
  }
  // Sign exactly the validated draft's JSON (defaults filled in by zod are included).
  const payload = parsed.data;
  const cert = strictJsonObject(b64uDecode(key.certificate!.split('.')[1] ?? '', 'certificate payload'), 'certificate payload');
  if (typeof cert.nbf === 'number' && typeof cert.exp === 'number' && (payload.iat < cert.nbf || payload.iat > cert.exp)) {
    throw new LicenseError('issuer_expired', `issuer ${key.kid} is valid ${iso(cert.nbf)} to ${iso(cert.exp)}, not at ${iso(payload.iat)}; certify a new issuer`);
  }
  const compact = signCompact({ alg: key.alg, typ: LICENSE_TYP, kid: key.kid, ic: key.certificate! }, Buffer.from(JSON.stringify(payload)), key.key);
  return { text: armor(compact), payload };
}
