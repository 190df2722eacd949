import { createHash } from 'node:crypto';
import { dearmor } from './armor.js';
import { resolveIssuer, type VerifiedIssuer } from './cert.js';
import { strictJsonObject } from './encoding.js';
import { LicenseError } from './errors.js';
import { parseCompact, verifyParts } from './jws.js';
import { licensePayloadSchema, type LicenseEnvironment, type LicensePayload } from './payload.js';
import type { TrustStore } from './trust.js';

export const LICENSE_TYP = 'enclave-license+jws;v=1';
export const PRODUCT = 'enclave';

export interface VerifiedLicense {
  readonly payload: LicensePayload;
  /** The armoured text as given. */
  readonly text: string;
  /** SHA-256 of the compact JWS: identifies this exact licence. */
  readonly fingerprint: string;
  readonly issuerKid: string;
  readonly rootKid: string;
  /** 'test' when it chains to the committed test root (only accepted in test mode). */
  readonly rootTrust: 'production' | 'test';
}

export interface VerifyContext {
  readonly store: TrustStore;
  /** This installation's id; undefined skips the audience installation check (inspect). */
  readonly installationId?: string;
  /** This installation's environment; a non_production licence is refused on production. */
  readonly environment?: LicenseEnvironment;
}

/**
 * Verifies a licence file completely and offline: armour, strict JWS header, issuer
 * certificate chained to a trusted root, nothing revoked, issuer valid at `iat`, signature
 * over the exact bytes, payload schema, product, environment and installation. Time-based
 * state (not yet valid, expiring, grace, lapsed) is evaluate()'s job, so this is pure.
 * Throws LicenseError; never anything else for bad input.
 */
export function verifyLicense(text: string, ctx: VerifyContext): VerifiedLicense {
  const compact = dearmor(text);
  const parts = parseCompact(compact, { typ: LICENSE_TYP, extra: ['ic'], what: 'licence' });
  // The issuer's validity is checked at the licence's iat, so read iat before trusting the payload;
  // a forged iat gains nothing because the signature is verified with that issuer right after.
  const body = strictJsonObject(parts.payload, 'licence payload');
  const iat = typeof body.iat === 'number' && Number.isInteger(body.iat) ? body.iat : NaN;
  if (Number.isNaN(iat)) throw new LicenseError('bad_payload', 'licence payload has no integer iat');
  const chain: VerifiedIssuer = resolveIssuer(parts.header.ic as string, parts.kid, iat, ctx.store);
  verifyParts(parts, chain.issuer, 'licence');

  const parsed = licensePayloadSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new LicenseError('bad_payload', `licence payload is invalid at ${issue?.path.join('.') || '(root)'}: ${issue?.message}`);
  }
  const payload = parsed.data;
  if (ctx.store.revokedLids.has(payload.lid)) {
    throw new LicenseError('license_revoked', `licence ${payload.lid} has been revoked; ask your vendor for a replacement`, { lid: payload.lid });
  }
  if (payload.aud.product !== PRODUCT) {
    throw new LicenseError('wrong_product', `this licence is for "${payload.aud.product}", not Enclave`);
  }
  if (ctx.environment === 'production' && payload.aud.environment !== 'production') {
    throw new LicenseError('environment_mismatch', 'this is a non-production licence and this installation is production (ENCLAVE_LICENSE_ENVIRONMENT)', {
      licence: payload.aud.environment,
      installation: ctx.environment,
    });
  }
  if (ctx.installationId !== undefined && payload.aud.installation !== '*' && payload.aud.installation !== ctx.installationId) {
    throw new LicenseError(
      'installation_mismatch',
      `this licence is for installation ${payload.aud.installation}, but this is installation ${ctx.installationId}; send \`enclave license request\` output to your vendor`,
      { licence: payload.aud.installation, installation: ctx.installationId },
    );
  }
  return {
    payload,
    text,
    fingerprint: createHash('sha256').update(compact).digest('hex'),
    issuerKid: chain.issuer.kid,
    rootKid: chain.rootKid,
    rootTrust: chain.rootTrust,
  };
}
