import { hash, randomBytes } from 'node:crypto';

/**
 * API key format: `enk_` + 43 base62 characters (32 random bytes) + 6 base62 characters of
 * checksum (CRC-32 of the body). The fixed prefix and checksum let secret scanners find
 * leaked keys and let us reject typos without a lookup. The first 8 body characters are
 * the visible prefix (`enk_AbCdEfGh`) that identifies the key in lists and logs.
 */
export const KEY_PREFIX = 'enk_';
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const BODY_LEN = 43;
const CHECK_LEN = 6;
export const VISIBLE_LEN = 8;
const SHAPE = new RegExp(`^${KEY_PREFIX}[0-9A-Za-z]{${BODY_LEN + CHECK_LEN}}$`);

function base62(bytes: Buffer, len: number): string {
  let n = BigInt('0x' + bytes.toString('hex'));
  let out = '';
  for (let i = 0; i < len; i++) {
    out = BASE62[Number(n % 62n)] + out;
    n /= 62n;
  }
  return out;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

function crc32(s: string): number {
  let c = 0xffffffff;
  for (let i = 0; i < s.length; i++) c = CRC_TABLE[(c ^ s.charCodeAt(i)) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function checksum(body: string): string {
  let n = crc32(body);
  let out = '';
  for (let i = 0; i < CHECK_LEN; i++) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

export interface GeneratedKey {
  readonly secret: string;
  readonly prefix: string;
  readonly hash: string;
}

export function generateKey(): GeneratedKey {
  // 32 bytes = 256 bits; 43 base62 digits hold up to 256.03 bits, so nothing is lost.
  const body = base62(randomBytes(32), BODY_LEN);
  const secret = `${KEY_PREFIX}${body}${checksum(body)}`;
  return { secret, prefix: visiblePrefix(secret), hash: hashKey(secret) };
}

export function visiblePrefix(secret: string): string {
  return secret.slice(0, KEY_PREFIX.length + VISIBLE_LEN);
}

/** SHA-256 of the whole secret (hex). The secret has 256 bits of entropy, so a fast hash is sound. */
export function hashKey(secret: string): string {
  return hash('sha256', secret, 'hex');
}

/** {@link hashKey} as bytes, for the constant-time compare on every API call (one-shot `crypto.hash`: no Hash object, no hex round trip). */
export function hashKeyBytes(secret: string): Buffer {
  return hash('sha256', secret, 'buffer');
}

export type ParseResult = { ok: true; prefix: string } | { ok: false; reason: 'malformed' | 'checksum' };

/** Shape and checksum check, without any lookup. */
export function parseKey(secret: string): ParseResult {
  if (secret.length !== KEY_PREFIX.length + BODY_LEN + CHECK_LEN || !SHAPE.test(secret)) {
    return { ok: false, reason: 'malformed' };
  }
  const body = secret.slice(KEY_PREFIX.length, KEY_PREFIX.length + BODY_LEN);
  if (checksum(body) !== secret.slice(KEY_PREFIX.length + BODY_LEN)) return { ok: false, reason: 'checksum' };
  return { ok: true, prefix: visiblePrefix(secret) };
}
