import { LicenseError } from './errors.js';
import type { PublicKeyInfo, RootKey } from './keys.js';
import { PRODUCTION_ROOTS } from './keys/roots.js';
import { SHIPPED_REVOCATIONS, type RevocationList } from './keys/revocations.js';
import { TEST_ROOTS } from './keys/test-roots.js';

/**
 * production: only the roots shipped in license/keys/roots.ts.
 * test: those plus the committed test root (whose private half is in the repository, so
 * anyone can mint licences for it). Never set in production; it is logged loudly and
 * shown in readiness and status.
 */
export type LicenseMode = 'production' | 'test';

export interface TrustStore {
  readonly mode: LicenseMode;
  readonly roots: ReadonlyMap<string, RootKey>;
  readonly revokedKids: ReadonlySet<string>;
  readonly revokedLids: ReadonlySet<string>;
  /** Highest revocation list sequence merged in. */
  readonly revocationSeq: number;
}

export function trustStore(
  mode: LicenseMode,
  opts: { roots?: readonly RootKey[]; revocations?: readonly RevocationList[] } = {},
): TrustStore {
  const roots = new Map<string, RootKey>();
  const list = opts.roots ?? (mode === 'test' ? [...PRODUCTION_ROOTS, ...TEST_ROOTS] : PRODUCTION_ROOTS);
  for (const r of list) if (mode === 'test' || r.trust === 'production') roots.set(r.kid, r);
  const lists = [SHIPPED_REVOCATIONS, ...(opts.revocations ?? [])];
  return {
    mode,
    roots,
    revokedKids: new Set(lists.flatMap((l) => l.kids)),
    revokedLids: new Set(lists.flatMap((l) => l.lids)),
    revocationSeq: Math.max(...lists.map((l) => l.seq)),
  };
}

export function trustedRoot(store: TrustStore, kid: string): RootKey {
  if (store.revokedKids.has(kid)) throw new LicenseError('key_revoked', `root key ${kid} has been revoked`);
  const root = store.roots.get(kid);
  if (!root) {
    const hint = store.mode === 'production' && TEST_ROOTS.some((r) => r.kid === kid)
      ? ': it is the test root, trusted only with ENCLAVE_LICENSE_MODE=test (a licence for testing, not for production)'
      : ': the issuer certificate is not signed by a root this build trusts';
    throw new LicenseError('unknown_key', `unknown root key ${kid}${hint}`, { kid });
  }
  return root;
}

export function assertNotRevoked(store: TrustStore, key: PublicKeyInfo, what: string): void {
  if (store.revokedKids.has(key.kid)) throw new LicenseError('key_revoked', `${what} key ${key.kid} has been revoked`, { kid: key.kid });
}
