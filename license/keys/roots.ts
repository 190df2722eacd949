import type { RootKey } from '../keys.js';

/**
 * The production roots this build trusts: public halves only. Their private halves never
 * enter this repository (offline, HSM or air-gapped machine). Two are shipped: the
 * current root and a pre-rotated next one, so a root can be retired without a gap.
 */
export const PRODUCTION_ROOTS: readonly RootKey[] = [
  { kid: 'root-762428607a4db675f9fc', alg: 'EdDSA', publicKey: 'nYjsmnaa8SDxAtsUYj8_rG8JfL6JCcDlUeclL8rZ368', trust: 'production', note: 'production root 1 (current)' },
  { kid: 'root-62a88bc19761afe0dd50', alg: 'EdDSA', publicKey: 'ThW_Un5MrhCSHDzmnCwdEsMx8whz_3xE9YXTbIM_oF0', trust: 'production', note: 'production root 2 (pre-rotated next)' },
];
