import { AppError } from '../errors.js';

/**
 * What the installed licence allows. authorize() and every growth path (users, tenants,
 * keys) ask this interface; the licence module implements it. Until a licence module is
 * wired in, `unrestricted` allows everything.
 */
export type GrowthKind = 'seats' | 'tenants' | 'keys';

export interface Entitlements {
  /** Whether a licence capability is on. Unknown capabilities are off. */
  hasFeature(feature: string): boolean;
  /**
   * The refusal for adding one more `kind` when `current` already exist (409 `seat_limit`,
   * `tenant_limit`, `key_limit`, or `license_lapsed`), or undefined when it is allowed.
   */
  checkGrowth(kind: GrowthKind, current: number): AppError | undefined;
  /**
   * Gateway admission against the licence's monthly token allowance (installation-wide):
   * `usedThisMonth` (ledger + in-flight reservations) plus `requested` (the estimate).
   * Hard mode refuses with 429 `license_quota_exceeded` (Retry-After = month reset); soft
   * mode admits with a warning at 80 % and above 100 %. The caller reserves the estimate, then settles actual usage.
   */
  checkTokens?(usedThisMonth: number, requested: number): TokenAdmission;
  /** Whether providers of this data boundary may be configured (community: local and private). */
  allowsBoundary?(boundary: 'local' | 'private' | 'public'): boolean;
  /** The licence state for banners and headers (X-License-State). */
  licenseState?(): { state: string; testMode: boolean; clockSuspect: boolean };
}

export type TokenAdmission =
  | { readonly allowed: true; readonly limit: number | null; readonly warning?: 'license_quota_80' | 'license_quota_exceeded_soft' }
  | { readonly allowed: false; readonly limit: number; readonly error: AppError };

export const unrestricted: Entitlements = {
  hasFeature: () => true,
  checkGrowth: () => undefined,
  checkTokens: () => ({ allowed: true, limit: null }),
  allowsBoundary: () => true,
  licenseState: () => ({ state: 'unrestricted', testMode: false, clockSuspect: false }),
};

export function growthRefusal(kind: GrowthKind, limit: number, current: number): AppError {
  const code = kind === 'seats' ? 'seat_limit' : kind === 'tenants' ? 'tenant_limit' : 'key_limit';
  return new AppError(409, code, `The licence allows ${limit} ${kind}; ${current} are in use.`, {
    type: 'conflict_error',
    details: { limit, current },
  });
}
