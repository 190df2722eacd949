import { randomFillSync } from 'node:crypto';

/** Random bytes for ids, refilled from the CSPRNG 4 KiB at a time (one syscall per 256 ids); each byte is used once. */
const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let poolAt = POOL_SIZE;

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'; // Crockford base32, lower case

/**
 * Prefixed, time-sortable ids (`ten_…`, `usr_…`, `req_…`): 10 characters of millisecond
 * time, then 16 random characters (80 bits), so ids sort by creation and never collide
 * in practice.
 */
export function newId(prefix: string, now = Date.now()): string {
  let time = '';
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  if (poolAt + 16 > POOL_SIZE) {
    randomFillSync(pool);
    poolAt = 0;
  }
  let tail = '';
  for (let i = poolAt, end = poolAt + 16; i < end; i++) tail += ALPHABET[pool[i]! & 31];
  poolAt += 16;
  return `${prefix}_${time}${tail}`;
}

export function isId(prefix: string, value: string): boolean {
  return new RegExp(`^${prefix}_[0-9a-hjkmnp-tv-z]{26}$`).test(value);
}
