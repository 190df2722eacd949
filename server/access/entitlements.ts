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
}

export const unrestricted: Entitlements = {
  hasFeature: () => true,
  checkGrowth: () => undefined,
};

export function growthRefusal(kind: GrowthKind, limit: number, current: number): AppError {
  const code = kind === 'seats' ? 'seat_limit' : kind === 'tenants' ? 'tenant_limit' : 'key_limit';
  return new AppError(409, code, `The licence allows ${limit} ${kind}; ${current} are in use.`, {
    type: 'conflict_error',
    details: { limit, current },
  });
}
