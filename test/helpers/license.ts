import { readFileSync } from 'node:fs';
import { issueLicense, type LicenseSpec } from '../../license/issue.js';
import { parseKeyFile, type SigningKeyFile } from '../../license/keys.js';

/** The committed TEST issuer (certified by the committed test root; trusted with ENCLAVE_LICENSE_MODE=test). */
export const TEST_ISSUER: SigningKeyFile = parseKeyFile(readFileSync(new URL('../../license/keys/test/issuer.key.json', import.meta.url), 'utf8'));
export const TEST_ROOT: SigningKeyFile = parseKeyFile(readFileSync(new URL('../../license/keys/test/root.key.json', import.meta.url), 'utf8'));

export const DAY = 86_400_000;

/** A licence spec with generous defaults; override anything. */
export function spec(over: Partial<LicenseSpec> = {}, nowMs = Date.now()): LicenseSpec {
  return {
    seq: 1,
    sub: { customer_id: 'acme', name: 'Acme Corp' },
    plan: 'enterprise',
    capabilities: ['sso.oidc', 'sso.saml', 'multi_tenant', 'rag'],
    limits: { seats: { max: 10, tolerance_pct: 0 }, tenants: { max: 3 }, tokens_month: { max: 1000, mode: 'hard', lapsed_max: 100 } },
    term: { expires_at: new Date(nowMs + 365 * DAY).toISOString(), grace_days: 14 },
    iat: Math.floor(nowMs / 1000) - 60,
    ...over,
  };
}

/** Issues a test licence (armoured text). */
export function testLicense(over: Partial<LicenseSpec> = {}, nowMs = Date.now(), issuer: SigningKeyFile = TEST_ISSUER): string {
  return issueLicense(issuer, spec(over, nowMs), { now: nowMs }).text;
}
