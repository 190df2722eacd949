import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Entitlements } from '../access/entitlements.js';
import type { Clock } from '../clock.js';
import type { RequestContext } from '../context.js';
import { requireTenant } from '../context.js';
import type { MeteringRepo } from '../db/repos/metering.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import type { Revision } from '../identity/revision.js';
import type { Metrics } from '../metrics/registry.js';
import { formatReset, monthWindow, parseLimits, type AdmissionLimit, type Level, type Limits, type MonthWindow } from './limits.js';
import type { PlanService, TenantMetering } from './plans.js';
import { levelKeys, MemoryStore, RedisStore, type AdmitInput, type AdmitOutcome, type CounterStore, type LevelSpec, type LevelStats } from './store.js';

/**
 * Admission: the one limit check every spending route passes ("Limit", DESIGN.md §4 step 3).
 *
 *   key → user → tenant (plan) → licence; every level that applies must pass, the most
 *   restrictive wins. A refusal names the level, the limit and the reset time.
 *
 * admit() reserves the estimate (prompt + max_tokens, and its cost) at every level in one
 * Redis round trip (store.ts); settle() corrects by the actual usage and frees the
 * concurrency slot, release() is settle with nothing used. When Redis is unavailable the
 * deployment's failure mode decides: fail-open (default) counts in this process (rate
 * limits approximate, monthly budgets from the SQLite ledger), fail-closed answers 503.
 */
export interface AdmitRequest {
  /** The model (alias) asked for. */
  readonly model?: string | null;
  /** Prompt tokens (estimate) + max_tokens. */
  readonly estimateTokens: number;
  readonly estimateCostMicros?: number;
}

export interface Reservation {
  readonly id: string;
  readonly ctx: RequestContext;
  readonly tenantId: string;
  readonly window: MonthWindow;
  readonly levels: readonly LevelSpec[];
  readonly masks: readonly number[];
  readonly est: number;
  readonly estCost: number;
  /** Where the counters live: none = no limit applied (nothing to settle but the licence). */
  readonly store: 'redis' | 'memory' | 'none';
  /** OpenAI's x-ratelimit-* headers (set them on the response). */
  readonly headers: Readonly<Record<string, string>>;
  settled: boolean;
}

export type FailureMode = 'fail-open' | 'fail-closed';

export interface AdmissionDeps {
  readonly repo: MeteringRepo;
  readonly plans: PlanService;
  readonly revision: Revision;
  readonly redis: Redis;
  readonly metrics: Metrics;
  readonly clock: Clock;
  readonly log: Logger;
  readonly entitlements: () => Entitlements;
  readonly failureMode: FailureMode;
  /** Concurrency slots of a crashed process free themselves after this long. */
  readonly concurrencyTtlMs?: number;
  /** Writes pending usage records so the ledger is current before a counter is seeded from it. */
  readonly flushLedger?: () => void;
  /** Called after settlement with the tenant's month usage (soft-limit alerts). */
  readonly onSettled?: (r: Reservation, tenantTokens: number, tenantCost: number) => void;
}

interface Resolved {
  at: number;
  tenant: TenantMetering;
  levels: LevelSpec[];
}

const LEVEL_ORDER: Record<Level, number> = { key: 0, user: 1, tenant: 2, licence: 3 };

export class Admission {
  private readonly redisStore: RedisStore;
  readonly memory = new MemoryStore();
  private readonly resolved = new Map<string, Resolved>();
  private readonly subjectLimits = new Map<string, Limits | null>();
  private readonly windows = new Map<string, MonthWindow>();
  private degraded = false;
  /** Redis keys to delete (re-seed from the ledger) and slots to free once Redis is back. */
  private readonly dirty = new Set<string>();
  private readonly pendingSlots: [string, string][] = [];
  private licence = { month: '', at: 0, ledger: 0, settled: 0, reserved: 0 };
  private readonly ttl: number;

  constructor(private readonly d: AdmissionDeps) {
    this.redisStore = new RedisStore(d.redis);
    this.ttl = d.concurrencyTtlMs ?? 10 * 60_000;
    d.revision.onChange(() => this.clear());
  }

  clear(): void {
    this.resolved.clear();
    this.subjectLimits.clear();
  }

  get redisDegraded(): boolean {
    return this.degraded;
  }

  // ---- limits per request ------------------------------------------------------------------

  private subject(tenantId: string, type: 'user' | 'key', id: string): Limits | null {
    const k = `${tenantId}|${type}|${id}`;
    let l = this.subjectLimits.get(k);
    if (l === undefined) {
      const json = this.d.repo.limits(tenantId, type, id);
      l = json ? parseLimits(json) : null;
      this.subjectLimits.set(k, l);
    }
    return l;
  }

  private resolve(tenantId: string, userId: string | undefined, keyId: string | undefined): Resolved {
    const k = `${tenantId}|${userId ?? ''}|${keyId ?? ''}`;
    const now = Date.now();
    const c = this.resolved.get(k);
    if (c && now - c.at < 500) return c;
    const tenant = this.d.plans.tenant(tenantId);
    if (!tenant) throw new AppError(404, 'not_found', 'tenant not found');
    const levels: LevelSpec[] = [];
    const add = (level: LevelSpec['level'], id: string, l: Limits | null): void => {
      if (!l) return;
      const spec: LevelSpec = {
        level,
        id,
        rpm: l.requests_per_minute ?? -1,
        tpm: l.tokens_per_minute ?? -1,
        conc: l.concurrent_requests ?? -1,
        mtok: l.monthly_tokens ?? -1,
        mcost: l.monthly_cost_micros ?? -1,
      };
      if (spec.rpm >= 0 || spec.tpm >= 0 || spec.conc >= 0 || spec.mtok >= 0 || spec.mcost >= 0) levels.push(spec);
    };
    if (keyId) add('key', keyId, this.subject(tenantId, 'key', keyId));
    if (userId) add('user', userId, this.subject(tenantId, 'user', userId));
    add('tenant', tenantId, tenant.plan.limits);
    const r = { at: now, tenant, levels };
    this.resolved.set(k, r);
    return r;
  }

  window(tz: string, now: number): MonthWindow {
    let w = this.windows.get(tz);
    if (!w || now < w.start || now >= w.end) {
      w = monthWindow(now, tz);
      this.windows.set(tz, w);
    }
    return w;
  }

  // ---- admit / settle ----------------------------------------------------------------------

  async admit(ctx: RequestContext, req: AdmitRequest): Promise<Reservation> {
    const tenantRef = requireTenant(ctx);
    const now = this.d.clock.now();
    const p = ctx.principal;
    const est = Math.max(0, Math.ceil(req.estimateTokens));
    const estCost = Math.max(0, Math.ceil(req.estimateCostMicros ?? 0));
    const { tenant, levels } = this.resolve(tenantRef.id, p?.userId, p?.keyId);
    const window = this.window(tenant.timezone, now);

    const warning = this.checkLicence(now, est);

    const id = newId('rsv', now); // from the pooled CSPRNG: a randomBytes() call here cost ≈14 µs per call
    if (!levels.length) {
      this.licence.reserved += est;
      return { id, ctx, tenantId: tenant.id, window, levels, masks: [], est, estCost, store: 'none', headers: warning ? { [LICENSE_WARNING_HEADER]: warning } : NO_HEADERS, settled: false };
    }
    const input: AdmitInput = { now, rid: id, tenantId: tenant.id, est, estCost, monthId: counterId(window), monthEnd: window.end, concurrencyTtlMs: this.ttl, levels };
    const { outcome, store } = await this.run(input, tenant);
    if (outcome.ok !== true) {
      if (outcome.ok === 'seed') throw new AppError(503, 'rate_limiter_unavailable', 'Usage counters could not be initialised; try again.');
      const spec = levels[outcome.levelIdx]!;
      this.d.metrics.quotaRefusals.labels(spec.level, outcome.limit).inc();
      throw refusal(spec, outcome.limit, outcome.retryMs, now);
    }
    this.licence.reserved += est;
    this.d.metrics.ratelimitAdmissions.labels(store).inc();
    const headers = headersFor(levels, outcome.stats);
    if (warning) headers[LICENSE_WARNING_HEADER] = warning;
    return { id, ctx, tenantId: tenant.id, window, levels, masks: outcome.masks, est, estCost, store, headers, settled: false };
  }

  /** Corrects the reservation by the actual usage (tokens, cost) and frees its concurrency slot. Never throws. */
  async settle(r: Reservation, actualTokens: number, actualCostMicros: number): Promise<void> {
    if (r.settled) return;
    r.settled = true;
    this.licence.reserved = Math.max(0, this.licence.reserved - r.est);
    this.licence.settled += Math.max(0, actualTokens);
    if (r.store === 'none') return;
    const input = {
      now: this.d.clock.now(),
      rid: r.id,
      tenantId: r.tenantId,
      monthId: counterId(r.window),
      levels: r.levels,
      masks: r.masks,
      est: r.est,
      estCost: r.estCost,
      actual: Math.max(0, Math.round(actualTokens)),
      actualCost: Math.max(0, Math.round(actualCostMicros)),
    };
    try {
      let out;
      if (r.store === 'redis') {
        try {
          out = await this.redisStore.settle(input);
        } catch (e) {
          // Redis went away after admission: the ledger has the truth; re-seed its counters later.
          this.markDown(e);
          for (const l of r.levels) {
            const k = levelKeys(r.tenantId, l, counterId(r.window));
            this.dirty.add(k[3]!).add(k[4]!);
            this.pendingSlots.push([k[2]!, r.id]);
          }
          return;
        }
      } else out = this.memory.settle(input);
      this.d.onSettled?.(r, out.tenantTokens, out.tenantCost);
    } catch (e) {
      this.d.log.error({ err: (e as Error).message }, 'usage settlement failed');
    }
  }

  release(r: Reservation): Promise<void> {
    return this.settle(r, 0, 0);
  }

  // ---- licence level ---------------------------------------------------------------------

  /** Refuses past a hard licence allowance; returns the soft-mode warning (80 %, over 100 %) when there is one. */
  private checkLicence(now: number, est: number): string | undefined {
    const ent = this.d.entitlements();
    if (!ent.checkTokens) return undefined;
    const w = this.window('UTC', now);
    const L = this.licence;
    if (L.month !== w.id || now - L.at > 30_000) {
      this.d.flushLedger?.();
      L.ledger = this.d.repo.installationTokens(w.start, w.end);
      L.settled = 0;
      L.month = w.id;
      L.at = now;
    }
    const adm = ent.checkTokens(L.ledger + L.settled + L.reserved, est);
    if (adm.allowed) return adm.warning;
    const reset = w.end;
    this.d.metrics.quotaRefusals.labels('licence', 'monthly_tokens').inc();
    const e = adm.error;
    throw new AppError(e.status, e.code, e.message, {
      type: e.type,
      headers: { ...(e.headers ?? {}), 'retry-after': String(Math.max(1, Math.ceil((reset - now) / 1000))), 'retry-after-ms': String(reset - now) },
      details: { level: 'licence', limit: 'monthly_tokens', limit_value: adm.limit, reset: new Date(reset).toISOString() },
    });
  }

  // ---- stores and failure mode -------------------------------------------------------------

  private async run(input: AdmitInput, tenant: TenantMetering): Promise<{ outcome: AdmitOutcome; store: 'redis' | 'memory' }> {
    if (this.redisStore.ready) {
      try {
        if (this.dirty.size || this.pendingSlots.length || this.memory.touched.size) await this.reconcile();
        const outcome = await this.withSeeds(this.redisStore, input, tenant);
        this.markUp();
        return { outcome, store: 'redis' };
      } catch (e) {
        if (e instanceof AppError) throw e;
        this.markDown(e);
      }
    } else this.markDown();
    if (this.d.failureMode === 'fail-closed') {
      this.d.metrics.ratelimitUnavailable.labels('refused').inc();
      throw new AppError(503, 'rate_limiter_unavailable', 'The rate limiter (Redis) is unavailable and this deployment fails closed; try again shortly.', { headers: { 'retry-after': '1' } });
    }
    this.d.metrics.ratelimitUnavailable.labels('fail_open').inc();
    return { outcome: await this.withSeeds(this.memory, input, tenant), store: 'memory' };
  }

  private async withSeeds(store: CounterStore, input: AdmitInput, tenant: TenantMetering): Promise<AdmitOutcome> {
    let outcome = await store.admit(input);
    for (let i = 0; i < 2 && outcome.ok === 'seed'; i++) {
      this.d.flushLedger?.();
      const w = this.window(tenant.timezone, input.now);
      const values = outcome.missing.map((m) => {
        const l = input.levels[m.levelIdx]!;
        const u = this.d.repo.usageSince(tenant.id, w.start, w.end, l.level === 'tenant' ? undefined : { type: l.level, id: l.id });
        return { ...m, value: m.kind === 'tokens' ? u.tokens : u.cost };
      });
      await store.seed(input, values);
      outcome = await store.admit(input);
    }
    return outcome;
  }

  /** Redis is back: drop counters that changed while it was away (they re-seed from the ledger) and free stale slots. */
  private async reconcile(): Promise<void> {
    const keys = [...this.dirty, ...this.memory.touched];
    const slots = this.pendingSlots.splice(0);
    const p = this.d.redis.pipeline();
    if (keys.length) p.del(...keys);
    for (const [k, id] of slots) p.zrem(k, id);
    await p.exec();
    this.dirty.clear();
    this.memory.touched.clear();
    this.memory.resetCounters();
    this.d.flushLedger?.();
  }

  private markDown(e?: unknown): void {
    if (this.degraded) return;
    this.degraded = true;
    this.d.metrics.ratelimitDegraded.set(1);
    this.d.log.warn(
      { err: (e as Error | undefined)?.message, mode: this.d.failureMode },
      this.d.failureMode === 'fail-open'
        ? 'rate limiter: redis unavailable; failing open (per-process rate limits, budgets from the ledger)'
        : 'rate limiter: redis unavailable; failing closed (503 rate_limiter_unavailable)',
    );
  }

  private markUp(): void {
    if (!this.degraded) return;
    this.degraded = false;
    this.d.metrics.ratelimitDegraded.set(0);
    this.d.log.info('rate limiter: redis available again; exact limits resumed');
  }
}

/** Monthly counters are named by month and start instant, so a time-zone change starts fresh counters (seeded from the ledger). */
function counterId(w: MonthWindow): string {
  return `${w.id}@${w.start}`;
}

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});
/** Set on admitted /v1 calls while the licence's soft allowance warns: `license_quota_80` or `license_quota_exceeded_soft`. */
export const LICENSE_WARNING_HEADER = 'x-enclave-license-warning';

function headersFor(levels: readonly LevelSpec[], stats: readonly LevelStats[]): Record<string, string> {
  const h: Record<string, string> = {};
  let r = -1;
  let t = -1;
  stats.forEach((s, i) => {
    if (s.rpmRemaining !== -1 || levels[i]!.rpm >= 0) if (r < 0 || s.rpmRemaining < stats[r]!.rpmRemaining) r = i;
    if (s.tpmRemaining !== -1 || levels[i]!.tpm >= 0) if (t < 0 || s.tpmRemaining < stats[t]!.tpmRemaining) t = i;
  });
  if (r >= 0) {
    h['x-ratelimit-limit-requests'] = String(levels[r]!.rpm);
    h['x-ratelimit-remaining-requests'] = String(Math.max(0, stats[r]!.rpmRemaining));
    h['x-ratelimit-reset-requests'] = formatReset(stats[r]!.rpmResetMs);
  }
  if (t >= 0) {
    h['x-ratelimit-limit-tokens'] = String(levels[t]!.tpm);
    h['x-ratelimit-remaining-tokens'] = String(Math.max(0, stats[t]!.tpmRemaining));
    h['x-ratelimit-reset-tokens'] = formatReset(stats[t]!.tpmResetMs);
  }
  return h;
}

const LIMIT_VALUE: Record<AdmissionLimit, keyof LevelSpec> = {
  requests_per_minute: 'rpm',
  tokens_per_minute: 'tpm',
  concurrent_requests: 'conc',
  monthly_tokens: 'mtok',
  monthly_cost_micros: 'mcost',
};

const WHAT: Record<AdmissionLimit, string> = {
  requests_per_minute: 'requests per minute',
  tokens_per_minute: 'tokens per minute',
  concurrent_requests: 'concurrent requests',
  monthly_tokens: 'monthly token budget',
  monthly_cost_micros: 'monthly cost budget',
};

/** 429 naming level, limit and reset: quota_exceeded (monthly budgets) or rate_limit_exceeded. */
export function refusal(spec: LevelSpec, limit: AdmissionLimit, retryMs: number, now: number): AppError {
  const monthly = limit === 'monthly_tokens' || limit === 'monthly_cost_micros';
  const value = spec[LIMIT_VALUE[limit]] as number;
  const reset = new Date(now + retryMs).toISOString();
  const headers: Record<string, string> = { 'retry-after': String(Math.max(1, Math.ceil(retryMs / 1000))), 'retry-after-ms': String(Math.max(0, Math.ceil(retryMs))) };
  if (limit === 'requests_per_minute') {
    headers['x-ratelimit-limit-requests'] = String(value);
    headers['x-ratelimit-remaining-requests'] = '0';
    headers['x-ratelimit-reset-requests'] = formatReset(retryMs);
  } else if (limit === 'tokens_per_minute') {
    headers['x-ratelimit-limit-tokens'] = String(value);
    headers['x-ratelimit-remaining-tokens'] = '0';
    headers['x-ratelimit-reset-tokens'] = formatReset(retryMs);
  }
  const who = spec.level === 'tenant' ? "the tenant's plan" : spec.level === 'user' ? 'your user' : 'this API key';
  const message = monthly
    ? `The ${WHAT[limit]} of ${who} (${value}${limit === 'monthly_cost_micros' ? ' micro-units' : ' tokens'}) is used up; it resets at ${reset}.`
    : `The ${WHAT[limit]} limit of ${who} (${value}) is reached; retry after ${reset}.`;
  return new AppError(429, monthly ? 'quota_exceeded' : 'rate_limit_exceeded', message, {
    type: monthly ? 'quota_error' : 'rate_limit_error',
    headers,
    details: { level: spec.level, limit, limit_value: value, reset },
  });
}

export function levelRank(l: Level): number {
  return LEVEL_ORDER[l];
}
