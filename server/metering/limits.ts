import { z } from 'zod';

/**
 * Limit names shared by plans (tenant level), per-user and per-key overrides. Absent or
 * null = no limit at that level. Costs are integer micro-units of the price currency.
 */
export const LIMIT_NAMES = [
  'monthly_tokens',
  'monthly_cost_micros',
  'requests_per_minute',
  'tokens_per_minute',
  'concurrent_requests',
  'max_keys',
  'max_active_jobs',
] as const;
export type LimitName = (typeof LIMIT_NAMES)[number];

const lim = z.number().int().min(0).nullable().optional();
export const limitsSchema = z
  .object({
    monthly_tokens: lim,
    monthly_cost_micros: lim,
    requests_per_minute: lim,
    tokens_per_minute: lim,
    concurrent_requests: lim,
    max_keys: lim,
    max_active_jobs: lim,
  })
  .strict();
export type Limits = z.infer<typeof limitsSchema>;

export const CAPABILITIES = ['cloud_providers', 'batch_api', 'content_logging', 'self_service_keys', 'custom_providers'] as const;
export type Capability = (typeof CAPABILITIES)[number];

export type Level = 'key' | 'user' | 'team' | 'tenant' | 'licence';
/** The limits the admission engine enforces per request (the others are enforced where things are created). */
export const ADMISSION_LIMITS = ['requests_per_minute', 'tokens_per_minute', 'concurrent_requests', 'monthly_tokens', 'monthly_cost_micros'] as const;
export type AdmissionLimit = (typeof ADMISSION_LIMITS)[number];

export function parseLimits(json: string | null | undefined): Limits {
  if (!json) return {};
  try {
    const r = limitsSchema.safeParse(JSON.parse(json));
    return r.success ? r.data : {};
  } catch {
    return {};
  }
}

/** Drops null/undefined entries (for output). */
export function compactLimits(l: Limits): Partial<Record<LimitName, number>> {
  const out: Partial<Record<LimitName, number>> = {};
  for (const n of LIMIT_NAMES) {
    const v = l[n];
    if (typeof v === 'number') out[n] = v;
  }
  return out;
}

// ---- calendar-month windows ---------------------------------------------------------------

export interface MonthWindow {
  /** YYYY-MM in the window's time zone. */
  readonly id: string;
  /** Epoch ms of the first instant of the month. */
  readonly start: number;
  /** Epoch ms of the first instant of the next month (the reset time). */
  readonly end: number;
}

export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const fmtCache = new Map<string, Intl.DateTimeFormat>();
function fmt(tz: string): Intl.DateTimeFormat {
  let f = fmtCache.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: tz, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
    fmtCache.set(tz, f);
  }
  return f;
}

/** Offset (ms) of `tz` from UTC at instant `t`: local wall time minus UTC. */
export function tzOffset(t: number, tz: string): number {
  if (tz === 'UTC') return 0;
  const parts: Record<string, number> = {};
  for (const p of fmt(tz).formatToParts(new Date(t))) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  const wall = Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!, parts.second!);
  return wall - Math.floor(t / 1000) * 1000;
}

/** The instant at which the wall clock in `tz` shows y-m-01 00:00. */
function zonedMonthStart(y: number, m: number, tz: string): number {
  const guess = Date.UTC(y, m, 1);
  let t = guess - tzOffset(guess, tz);
  // One correction step covers DST transitions between the guess and the answer.
  const t2 = guess - tzOffset(t, tz);
  if (t2 !== t) t = t2;
  return t;
}

/** The calendar month containing `now` in time zone `tz` (UTC by default). */
export function monthWindow(now: number, tz = 'UTC'): MonthWindow {
  const local = new Date(now + tzOffset(now, tz));
  const y = local.getUTCFullYear();
  const m = local.getUTCMonth();
  return {
    id: `${y}-${String(m + 1).padStart(2, '0')}`,
    start: zonedMonthStart(y, m, tz),
    end: zonedMonthStart(m === 11 ? y + 1 : y, m === 11 ? 0 : m + 1, tz),
  };
}

/** The window of a YYYY-MM month id in `tz`. */
export function monthById(id: string, tz = 'UTC'): MonthWindow {
  const m = /^(\d{4})-(\d{2})$/.exec(id);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 12) throw new Error(`not a month: ${id} (use YYYY-MM)`);
  const y = Number(m[1]);
  const mo = Number(m[2]) - 1;
  return { id, start: zonedMonthStart(y, mo, tz), end: zonedMonthStart(mo === 11 ? y + 1 : y, mo === 11 ? 0 : mo + 1, tz) };
}

/** OpenAI's reset duration format: 20ms, 1s, 1.5s, 6m0s, 1h2m3s. */
export function formatReset(ms: number): string {
  const v = Math.max(0, Math.ceil(ms));
  if (v < 1000) return `${v}ms`;
  let s = v / 1000;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const sec = `${Number(s.toFixed(3))}s`;
  return h ? `${h}h${m}m${sec}` : m ? `${m}m${sec}` : sec;
}
