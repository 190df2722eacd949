import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Entitlements } from '../access/entitlements.js';
import type { Clock } from '../clock.js';
import type { RequestContext, TeamGrant } from '../context.js';
import { requireTenant } from '../context.js';
import type { MeteringRepo } from '../db/repos/metering.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import type { Revision } from '../identity/revision.js';
import { child, type Metrics } from '../metrics/registry.js';
import { formatReset, monthWindow, parseLimits, type AdmissionLimit, type Level, type Limits, type MonthWindow } from './limits.js';
import type { PlanService, TenantMetering } from './plans.js';
import { IDLE_MS, LEASE_LOCAL_MS, leaseTargets, newLease, roomFor, SYNC_MS, syncLeases, type Lease, type SyncItem } from './leases.js';
import { levelKeys, MemoryStore, RedisStore, type AdmitInput, type AdmitOutcome, type CounterStore, type LevelSpec, type LevelStats } from './store.js';

/**
 * Admission: the one limit check every spending route passes ("Limit", DESIGN.md §4 step 3).
 *
 *   key → user → team → tenant (plan) → licence; every level that applies must pass, the most
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
  readonly store: 'redis' | 'memory' | 'lease' | 'none';
  /** OpenAI's x-ratelimit-* headers (set them on the response). */
  readonly headers: Readonly<Record<string, string>>;
  /** Admitted from this process's leases (one per level, in order): settled in process, declared at the next sync. */
  readonly leased?: readonly Lease[];
  /** Each level's counters after this admission (same order as levels): the per-level decision call traces record. */
  readonly stats?: readonly LevelStats[];
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
  readonly flushLedger?: () => Promise<void> | void;
  /** The team level's month usage from the ledger (usage_team_rollups), to seed its counters. */
  readonly teamUsage?: (tenantId: string, teamId: string, from: number, to: number) => Promise<{ tokens: number; cost: number }>;
  /** Called after settlement with the tenant's month usage (soft-limit alerts). */
  readonly onSettled?: (r: Reservation, tenantTokens: number, tenantCost: number) => void;
}

interface Resolved {
  at: number;
  tenant: TenantMetering;
  levels: LevelSpec[];
  /** Each level's lease key (`tenant|level|id`), built once per resolution rather than per call. */
  leaseKeys: string[];
}

const LEVEL_ORDER: Record<Level, number> = { key: 0, user: 1, team: 2, tenant: 3, licence: 4 };

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
  /** Per level (`tenant|level|id`): this process's lease (leases.ts). */
  private readonly leases = new Map<string, Lease>();
  /** Levels whose lease was refused recently (no new request before the time stored). */
  private readonly leaseBackoff = new Map<string, number>();
  private readonly proc = newId('prc');
  private syncTimer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;
  private syncSoon = false;

  constructor(private readonly d: AdmissionDeps) {
    this.redisStore = new RedisStore(d.redis);
    this.ttl = d.concurrencyTtlMs ?? 10 * 60_000;
    d.revision.onChange(() => this.clear());
  }

  clear(): void {
    this.resolved.clear();
    this.subjectLimits.clear();
    // Limits may have changed: leases stop admitting and go back at the next sync.
    for (const l of this.leases.values()) l.active = false;
    this.leaseBackoff.clear();
  }

  /** Levels this process holds an active lease for (tests, diagnostics). */
  get activeLeases(): number {
    let n = 0;
    for (const l of this.leases.values()) if (l.active && (l.fr > 0 || l.ft > 0 || l.fc > 0 || l.fm > 0 || l.fmc > 0)) n++;
    return n;
  }

  get redisDegraded(): boolean {
    return this.degraded;
  }

  // ---- limits per request ------------------------------------------------------------------

  private async subject(tenantId: string, type: 'user' | 'key', id: string): Promise<Limits | null> {
    const k = `${tenantId}|${type}|${id}`;
    let l = this.subjectLimits.get(k);
    if (l === undefined) {
      const json = await this.d.repo.limits(tenantId, type, id);
      l = json ? parseLimits(json) : null;
      this.subjectLimits.set(k, l);
    }
    return l;
  }

  /** The call's limits: from the cache (≤ 500 ms old, no database read, no await) or read. */
  private resolve(tenantId: string, userId: string | undefined, keyId: string | undefined, team: TeamGrant | undefined): Resolved | Promise<Resolved> {
    const k = team ? `${tenantId}|${userId ?? ''}|${keyId ?? ''}|${team.id}` : `${tenantId}|${userId ?? ''}|${keyId ?? ''}`;
    const now = Date.now();
    const c = this.resolved.get(k);
    if (c && now - c.at < 500) return c;
    return this.resolveFresh(k, now, tenantId, userId, keyId, team);
  }

  private async resolveFresh(k: string, now: number, tenantId: string, userId: string | undefined, keyId: string | undefined, team: TeamGrant | undefined): Promise<Resolved> {
    const tenant = await this.d.plans.tenantFresh(tenantId);
    if (!tenant) throw new AppError(404, 'not_found', 'tenant not found');
    const levels: LevelSpec[] = [];
    const add = (level: LevelSpec['level'], id: string, l: Limits | null, name?: string): void => {
      if (!l) return;
      const spec: LevelSpec = {
        level,
        id,
        ...(name !== undefined ? { name } : {}),
        rpm: l.requests_per_minute ?? -1,
        tpm: l.tokens_per_minute ?? -1,
        conc: l.concurrent_requests ?? -1,
        mtok: l.monthly_tokens ?? -1,
        mcost: l.monthly_cost_micros ?? -1,
      };
      if (spec.rpm >= 0 || spec.tpm >= 0 || spec.conc >= 0 || spec.mtok >= 0 || spec.mcost >= 0) levels.push(spec);
    };
    if (keyId) add('key', keyId, await this.subject(tenantId, 'key', keyId));
    if (userId) add('user', userId, await this.subject(tenantId, 'user', userId));
    if (team) add('team', team.id, team.limits, team.name);
    add('tenant', tenantId, tenant.plan.limits);
    const r = { at: now, tenant, levels, leaseKeys: levels.map((l) => `${tenantId}|${l.level}|${l.id}`) };
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
    const resolved = this.resolve(tenantRef.id, p?.userId, p?.keyId, p?.team);
    const { tenant, levels, leaseKeys } = resolved instanceof Promise ? await resolved : resolved;
    const window = this.window(tenant.timezone, now);

    if (this.licenceStale(now)) await this.readLicenceLedger(now);
    const warning = this.checkLicence(now, est);

    const id = newId('rsv', now); // from the pooled CSPRNG: a randomBytes() call here cost ≈14 µs per call
    if (!levels.length) {
      this.licence.reserved += est;
      return { id, ctx, tenantId: tenant.id, window, levels, masks: NO_MASKS, est, estCost, store: 'none', headers: warning ? { [LICENSE_WARNING_HEADER]: warning } : NO_HEADERS, settled: false };
    }
    const monthId = counterId(window);
    // The hot path far from every limit: in process, no Redis, nothing built for the exact path.
    const leased = this.fromLeases(levels, leaseKeys, monthId, est, estCost);
    if (leased) {
      this.licence.reserved += est;
      child(this.d.metrics.ratelimitAdmissions, 'lease').inc();
      const stats = leased.map((l) => l.stats);
      const headers = headersFor(levels, stats);
      if (warning) headers[LICENSE_WARNING_HEADER] = warning;
      return { id, ctx, tenantId: tenant.id, window, levels, masks: NO_MASKS, est, estCost, store: 'lease', headers, leased, stats, settled: false };
    }
    const input: AdmitInput = { now, rid: id, tenantId: tenant.id, est, estCost, monthId, monthEnd: window.end, concurrencyTtlMs: this.ttl, levels };
    const got = await this.run(input, tenant);
    const { outcome, store } = got;
    if (outcome.ok !== true) {
      if (outcome.ok === 'seed') throw new AppError(503, 'rate_limiter_unavailable', 'Usage counters could not be initialised; try again.');
      const spec = levels[outcome.levelIdx]!;
      this.d.metrics.quotaRefusals.labels(spec.level, outcome.limit).inc();
      throw refusal(spec, outcome.limit, outcome.retryMs, now);
    }
    this.licence.reserved += est;
    child(this.d.metrics.ratelimitAdmissions, store).inc();
    if (store === 'redis') this.maybeLease(tenant.id, levels, outcome.stats, input.monthId, est, estCost);
    const headers = headersFor(levels, outcome.stats);
    if (warning) headers[LICENSE_WARNING_HEADER] = warning;
    return { id, ctx, tenantId: tenant.id, window, levels, masks: outcome.masks, est, estCost, store, headers, stats: outcome.stats, settled: false };
  }

  /** Corrects the reservation by the actual usage (tokens, cost) and frees its concurrency slot. Never throws. */
  async settle(r: Reservation, actualTokens: number, actualCostMicros: number): Promise<void> {
    if (r.settled) return;
    r.settled = true;
    this.licence.reserved = Math.max(0, this.licence.reserved - r.est);
    this.licence.settled += Math.max(0, actualTokens);
    if (r.store === 'none') return;
    if (r.leased) {
      this.settleLeased(r, actualTokens, actualCostMicros);
      return;
    }
    const store = r.store;
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

  // ---- leases (leases.ts) -------------------------------------------------------------------

  private leasesUsable(): boolean {
    return this.d.failureMode === 'fail-open' && !this.degraded && this.redisStore.ready;
  }

  /** Admits from this process's leases when every level has one with enough left; else undefined (exact admission). */
  private fromLeases(levels: readonly LevelSpec[], keys: readonly string[], monthId: string, est: number, estCost: number): Lease[] | undefined {
    if (!this.leasesUsable() || !this.leases.size) return undefined;
    const now = Date.now();
    const out: Lease[] = [];
    for (let i = 0; i < levels.length; i++) {
      const l = levels[i]!;
      const ls = this.leases.get(keys[i]!);
      if (!ls || !ls.active || ls.monthId !== monthId || now > ls.okUntil || !sameLimits(ls.spec, l)) return undefined;
      if ((l.rpm >= 0 && ls.fr < 1) || (l.tpm >= 0 && ls.ft < est) || (l.conc >= 0 && ls.fc < 1) || (l.mtok >= 0 && ls.fm < est) || (l.mcost >= 0 && ls.fmc < estCost)) {
        this.requestSync(); // spent: top it up now
        return undefined;
      }
      out.push(ls);
    }
    for (const ls of out) {
      const l = ls.spec;
      ls.lastUsed = now;
      if (l.rpm >= 0) ls.fr--;
      if (l.tpm >= 0) ls.ft -= est;
      if (l.conc >= 0) {
        ls.fc--;
        ls.ic++;
      }
      if (l.mtok >= 0) {
        ls.fm -= est;
        ls.im += est;
      }
      if (l.mcost >= 0) {
        ls.fmc -= estCost;
        ls.imc += estCost;
      }
      const st = ls.stats;
      ls.stats = { ...st, rpmRemaining: st.rpmRemaining < 0 ? st.rpmRemaining : st.rpmRemaining - 1, tpmRemaining: st.tpmRemaining < 0 ? st.tpmRemaining : st.tpmRemaining - est };
    }
    return out;
  }

  private settleLeased(r: Reservation, actual: number, actualCost: number): void {
    const a = Math.max(0, Math.round(actual));
    const ac = Math.max(0, Math.round(actualCost));
    for (const ls of r.leased!) {
      const l = ls.spec;
      if (l.tpm >= 0) ls.ft += r.est - a;
      if (l.conc >= 0) {
        ls.fc++;
        ls.ic--;
      }
      if (l.mtok >= 0) {
        ls.im -= r.est;
        ls.fm += r.est - a;
      }
      ls.am += a;
      if (l.mcost >= 0) {
        ls.imc -= r.estCost;
        ls.fmc += r.estCost - ac;
      }
      ls.amc += ac;
      if (l.level === 'tenant') this.lastLeased.set(ls.key, r);
    }
  }

  /** The last call settled under each tenant-level lease (for soft-limit alerts after a sync). */
  private readonly lastLeased = new Map<string, Reservation>();

  /** After an exact admission far from every limit: ask for leases of its levels (in the background). */
  private maybeLease(tenantId: string, levels: readonly LevelSpec[], stats: readonly LevelStats[], monthId: string, est: number, estCost: number): void {
    if (!this.leasesUsable()) return;
    const now = Date.now();
    let asked = false;
    levels.forEach((l, i) => {
      const k = `${tenantId}|${l.level}|${l.id}`;
      const cur = this.leases.get(k);
      if (cur) return; // held or draining: a drained lease is removed by the sync, then a new one may be asked for
      if ((this.leaseBackoff.get(k) ?? 0) > now) return;
      const target = leaseTargets(l, est, estCost);
      if (!target || !roomFor(l, stats[i]!, target)) {
        this.leaseBackoff.set(k, now + SYNC_MS);
        return;
      }
      const ls = newLease(tenantId, l, monthId, target);
      ls.active = true; // wants a lease; admits only once granted (its free parts are 0 until then)
      ls.okUntil = now + LEASE_LOCAL_MS;
      this.leases.set(k, ls);
      asked = true;
    });
    if (asked) this.requestSync();
  }

  private requestSync(): void {
    if (this.syncing !== undefined) {
      this.syncSoon = true;
      return;
    }
    this.syncing = this.syncNow().finally(() => {
      this.syncing = undefined;
      if (this.syncSoon) {
        this.syncSoon = false;
        setImmediate(() => this.requestSync());
      }
    });
  }

  /** Starts the periodic bulk settlement (every SYNC_MS). */
  startLeases(): void {
    if (this.syncTimer) return;
    this.syncTimer = setInterval(() => {
      if (this.leases.size) this.requestSync();
    }, SYNC_MS);
    this.syncTimer.unref();
  }

  /** Returns every lease and declares all usage (shutdown). */
  async stopLeases(): Promise<void> {
    if (this.syncTimer) clearInterval(this.syncTimer);
    this.syncTimer = undefined;
    for (const l of this.leases.values()) l.active = false;
    await this.syncing;
    if (this.leases.size && this.redisStore.ready) await this.syncNow(true).catch(() => {});
  }

  /** One script call for every lease: declare usage, top up or return, refresh expiries. */
  private async syncNow(final = false): Promise<void> {
    if (!this.leases.size) return;
    const items: SyncItem[] = [];
    const now = Date.now();
    for (const ls of this.leases.values()) {
      if (ls.active && (now > ls.okUntil || now - ls.lastUsed > IDLE_MS)) ls.active = false; // unconfirmed for too long, or unused
      const l = ls.spec;
      const want = ls.active && !final;
      const zero = { r: 0, t: 0, c: 0, m: 0, mc: 0 };
      // Draining: everything free goes back. Active: top up what fell under half the target.
      const R = want ? zero : { r: Math.max(0, ls.fr), t: ls.ft, c: Math.max(0, ls.fc), m: ls.fm, mc: ls.fmc };
      const up = (f: number, t: number, lim: number): number => (lim >= 0 && f < t / 2 ? t - f : 0);
      const D = want ? { r: up(ls.fr, ls.target.r, l.rpm), t: up(ls.ft, ls.target.t, l.tpm), c: up(ls.fc, ls.target.c, l.conc), m: up(ls.fm, ls.target.m, l.mtok), mc: up(ls.fmc, ls.target.mc, l.mcost) } : zero;
      const it: SyncItem = {
        lease: ls,
        want,
        R,
        D,
        A: { m: ls.am, mc: ls.amc },
        Hc: l.conc >= 0 ? ls.ic + ls.fc : 0,
        Hm: l.mtok >= 0 ? ls.im + ls.fm + ls.am : 0,
        Hmc: l.mcost >= 0 ? ls.imc + ls.fmc + ls.amc : 0,
      };
      // What is sent leaves the lease now (admissions meanwhile cannot spend it twice).
      ls.fr -= R.r;
      ls.ft -= R.t;
      ls.fc -= R.c;
      ls.fm -= R.m;
      ls.fmc -= R.mc;
      ls.am = 0;
      ls.amc = 0;
      ls.syncing = true;
      items.push(it);
    }
    let answers;
    try {
      answers = await syncLeases(this.d.redis, this.proc, this.d.clock.now(), items);
    } catch (e) {
      // Redis failed: the leases are dropped (their holds expire in Redis); the counters they
      // touched are re-seeded from the ledger when Redis is back, as for the in-process store.
      for (const it of items) {
        this.dirty.add(it.lease.keys[3]!).add(it.lease.keys[4]!);
        this.leases.delete(it.lease.key);
      }
      this.markDown(e);
      return;
    }
    const ack = Date.now();
    items.forEach((it, i) => {
      const ls = it.lease;
      const a = answers[i]!;
      ls.syncing = false;
      ls.fr += a.D.r;
      ls.ft += a.D.t;
      ls.fc += a.D.c;
      ls.fm += a.D.m;
      ls.fmc += a.D.mc;
      ls.stats = { ...ls.stats, rpmRemaining: a.rpmRemaining, rpmResetMs: 0, tpmRemaining: a.tpmRemaining, tpmResetMs: 0, inFlight: a.inUse, monthTokens: a.monthTokens, monthCost: a.monthCost };
      if (a.status === 1 && ls.active) ls.okUntil = ack + LEASE_LOCAL_MS;
      else {
        if (ls.active) this.leaseBackoff.set(ls.key, ack + SYNC_MS);
        ls.active = false; // near a limit (or the hold was lost): exact admission from now on
      }
      const idle = !ls.active && ls.ic === 0 && ls.im === 0 && ls.imc === 0;
      const empty = ls.fr <= 0 && ls.fc <= 0 && ls.ft === 0 && ls.fm === 0 && ls.fmc === 0 && ls.am === 0 && ls.amc === 0;
      if (idle && empty && this.leases.get(ls.key) === ls) this.leases.delete(ls.key);
      else if (!ls.active && !empty) this.syncSoon = true; // return the rest at once (calls in flight settle into it; the timer returns that)
      if (ls.spec.level === 'tenant') {
        const r = this.lastLeased.get(ls.key);
        if (r) {
          this.lastLeased.delete(ls.key);
          this.d.onSettled?.(r, a.monthTokens, a.monthCost);
        }
      }
    });
  }

  // ---- licence level ---------------------------------------------------------------------

  /** Refuses past a hard licence allowance; returns the soft-mode warning (80 %, over 100 %) when there is one. */
  /** The installation's month ledger is re-read every 30 s (and when the month turns). */
  private licenceStale(now: number): boolean {
    if (!this.d.entitlements().checkTokens) return false;
    const L = this.licence;
    return L.month !== this.window('UTC', now).id || now - L.at > 30_000;
  }

  private async readLicenceLedger(now: number): Promise<void> {
    const w = this.window('UTC', now);
    await this.d.flushLedger?.();
    const ledger = await this.d.repo.installationTokens(w.start, w.end);
    const L = this.licence;
    L.ledger = ledger;
    L.settled = 0;
    L.month = w.id;
    L.at = now;
  }

  private checkLicence(now: number, est: number): string | undefined {
    const ent = this.d.entitlements();
    if (!ent.checkTokens) return undefined;
    const w = this.window('UTC', now);
    const L = this.licence;
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
      await this.d.flushLedger?.();
      const w = this.window(tenant.timezone, input.now);
      const values = [];
      for (const m of outcome.missing) {
        const l = input.levels[m.levelIdx]!;
        const u =
          l.level === 'team'
            ? await (this.d.teamUsage?.(tenant.id, l.id, w.start, w.end) ?? { tokens: 0, cost: 0 })
            : await this.d.repo.usageSince(tenant.id, w.start, w.end, l.level === 'tenant' ? undefined : { type: l.level, id: l.id });
        values.push({ ...m, value: m.kind === 'tokens' ? u.tokens : u.cost });
      }
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
    if (keys.length) p.del(...keys, ...keys.map((k) => `${k}:h`)); // counters and their lease holds
    for (const [k, id] of slots) p.zrem(k, id);
    await p.exec();
    this.dirty.clear();
    this.memory.touched.clear();
    this.memory.resetCounters();
    await this.d.flushLedger?.();
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


function sameLimits(a: LevelSpec, b: LevelSpec): boolean {
  return a.rpm === b.rpm && a.tpm === b.tpm && a.conc === b.conc && a.mtok === b.mtok && a.mcost === b.mcost;
}

/** Monthly counters are named by month and start instant, so a time-zone change starts fresh counters (seeded from the ledger). */
function counterId(w: MonthWindow): string {
  let c = counterIds.get(w);
  if (c === undefined) counterIds.set(w, (c = `${w.id}@${w.start}`));
  return c;
}
/** Per cached window object (one per time zone and month): built once, not per call. */
const counterIds = new WeakMap<MonthWindow, string>();
const NO_MASKS: readonly number[] = Object.freeze([]);

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
  const who = spec.level === 'tenant' ? "the tenant's plan" : spec.level === 'team' ? `the team ${spec.name ?? spec.id}` : spec.level === 'user' ? 'your user' : 'this API key';
  const message = monthly
    ? `The ${WHAT[limit]} of ${who} (${value}${limit === 'monthly_cost_micros' ? ' micro-units' : ' tokens'}) is used up; it resets at ${reset}.`
    : `The ${WHAT[limit]} limit of ${who} (${value}) is reached; retry after ${reset}.`;
  return new AppError(429, monthly ? 'quota_exceeded' : 'rate_limit_exceeded', message, {
    type: monthly ? 'quota_error' : 'rate_limit_error',
    headers,
    details: { level: spec.level, ...(spec.level === 'team' ? { team: { id: spec.id, name: spec.name ?? null } } : {}), limit, limit_value: value, reset },
  });
}

export function levelRank(l: Level): number {
  return LEVEL_ORDER[l];
}
