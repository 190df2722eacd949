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
import { child, type Metrics } from '../metrics/registry.js';
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
  /**
   * Admitted without waiting for Redis (every limit far from reached): the reservation's
   * own answer, which settlement waits for (masks, store) before correcting it.
   */
  readonly unconfirmed?: Promise<{ outcome: AdmitOutcome; store: 'redis' | 'memory' }>;
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

/**
 * Admission without waiting (the hot path's one Redis round trip, ≈ 0.15–0.2 ms of a call's
 * latency on a 2-core VM). A call still reserves in Redis, by the same script, sent with this
 * event-loop turn's deferred work; it only does not wait for the answer when the last answer for
 * each of its levels (at most SNAPSHOT_MAX_AGE_MS old), less what this process reserved since
 * without an answer, leaves every limit of the level far from reached: at least HEADROOM of
 * the per-minute and concurrency limits (MONTH_HEADROOM of monthly budgets) and many times
 * this call's need. Near a limit every call waits, so refusals stay exact; far from it, the
 * most another process's traffic can add unseen is what it sends within one round trip.
 * Never in fail-closed mode, and never on the in-process fallback store.
 */
const SNAPSHOT_MAX_AGE_MS = 1000;
const HEADROOM = 0.1;
const MONTH_HEADROOM = 0.02;
const MIN_SPARE_REQUESTS = 20;
const MIN_SPARE_NEEDS = 10;
const MAX_UNCONFIRMED = 256;
const MAX_SNAPSHOTS = 20_000;

/** A level's counters as of Redis's last answer, and this process's reservations since then still without one. */
interface LevelSnapshot {
  at: number;
  monthId: string;
  stats: LevelStats;
  count: number;
  tokens: number;
  cost: number;
}

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
  /** Per level (`tenant|level|id`): the last Redis answer, for admission without waiting. */
  private readonly snapshots = new Map<string, LevelSnapshot>();

  constructor(private readonly d: AdmissionDeps) {
    this.redisStore = new RedisStore(d.redis);
    this.ttl = d.concurrencyTtlMs ?? 10 * 60_000;
    d.revision.onChange(() => this.clear());
  }

  clear(): void {
    this.resolved.clear();
    this.subjectLimits.clear();
    // Limits may have changed: the next call of each level waits for fresh counters.
    this.snapshots.clear();
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
    const snaps = this.farFromLimits(tenant.id, levels, input);
    if (snaps) {
      // Reserve without waiting for the answer.
      for (const sn of snaps) {
        sn.count++;
        sn.tokens += est;
        sn.cost += estCost;
      }
      // Sent with the rest of this event-loop turn's deferred work, after the upstream request
      // went out: the script's encoding and write are off the call's critical path.
      const unconfirmed = this.run(input, tenant, true).then(
        (got) => {
          this.confirmed(tenant.id, levels, snaps, est, estCost, got, input.monthId);
          if (got.outcome.ok === false) {
            // Another process's traffic used the headroom within one round trip: this call was already on its way.
            this.d.metrics.ratelimitUnconfirmedOver.inc();
            this.d.log.warn({ tenantId: tenant.id, limit: got.outcome.limit }, 'rate limiter: a call admitted without waiting went over a limit (counted; later calls wait)');
          }
          return got;
        },
        (e: unknown) => {
          this.confirmed(tenant.id, levels, snaps, est, estCost, undefined, input.monthId);
          throw e;
        },
      );
      unconfirmed.catch(() => {}); // settlement reads it; a failure must not be unhandled before then
      this.licence.reserved += est;
      child(this.d.metrics.ratelimitAdmissions, 'redis_unconfirmed').inc();
      const headers = headersFor(levels, snaps.map((sn) => projected(sn)));
      if (warning) headers[LICENSE_WARNING_HEADER] = warning;
      return { id, ctx, tenantId: tenant.id, window, levels, masks: [], est, estCost, store: 'redis', headers, unconfirmed, settled: false };
    }
    const got = await this.run(input, tenant);
    const { outcome, store } = got;
    this.observe(tenant.id, levels, got, input.monthId, now);
    if (outcome.ok !== true) {
      if (outcome.ok === 'seed') throw new AppError(503, 'rate_limiter_unavailable', 'Usage counters could not be initialised; try again.');
      const spec = levels[outcome.levelIdx]!;
      this.d.metrics.quotaRefusals.labels(spec.level, outcome.limit).inc();
      throw refusal(spec, outcome.limit, outcome.retryMs, now);
    }
    this.licence.reserved += est;
    child(this.d.metrics.ratelimitAdmissions, store).inc();
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
    let store = r.store;
    let masks = r.masks;
    let reserved = true;
    if (r.unconfirmed) {
      try {
        const got = await r.unconfirmed;
        store = got.store;
        if (got.outcome.ok === true) masks = got.outcome.masks;
        else reserved = false; // refused after all: nothing was reserved, charge what was used
      } catch (e) {
        this.d.log.error({ err: (e as Error).message }, 'usage settlement failed: the reservation has no answer');
        return;
      }
    }
    const input = {
      now: this.d.clock.now(),
      rid: r.id,
      tenantId: r.tenantId,
      monthId: counterId(r.window),
      levels: r.levels,
      masks: reserved ? masks : r.levels.map(() => 0),
      est: reserved ? r.est : 0,
      estCost: reserved ? r.estCost : 0,
      actual: Math.max(0, Math.round(actualTokens)),
      actualCost: Math.max(0, Math.round(actualCostMicros)),
    };
    try {
      let out;
      if (store === 'redis') {
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

  // ---- admission without waiting ----------------------------------------------------------

  /** The snapshots of every level when each is far from its limits for this call; else undefined (wait). */
  private farFromLimits(tenantId: string, levels: readonly LevelSpec[], i: AdmitInput): LevelSnapshot[] | undefined {
    if (this.d.failureMode !== 'fail-open' || this.degraded || !this.redisStore.ready) return undefined;
    const out: LevelSnapshot[] = [];
    for (const l of levels) {
      const sn = this.snapshots.get(snapshotKey(tenantId, l));
      if (!sn || sn.monthId !== i.monthId || i.now - sn.at > SNAPSHOT_MAX_AGE_MS || sn.count >= MAX_UNCONFIRMED) return undefined;
      const st = sn.stats;
      const spare = (left: number, limit: number, share: number, need: number, minSpare: number): boolean => left - need >= Math.max(limit * share, minSpare);
      if (l.rpm >= 0 && !spare(st.rpmRemaining - sn.count, l.rpm, HEADROOM, 1, MIN_SPARE_REQUESTS)) return undefined;
      if (l.tpm >= 0 && !spare(st.tpmRemaining - sn.tokens, l.tpm, HEADROOM, i.est, MIN_SPARE_NEEDS * i.est)) return undefined;
      if (l.conc >= 0 && (st.inFlight < 0 || !spare(l.conc - st.inFlight - sn.count, l.conc, HEADROOM, 1, MIN_SPARE_REQUESTS))) return undefined;
      if (l.mtok >= 0 && (st.monthTokens < 0 || !spare(l.mtok - st.monthTokens - sn.tokens, l.mtok, MONTH_HEADROOM, i.est, MIN_SPARE_NEEDS * i.est))) return undefined;
      if (l.mcost >= 0 && (st.monthCost < 0 || !spare(l.mcost - st.monthCost - sn.cost, l.mcost, MONTH_HEADROOM, i.estCost, MIN_SPARE_NEEDS * i.estCost))) return undefined;
      out.push(sn);
    }
    return out;
  }

  /**
   * Keeps Redis's answer per level when it admitted; anything else — a refusal, counters not
   * seeded, the in-process store, no answer — means this process's view of those levels is
   * out of date, and their next calls wait.
   */
  private observe(tenantId: string, levels: readonly LevelSpec[], got: { outcome: AdmitOutcome; store: string } | undefined, monthId: string, at: number): void {
    if (got?.store !== 'redis' || got.outcome.ok !== true) {
      for (const l of levels) this.snapshots.delete(snapshotKey(tenantId, l));
      return;
    }
    const stats = got.outcome.stats;
    // Bounded: one entry per key, user and tenant that calls; past the bound, start over (the next call of each level waits once).
    if (this.snapshots.size > MAX_SNAPSHOTS) this.snapshots.clear();
    levels.forEach((l, idx) => {
      const k = snapshotKey(tenantId, l);
      const sn = this.snapshots.get(k);
      if (sn) {
        sn.at = at;
        sn.monthId = monthId;
        sn.stats = stats[idx]!;
      } else this.snapshots.set(k, { at, monthId, stats: stats[idx]!, count: 0, tokens: 0, cost: 0 });
    });
  }

  /** An unconfirmed reservation got its answer (or failed): no longer counted as pending. */
  private confirmed(tenantId: string, levels: readonly LevelSpec[], snaps: LevelSnapshot[], est: number, estCost: number, got: { outcome: AdmitOutcome; store: string } | undefined, monthId: string): void {
    for (const sn of snaps) {
      sn.count = Math.max(0, sn.count - 1);
      sn.tokens = Math.max(0, sn.tokens - est);
      sn.cost = Math.max(0, sn.cost - estCost);
    }
    this.observe(tenantId, levels, got, monthId, this.d.clock.now());
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

  private async run(input: AdmitInput, tenant: TenantMetering, later = false): Promise<{ outcome: AdmitOutcome; store: 'redis' | 'memory' }> {
    if (this.redisStore.ready) {
      try {
        if (this.dirty.size || this.pendingSlots.length || this.memory.touched.size) await this.reconcile();
        const outcome = await this.withSeeds(this.redisStore, input, tenant, later);
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

  private async withSeeds(store: CounterStore, input: AdmitInput, tenant: TenantMetering, later = false): Promise<AdmitOutcome> {
    let outcome = await store.admit(input, later);
    for (let i = 0; i < 2 && outcome.ok === 'seed'; i++) {
      this.d.flushLedger?.();
      const w = this.window(tenant.timezone, input.now);
      const values = outcome.missing.map((m) => {
        const l = input.levels[m.levelIdx]!;
        const u = this.d.repo.usageSince(tenant.id, w.start, w.end, l.level === 'tenant' ? undefined : { type: l.level, id: l.id });
        return { ...m, value: m.kind === 'tokens' ? u.tokens : u.cost };
      });
      await store.seed(input, values);
      outcome = await store.admit(input, later);
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

function snapshotKey(tenantId: string, l: LevelSpec): string {
  return `${tenantId}|${l.level}|${l.id}`;
}

/** A snapshot's counters less this process's reservations still without an answer (for the x-ratelimit-* headers). */
function projected(sn: LevelSnapshot): LevelStats {
  const s = sn.stats;
  return { ...s, rpmRemaining: s.rpmRemaining < 0 ? s.rpmRemaining : s.rpmRemaining - sn.count, tpmRemaining: s.tpmRemaining < 0 ? s.tpmRemaining : s.tpmRemaining - sn.tokens };
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
