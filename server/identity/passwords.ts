import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { AppError } from '../errors.js';

/**
 * Password hashing with scrypt (node:crypto). Stored as
 * `scrypt$<logN>$<r>$<p>$<salt b64>$<hash b64>`, so the cost travels with the hash and can
 * be raised later without breaking existing passwords.
 *
 * Production cost: N = 2^15, r = 8, p = 1 (32 MiB, ≈ 50–100 ms on this class of machine),
 * the OWASP-recommended minimum for scrypt. Tests inject a lower logN through
 * createServices({ passwordLogN }) only.
 */
export const DEFAULT_LOG_N = 15;
const R = 8;
const P = 1;
const KEYLEN = 32;

function scryptAsync(password: string, salt: Buffer, keylen: number, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password.normalize('NFKC'), salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

const opts = (logN: number, r: number, p: number): ScryptOptions => ({
  N: 2 ** logN,
  r,
  p,
  maxmem: 256 * 2 ** logN * r + 1024 * 1024,
});

export async function hashPassword(password: string, logN = DEFAULT_LOG_N): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scryptAsync(password, salt, KEYLEN, opts(logN, R, P));
  return `scrypt$${logN}$${R}$${P}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** Constant-time comparison; false for any malformed stored value. */
export async function verifyPassword(password: string, stored: string | null): Promise<boolean> {
  if (!stored) return false;
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [logN, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (![logN, r, p].every((n) => Number.isInteger(n) && n > 0) || logN > 22) return false;
  const salt = Buffer.from(parts[4]!, 'base64');
  const expected = Buffer.from(parts[5]!, 'base64');
  if (expected.length !== KEYLEN) return false;
  const actual = await scryptAsync(password, salt, KEYLEN, opts(logN, r, p));
  return timingSafeEqual(actual, expected);
}

/** A hash of a random password, verified against when the account does not exist (equal timing). */
let dummy: Promise<string> | undefined;
export function dummyHash(logN: number): Promise<string> {
  dummy ??= hashPassword(randomBytes(16).toString('hex'), logN);
  return dummy;
}

/**
 * Well-known passwords: the ~49,000-entry list of common and breached passwords that
 * @zxcvbn-ts/language-common ships (src/passwords.json, MIT), read from node_modules on the
 * first check (no download, no network), plus a few of our own. Loaded lazily so the CLI
 * and processes that never check a password do not pay for it.
 */
const OWN = ['administrator', 'changemechangeme', 'enclave12345', 'enclaveenclave', 'p@ssw0rd1234'];
let common: Set<string> | undefined;
export function commonPasswords(): Set<string> {
  if (!common) {
    const file = createRequire(import.meta.url).resolve('@zxcvbn-ts/language-common/src/passwords.json');
    const list = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    if (!Array.isArray(list) || list.length < 10_000) throw new Error(`the common-password list at ${file} is missing or too short`);
    common = new Set([...(list as string[]).map((p) => String(p).toLowerCase()), ...OWN]);
  }
  return common;
}

/**
 * Whether a password is a well-known one or a trivial stretch of one: the password itself,
 * the password without trailing digits/symbols ("password1234!"), without leading ones
 * ("2024dragon…"), and a repeated word ("qwertyqwerty") are looked up.
 */
export function isCommonPassword(password: string): boolean {
  const list = commonPasswords();
  const lower = password.toLowerCase();
  const variants = new Set([lower, lower.replace(/[^a-z]+$/, ''), lower.replace(/^[^a-z]+/, ''), lower.replace(/^[^a-z]+|[^a-z]+$/g, '')]);
  for (let n = 1; n <= lower.length / 2; n++) {
    if (lower.length % n === 0 && lower.slice(0, n).repeat(lower.length / n) === lower) variants.add(lower.slice(0, n));
  }
  for (const v of variants) if (v.length >= 4 && list.has(v)) return true;
  return false;
}

/**
 * The password policy: 12–256 characters, at least 6 distinct characters, not a well-known
 * password, and not the account's e-mail address. Returns a refusal, or undefined.
 */
export function checkPasswordPolicy(password: string, email?: string): AppError | undefined {
  const refuse = (why: string): AppError =>
    new AppError(400, 'password_policy', `Password refused: ${why}.`, { param: 'password' });
  if (typeof password !== 'string') return refuse('it must be a string');
  const len = [...password].length;
  if (len < 12) return refuse('use at least 12 characters');
  if (len > 256) return refuse('use at most 256 characters');
  if (new Set(password).size < 6) return refuse('use at least 6 different characters');
  const lower = password.toLowerCase();
  if (isCommonPassword(password)) return refuse('it is a well-known or breached password (or one with a few characters added)');
  if (email && (lower === email.toLowerCase() || lower === email.toLowerCase().split('@')[0])) {
    return refuse('it must not be your e-mail address');
  }
  return undefined;
}
