import { LicenseError } from './errors.js';

const B64URL = /^[A-Za-z0-9_-]*$/;

/**
 * Strict base64url (RFC 4648 §5, no padding): only the URL alphabet, no `=`, no length
 * that cannot occur, and canonical trailing bits (re-encoding gives the same text), so
 * one byte string has exactly one accepted spelling.
 */
export function b64uDecode(text: string, what: string): Buffer {
  if (!B64URL.test(text) || text.length % 4 === 1) {
    throw new LicenseError('bad_base64url', `${what} is not valid base64url`);
  }
  const bytes = Buffer.from(text, 'base64url');
  if (bytes.toString('base64url') !== text) throw new LicenseError('bad_base64url', `${what} is not canonical base64url`);
  return bytes;
}

export function b64uEncode(bytes: Uint8Array | string): string {
  return Buffer.from(bytes).toString('base64url');
}

/**
 * JSON.parse that refuses duplicate object keys (at any depth) and a top level other
 * than an object. JSON.parse silently keeps the last duplicate, which would let two
 * verifiers read one signed payload differently.
 */
export function strictJsonObject(bytes: Buffer, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new LicenseError('bad_json', `${what} is not UTF-8`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new LicenseError('bad_json', `${what} is not JSON`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new LicenseError('bad_json', `${what} is not a JSON object`);
  }
  const dup = findDuplicateKey(text);
  if (dup !== undefined) throw new LicenseError('duplicate_json_key', `${what} repeats the key "${dup}"`);
  return value as Record<string, unknown>;
}

/** Scans already-valid JSON text; returns the first key repeated within one object. */
function findDuplicateKey(text: string): string | undefined {
  const stack: (Set<string> | null)[] = [];
  let i = 0;
  let expectKey = false;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.has(key)) return key;
        top.add(key);
        expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (c === '{') {
      stack.push(new Set());
      expectKey = true;
    } else if (c === '[') {
      stack.push(null);
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',') {
      expectKey = stack[stack.length - 1] instanceof Set;
    }
    i++;
  }
  return undefined;
}
