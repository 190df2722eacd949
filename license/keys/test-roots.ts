import type { RootKey } from '../keys.js';

/**
 * The TEST root. Its private half is committed (license/keys/test/root.key.json) so tests
 * and demos can mint licences, which is why it is trusted only when
 * ENCLAVE_LICENSE_MODE=test. A production build never accepts it.
 */
export const TEST_ROOTS: readonly RootKey[] = [
  { kid: 'root-b7d806aaa84ac582902d', alg: 'EdDSA', publicKey: '9fFEtHybyZbuYRP8QW2uJbnN59l-wFZDWWwjbDEFzuc', trust: 'test', note: 'TEST root: private half is public, never trust in production' },
];
