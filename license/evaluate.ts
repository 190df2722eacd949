import { COMMUNITY, KNOWN_CAPABILITIES } from './entitlements-model.js';
import { BOUNDARIES, type Boundary, type LicensePayload } from './payload.js';

export type LicenseState = 'unlicensed' | 'valid' | 'expiring' | 'grace' | 'lapsed' | 'invalid';
export type GrowthKind = 'seats' | 'tenants' | 'keys';

export interface Usage {
  readonly seats: number;
  readonly tenants: number;
  readonly keys: number;
  /** Tokens used this calendar month (UTC), when known. */
  readonly tokensMonth?: number;
}

export interface EffectiveLimits {
  /** null = unlimited. Seats include the licence's tolerance. */
  readonly seats: number | null;
  readonly tenants: number | null;
  readonly keys: number | null;
  readonly tokensMonth: { readonly max: number; readonly mode: 'soft' | 'hard' } | null;
  readonly boundaries: readonly Boundary[];
}

export interface Banner {
  readonly level: 'info' | 'warning' | 'critical';
  readonly audience: 'admins' | 'all';
  readonly dismissible: boolean;
  readonly message: string;
}

export interface OverLimit {
  readonly kind: GrowthKind | 'tokens_month';
  readonly limit: number;
  readonly current: number;
  readonly guidance: string;
}

export interface Evaluation {
  readonly state: LicenseState;
  readonly now: string;
  readonly plan: string;
  readonly licence?: {
    readonly lid: string;
    readonly seq: number;
    readonly customer: { readonly id: string; readonly name: string };
    readonly installation: string;
    readonly environment: string;
    readonly expiresAt: string;
    readonly graceEndsAt: string;
    readonly daysRemaining: number;
  };
  readonly capabilities: readonly string[];
  readonly limits: EffectiveLimits;
  /** false in `lapsed`: no new seats, tenants or keys. */
  readonly growth: boolean;
  readonly overLimit: readonly OverLimit[];
  readonly banner?: Banner;
  /** Why the newest licence was not used (invalid, not yet valid); the state then comes from the last-known-good or community. */
  readonly problem?: { readonly code: string; readonly message: string };
}

const DAY = 86_400_000;
/** `expiring` starts this long before expiry (banners at 60/30/14/7/1 days). */
export const EXPIRING_WINDOW_DAYS = 60;
const CLOCK_DRIFT_MS = 5 * 60_000;

/**
 * The one licence state machine. Pure: the licence (already verified), the usage and the
 * (trusted) time in; state, entitlements, banner and over-limit report out.
 *   unlicensed → valid → expiring (T-60 d) → grace (expiry … expiry+grace_days, everything works) → lapsed (no growth)
 * `problem` without a licence gives `invalid` with community entitlements; with a licence
 * (the last-known-good) the state is that licence's, and the problem is reported.
 */
export function evaluate(
  licence: LicensePayload | undefined,
  usage: Usage,
  nowMs: number,
  problem?: { code: string; message: string },
): Evaluation {
  const now = new Date(nowMs).toISOString();
  if (licence && licence.nbf * 1000 > nowMs + CLOCK_DRIFT_MS) {
    return evaluate(undefined, usage, nowMs, {
      code: 'not_yet_valid',
      message: `the installed licence is valid from ${new Date(licence.nbf * 1000).toISOString()}; until then community limits apply`,
    });
  }
  if (!licence) {
    const limits: EffectiveLimits = { ...COMMUNITY.limits };
    const state: LicenseState = problem ? 'invalid' : 'unlicensed';
    return {
      state,
      now,
      plan: COMMUNITY.plan,
      capabilities: [...COMMUNITY.capabilities].sort(),
      limits,
      growth: true,
      overLimit: overLimits(limits, usage, true),
      banner: problem
        ? { level: 'critical', audience: 'admins', dismissible: false, message: `Licence problem: ${problem.message}. Community limits apply until a valid licence is installed.` }
        : { level: 'info', audience: 'admins', dismissible: true, message: 'No licence installed: community edition (1 tenant, 5 seats, local and private providers).' },
      ...(problem ? { problem } : {}),
    };
  }

  const expires = Date.parse(licence.term.expires_at);
  const graceEnds = expires + licence.term.grace_days * DAY;
  let state: LicenseState;
  if (nowMs >= graceEnds) state = 'lapsed';
  else if (nowMs >= expires) state = 'grace';
  else if (nowMs >= expires - EXPIRING_WINDOW_DAYS * DAY) state = 'expiring';
  else state = 'valid';
  const daysRemaining = Math.ceil((expires - nowMs) / DAY);

  const known = new Set<string>(KNOWN_CAPABILITIES);
  const capabilities = [...new Set(licence.capabilities.filter((c) => known.has(c)))].sort();
  const l = licence.limits;
  const tokens = l.tokens_month
    ? { max: state === 'lapsed' ? l.tokens_month.lapsed_max : l.tokens_month.max, mode: state === 'lapsed' ? ('hard' as const) : l.tokens_month.mode }
    : null;
  const limits: EffectiveLimits = {
    seats: l.seats ? Math.floor((l.seats.max * (100 + l.seats.tolerance_pct)) / 100) : null,
    tenants: l.tenants ? l.tenants.max : null,
    keys: l.keys ? l.keys.max : null,
    tokensMonth: tokens,
    boundaries: l.boundaries ?? [...BOUNDARIES],
  };
  const growth = state !== 'lapsed';
  const expiresIso = new Date(expires).toISOString();
  const banner = bannerFor(state, daysRemaining, expiresIso, new Date(graceEnds).toISOString(), problem);
  return {
    state,
    now,
    plan: licence.plan,
    licence: {
      lid: licence.lid,
      seq: licence.seq,
      customer: { id: licence.sub.customer_id, name: licence.sub.name },
      installation: licence.aud.installation,
      environment: licence.aud.environment,
      expiresAt: expiresIso,
      graceEndsAt: new Date(graceEnds).toISOString(),
      daysRemaining,
    },
    capabilities,
    limits,
    growth,
    overLimit: overLimits(limits, usage, growth),
    ...(banner ? { banner } : {}),
    ...(problem ? { problem } : {}),
  };
}

function bannerFor(state: LicenseState, days: number, expires: string, graceEnds: string, problem?: { message: string }): Banner | undefined {
  if (problem) {
    return { level: 'critical', audience: 'admins', dismissible: false, message: `The newest licence could not be used (${problem.message}); the previous licence stays in force.` };
  }
  switch (state) {
    case 'expiring':
      return {
        level: days <= 1 ? 'critical' : days <= 14 ? 'warning' : 'info',
        audience: 'admins',
        dismissible: days > 14,
        message: `The licence expires in ${days} day${days === 1 ? '' : 's'} (${expires}). Everything keeps working; install a renewal to avoid the grace period.`,
      };
    case 'grace':
      return { level: 'critical', audience: 'admins', dismissible: false, message: `The licence expired on ${expires}. Everything keeps working until ${graceEnds}; then no new users, tenants or keys can be added.` };
    case 'lapsed':
      return {
        level: 'critical',
        audience: 'all',
        dismissible: false,
        message: `The licence lapsed on ${graceEnds}. All data, logins and existing users keep working; adding users, tenants and keys is paused until a renewal is installed.`,
      };
    default:
      return undefined;
  }
}

function overLimits(limits: EffectiveLimits, usage: Usage, growth: boolean): OverLimit[] {
  const out: OverLimit[] = [];
  const check = (kind: GrowthKind, limit: number | null, current: number, what: string, fix: string): void => {
    if (limit !== null && current > limit) {
      out.push({ kind, limit, current, guidance: `${current} ${what} in use, the licence allows ${limit}: new ${what} are blocked${growth ? '' : ' (lapsed)'}; ${fix}. Nothing is removed.` });
    }
  };
  check('seats', limits.seats, usage.seats, 'seats', 'deactivate users or install a licence with more seats');
  check('tenants', limits.tenants, usage.tenants, 'tenants', 'suspend tenants or install a licence with more tenants');
  check('keys', limits.keys, usage.keys, 'keys', 'revoke unused keys or install a licence with more keys');
  if (limits.tokensMonth && usage.tokensMonth !== undefined && usage.tokensMonth > limits.tokensMonth.max) {
    out.push({
      kind: 'tokens_month',
      limit: limits.tokensMonth.max,
      current: usage.tokensMonth,
      guidance: limits.tokensMonth.mode === 'hard' ? 'the monthly token allowance is used up: AI calls are refused until the month resets' : 'the monthly token allowance is exceeded (soft: calls continue, report it at renewal)',
    });
  }
  return out;
}

/** Start of the next UTC calendar month: when a monthly token allowance resets. */
export function nextMonthStart(nowMs: number): number {
  const d = new Date(nowMs);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}
