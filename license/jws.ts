import { sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { b64uDecode, b64uEncode, strictJsonObject } from './encoding.js';
import { LicenseError } from './errors.js';
import { publicKeyObject, type PublicKeyInfo } from './keys.js';

/**
 * A strict profile of JWS compact serialization (RFC 7515) for Ed25519 only.
 * - The header has exactly the members the `typ` allows; `crit`, `jku`, `x5u`, `jwk`,
 *   `x5c`, `b64`, `zip` and anything else unexpected are refused.
 * - `alg` is checked, never used to choose: the key found by `kid` fixes the algorithm,
 *   and `alg` must equal it. `none` and HMAC are refused outright.
 * - The signature covers the exact transmitted `header.payload` bytes; the payload is
 *   parsed from those bytes, never re-serialized.
 */
export interface JwsParts {
  readonly header: Record<string, unknown>;
  readonly alg: string;
  readonly kid: string;
  readonly payload: Buffer;
  readonly signingInput: Buffer;
  readonly signature: Buffer;
}

const FORBIDDEN = new Set(['crit', 'jku', 'x5u', 'jwk', 'x5c', 'x5t', 'x5t#S256', 'b64', 'zip', 'enc', 'cty']);
export const MAX_COMPACT_BYTES = 64 * 1024;

export function signCompact(header: Record<string, unknown>, payload: Buffer, key: KeyObject): string {
  const h = b64uEncode(JSON.stringify(header));
  const p = b64uEncode(payload);
  const sig = cryptoSign(null, Buffer.from(`${h}.${p}`, 'ascii'), key);
  return `${h}.${p}.${b64uEncode(sig)}`;
}

/** A detached signature (RFC 7515 Appendix F): signs header.payload, transmits header..signature. */
export function signDetachedCompact(header: Record<string, unknown>, payload: Buffer, key: KeyObject): string {
  const h = b64uEncode(JSON.stringify(header));
  const sig = cryptoSign(null, Buffer.from(`${h}.${b64uEncode(payload)}`, 'ascii'), key);
  return `${h}..${b64uEncode(sig)}`;
}

export interface ParseOptions {
  /** The exact `typ` value. */
  readonly typ: string;
  /** Header members besides alg, typ and kid that must be present. */
  readonly extra: readonly string[];
  /** For a detached signature: the payload bytes (the compact payload segment must be empty). */
  readonly detachedPayload?: Buffer;
  readonly what: string;
}

export function parseCompact(compact: string, opts: ParseOptions): JwsParts {
  if (compact.length > MAX_COMPACT_BYTES) throw new LicenseError('too_large', `${opts.what} is larger than ${MAX_COMPACT_BYTES} bytes`);
  const parts = compact.split('.');
  if (parts.length !== 3) throw new LicenseError('malformed', `${opts.what} must have three dot-separated parts (JWS compact), found ${parts.length}`);
  const [h, p, s] = parts as [string, string, string];
  if (h === '' || s === '') throw new LicenseError('malformed', `${opts.what} has an empty header or signature`);
  const header = strictJsonObject(b64uDecode(h, `${opts.what} header`), `${opts.what} header`);
  checkHeader(header, opts);
  let payload: Buffer;
  if (opts.detachedPayload) {
    if (p !== '') throw new LicenseError('malformed', `${opts.what} must be detached (empty payload part)`);
    payload = opts.detachedPayload;
  } else {
    if (p === '') throw new LicenseError('malformed', `${opts.what} has an empty payload`);
    payload = b64uDecode(p, `${opts.what} payload`);
  }
  const signature = b64uDecode(s, `${opts.what} signature`);
  const signingInput = Buffer.from(`${h}.${opts.detachedPayload ? b64uEncode(payload) : p}`, 'ascii');
  return { header, alg: header.alg as string, kid: header.kid as string, payload, signingInput, signature };
}

function checkHeader(header: Record<string, unknown>, opts: ParseOptions): void {
  const alg = header.alg;
  if (typeof alg !== 'string') throw new LicenseError('bad_header', `${opts.what} header has no alg`);
  if (alg.toLowerCase() === 'none' || /^HS\d+$/i.test(alg)) {
    throw new LicenseError('alg_not_allowed', `${opts.what} uses alg "${alg}", which is never accepted`);
  }
  if (alg !== 'EdDSA') throw new LicenseError('alg_not_allowed', `${opts.what} uses alg "${alg}"; only EdDSA (Ed25519) is accepted`);
  for (const k of Object.keys(header)) {
    if (FORBIDDEN.has(k)) throw new LicenseError('header_param_not_allowed', `${opts.what} header must not contain "${k}"`);
    if (k !== 'alg' && k !== 'typ' && k !== 'kid' && !opts.extra.includes(k)) {
      throw new LicenseError('header_param_not_allowed', `${opts.what} header has an unexpected member "${k}"`);
    }
  }
  if (header.typ !== opts.typ) throw new LicenseError('wrong_type', `${opts.what} header typ must be "${opts.typ}"`);
  if (typeof header.kid !== 'string' || header.kid === '') throw new LicenseError('bad_header', `${opts.what} header has no kid`);
  for (const k of opts.extra) {
    if (typeof header[k] !== 'string' || header[k] === '') throw new LicenseError('bad_header', `${opts.what} header has no ${k}`);
  }
}

/** Verifies the signature with the key the kid resolved to; its algorithm must equal the header's. */
export function verifyParts(parts: JwsParts, key: PublicKeyInfo, what: string): void {
  if (parts.alg !== key.alg) throw new LicenseError('alg_not_allowed', `${what}: alg ${parts.alg} does not match key ${key.kid} (${key.alg})`);
  if (parts.signature.length !== 64) throw new LicenseError('bad_signature', `${what}: an Ed25519 signature has 64 bytes`);
  let ok = false;
  try {
    ok = cryptoVerify(null, parts.signingInput, publicKeyObject(key.publicKey), parts.signature);
  } catch {
    ok = false;
  }
  if (!ok) throw new LicenseError('bad_signature', `${what}: the signature does not verify with key ${key.kid}`);
}
