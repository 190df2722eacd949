import { LicenseError } from './errors.js';

export const ARMOR_BEGIN = '-----BEGIN ENCLAVE LICENSE-----';
export const ARMOR_END = '-----END ENCLAVE LICENSE-----';
/** Largest licence file accepted (the text, before anything else is looked at). */
export const MAX_LICENSE_FILE_BYTES = 64 * 1024;

/** Wraps a compact JWS in the armour, 64 columns, LF line ends. */
export function armor(compact: string): string {
  const lines = compact.match(/.{1,64}/g) ?? [];
  return `${ARMOR_BEGIN}\n${lines.join('\n')}\n${ARMOR_END}\n`;
}

/**
 * Extracts the compact JWS from a licence file. Tolerates CRLF, any wrapping, leading
 * and trailing whitespace and text around the armour (a pasted e-mail); refuses a missing
 * header or footer, a second licence, or a body with characters outside base64url and '.'.
 */
export function dearmor(text: string): string {
  if (Buffer.byteLength(text, 'utf8') > MAX_LICENSE_FILE_BYTES) {
    throw new LicenseError('too_large', `the licence file is larger than ${MAX_LICENSE_FILE_BYTES / 1024} KiB; it is not an Enclave licence`);
  }
  const begin = text.indexOf(ARMOR_BEGIN);
  if (begin < 0) {
    throw new LicenseError('armor_missing_header', `not an Enclave licence: the line ${ARMOR_BEGIN} is missing (copy the whole file)`);
  }
  const end = text.indexOf(ARMOR_END, begin);
  if (end < 0) {
    throw new LicenseError('armor_missing_footer', `the licence is truncated: the line ${ARMOR_END} is missing (copy the whole file)`);
  }
  if (text.indexOf(ARMOR_BEGIN, begin + ARMOR_BEGIN.length) >= 0) {
    throw new LicenseError('armor_invalid', 'the file holds more than one licence; install one at a time');
  }
  const body = text.slice(begin + ARMOR_BEGIN.length, end).replace(/\s+/g, '');
  if (body === '') throw new LicenseError('armor_invalid', 'the licence body is empty');
  if (!/^[A-Za-z0-9_.-]+$/.test(body)) {
    throw new LicenseError('armor_invalid', 'the licence body holds characters that are not base64url (was it edited or re-encoded by a mail program?)');
  }
  return body;
}
