import { AsyncLocalStorage } from 'node:async_hooks';
import { performance } from 'node:perf_hooks';
import { asc, count, eq, gt, inArray, isNull, max, sql, type SQL } from 'drizzle-orm';
import type { SQLiteTable } from 'drizzle-orm/sqlite-core';
import type { Logger } from 'pino';
import { growthRefusal, type Entitlements, type GrowthKind, type TokenAdmission } from '../server/access/entitlements.js';
import type { Clock } from '../server/clock.js';
import type { RuntimeSettings } from '../server/config/runtime-settings.js';
import type { Store } from '../server/db/store.js';
import { AppError } from '../server/errors.js';
import type { CheckResult, ReadinessCheck } from '../server/health/readiness.js';
import { isSafetyFloor, SAFETY_FLOOR } from './entitlements-model.js';
import { LicenseError } from './errors.js';
import { evaluate, nextMonthStart, type Banner, type Evaluation, type Usage } from './evaluate.js';
import { ensureInstallation, type Installation } from './installation.js';
import type { Boundary, DeploymentMode, LicenseEnvironment } from './payload.js';
import { installLicense, K, lockSettings, recordEvents, safeGet, type InstallResult, type LicenseEvent, type StoredLicense } from './store.js';
import { advance, confirm, initialTime, merge, type TimeState } from './trusted-time.js';
import { openTime, sealTime } from './time-seal.js';
import { trustStore, type LicenseMode, type TrustStore } from './trust.js';
import { verifyLicense, type VerifiedLicense } from './verify.js';

export interface LicenseServiceOptions {
  /** The database (settings rows, the audit log's newest entry, the default usage counts). */
  readonly store: Store;
  readonly settings: RuntimeSettings;
  readonly clock: Clock;
  readonly log: Logger;
  readonly mode: LicenseMode;
  readonly environment: LicenseEnvironment;
  /** Tests inject their own trust store (extra roots, revocations). */
  readonly trust?: TrustStore;
  /** Current usage; the identity and key modules replace the default with setUsageSource(). */
  readonly usage?: UsageSource;
  /** Extra trusted-time floors in ms (e.g. the newest audit entry's time). */
  readonly floors?: () => readonly number[];
  /** How often settings are polled for a new licence or time state (ms); 0 = no timer (tests call refresh()). */
  readonly pollMs?: number;
  /** How often this process persists the trusted-time HWM (ms). */
  readonly persistTimeMs?: number;
  readonly monotonic?: () => number;
}

export interface LicenseStatus {
  readonly state: Evaluation['state'];
  readonly mode: LicenseMode;
  readonly installation: { readonly id: string; readonly environment: LicenseEnvironment };
  readonly plan: string;
  readonly licence?: Evaluation['licence'] & { readonly issuerKid: string; readonly rootTrust: string; readonly installedAt?: string };
  readonly capabilities: readonly string[];
  readonly safetyFloor: readonly string[];
  readonly limits: Evaluation['limits'];
  readonly usage: Usage;
  readonly overLimit: Evaluation['overLimit'];
  readonly banners: readonly Banner[];
  readonly problem?: Evaluation['problem'];
  readonly time: { readonly effectiveNow: string; readonly wallClock: string; readonly clockSuspect: boolean; readonly suspectReason?: string };
}

const ZERO: Usage = { seats: 0, tenants: 0, keys: 0 };

type EventListener = (e: LicenseEvent) => unknown;

/** Counts what the licence limits; read by every refresh (the poll), never per request. */
export type UsageSource = () => Usage | Promise<Usage>;

/**
 * The running licence: an immutable snapshot (verified licence + evaluation) swapped
 * atomically when settings change. Implements Entitlements, so authorize() and every
 * growth path ask it. Never throws at start: a missing or broken licence means
 * `unlicensed`/`invalid` with community entitlements and a log line.
 *
 * Entitlements (hasFeature, checkGrowth, checkTokens, allowsBoundary, licenseState, now) are
 * asked on every request and AI call, so they stay synchronous over in-memory state. All
 * database I/O happens in the async refresh (the poll, install, status, start): it reads the
 * settings signature, the licence, the trusted time, the audit-log floor and usage, then swaps
 * the snapshot. Database work of this service runs one operation at a time (`serial`), so a
 * slow database never piles refreshes up and "our own write absorbs the signature" holds.
 * What a synchronous path decides to write (now() turning the clock suspect: an event and a
 * time persist) is queued and written by the next operation (`due`).
 */
export class LicenseService implements Entitlements {
  readonly mode: LicenseMode;
  readonly environment: LicenseEnvironment;
  private readonly trust: TrustStore;
  private usageSource: UsageSource;
  private installation!: Installation;
  private verified: VerifiedLicense | undefined;
  private problem: { code: string; message: string } | undefined;
  private stored: StoredLicense | undefined;
  private time: TimeState;
  private lastMono: number;
  private lastPersist = 0;
  private lastUsage: Usage = ZERO;
  private snap: Evaluation;
  private signature = '';
  private timer: NodeJS.Timeout | undefined;
  private started = false;
  private readonly listeners = new Set<EventListener>();
  /** Listener calls still running (the audit append is async); operations wait for them before they return. */
  private listening: Promise<unknown>[] = [];
  /** Events emitted inside this service's own transaction: listeners hear them after it ends (their writes must not join it). */
  private held: LicenseEvent[] | undefined;
  /**
   * Runs a function in the async context this service was built in: the writes queued by a
   * synchronous path (now() inside someone's request, maybe inside their transaction) must not
   * join that transaction (store.tx finds it through AsyncLocalStorage).
   */
  private readonly detached: <R>(fn: () => R) => R = AsyncLocalStorage.snapshot();
  private readonly mono: () => number;
  /** Set when the stored trusted-time row failed its signature check (until an admin confirms the clock). */
  private timeTampered: { readonly at: string; readonly reason: string } | undefined;
  private lastTamperedRaw = '';
  /** Newest audit entry time seen (a trusted-time floor), read incrementally by seq by the refresh. */
  private audit = { seq: 0, at: 0, checkedAt: -Infinity };
  /** The tail of the chain of database operations (see `serial`). */
  private chain: Promise<unknown> = Promise.resolve();
  /** Writes decided on a synchronous path, done by the next database operation. */
  private readonly due: { persist: boolean; events: LicenseEvent[]; queued: boolean } = { persist: false, events: [], queued: false };
  private polling = false;
  /** A plain refresh queued and not started yet (see refresh). */
  private queuedRefresh: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly o: LicenseServiceOptions) {
    this.mode = o.mode;
    this.environment = o.environment;
    this.trust = o.trust ?? trustStore(o.mode);
    this.usageSource = o.usage ?? defaultUsage(o.store);
    this.mono = o.monotonic ?? (() => performance.now());
    this.lastMono = this.mono();
    this.time = initialTime(o.clock.now());
    this.snap = evaluate(undefined, ZERO, o.clock.now());
  }

  /** Loads everything and starts polling. Never throws because of a licence. */
  async start(): Promise<this> {
    try {
      this.installation = await ensureInstallation(this.o.store, this.o.settings, () => this.o.clock.now());
    } catch (e) {
      this.o.log.error({ err: (e as Error).message }, 'licence: cannot create or read the installation identity');
      throw e;
    }
    if (this.mode === 'test') {
      this.o.log.warn('ENCLAVE_LICENSE_MODE=test: licences signed with the committed TEST root are accepted. Never use this in production.');
    }
    await this.serial(async () => {
      await this.loadAuditFloor();
      this.time = (await this.readTime()) ?? initialTime(this.o.clock.now(), this.floors());
      await this.refreshNow(true);
    });
    this.started = true;
    const s = this.snap;
    this.o.log.info({ state: s.state, plan: s.plan, lid: s.licence?.lid, problem: s.problem?.code, installation: this.installation.id }, `licence: ${s.state}`);
    const pollMs = this.o.pollMs ?? 1000;
    if (pollMs > 0) {
      this.timer = setInterval(() => {
        // A refresh still running (a slow database): skip this tick rather than queue another.
        if (this.polling) return;
        this.polling = true;
        void this.refresh()
          .catch((e: Error) => this.o.log.warn({ err: e.message }, 'licence: refresh failed; keeping the current state'))
          .finally(() => {
            this.polling = false;
          });
      }, pollMs);
      this.timer.unref();
    }
    return this;
  }

  /** Stops polling and persists the trusted time (and any queued events). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.stopped) return;
    try {
      await this.serial(async () => {
        await this.flushEvents();
        await this.persistTime(true);
      });
    } catch {
      /* closing: the next process persists it */
    }
    // After this, queued work must not touch a database that is about to close.
    this.stopped = true;
  }

  get installationId(): string {
    return this.installation.id;
  }

  get installationIdentity(): Installation {
    return this.installation;
  }

  /** A listener may be async (the audit log's append); its failure is logged, never thrown. */
  onEvent(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The last install / state-change / clock events (newest last), until the audit log takes them. */
  async events(): Promise<LicenseEvent[]> {
    return (await safeGet<LicenseEvent[]>(this.o.settings, K.events)) ?? [];
  }

  /** Replaces the usage counter (identity: active users, tenants; keys: active keys). */
  setUsageSource(source: UsageSource): void {
    this.usageSource = source;
  }

  /** Trusted time: max(wall clock, high-water mark), see trusted-time.ts. */
  now(): number {
    const m = this.mono();
    const wasSuspect = this.time.suspect;
    const { state, now } = advance(this.time, { wall: this.o.clock.now(), elapsed: m - this.lastMono, floors: this.floors() });
    this.lastMono = m;
    this.time = state;
    if (!wasSuspect && state.suspect) {
      const detail = { reason: state.suspect.reason, wall: new Date(state.suspect.wall).toISOString(), trusted: new Date(now).toISOString() };
      this.o.log.warn(detail, 'licence: the system clock is suspect; licence time advances by elapsed time only (fix the clock, or: enclave license clock confirm)');
      this.emit({ at: new Date(now).toISOString(), type: 'clock_suspect', detail });
      // Written by the refresh running now, or by the next database operation (now() stays synchronous).
      this.due.persist = true;
      this.queueDue();
    }
    return now;
  }

  /** The current evaluation (refreshed every poll). */
  evaluation(): Evaluation {
    return this.snap;
  }

  /**
   * Re-reads settings when they changed, advances time, re-evaluates. Callers that arrive while
   * a plain refresh is still queued share it (status() on every page load must not queue one
   * database round per caller); a forced refresh always runs after what is queued.
   */
  refresh(force = false): Promise<void> {
    if (!force && this.queuedRefresh !== undefined) return this.queuedRefresh;
    const run = this.serial(() => {
      if (!force) this.queuedRefresh = undefined;
      return this.refreshNow(force);
    });
    if (!force) this.queuedRefresh = run;
    return run;
  }

  private async refreshNow(force: boolean): Promise<void> {
    const sig = await this.readSignature();
    if (force || sig !== this.signature) {
      this.signature = sig;
      await this.loadTime();
      await this.loadLicence();
    }
    await this.loadAuditFloor();
    try {
      this.lastUsage = await this.usageSource();
    } catch {
      /* keep the last usage */
    }
    const now = this.now();
    const prev = this.snap;
    this.snap = evaluate(this.verified?.payload, this.lastUsage, now, this.problem);
    if (this.started && (prev.state !== this.snap.state || prev.licence?.lid !== this.snap.licence?.lid)) {
      const detail = { from: prev.state, to: this.snap.state, lid: this.snap.licence?.lid, problem: this.snap.problem?.code };
      this.o.log.info(detail, `licence: state ${prev.state} -> ${this.snap.state}`);
      this.emit({ at: this.snap.now, type: 'state_changed', detail });
    }
    await this.flushEvents();
    await this.persistTime(false);
    await this.settleListeners();
  }

  // ---- Entitlements -------------------------------------------------------------------

  hasFeature(feature: string): boolean {
    if (isSafetyFloor(feature)) return true;
    return this.snap.capabilities.includes(feature);
  }

  checkGrowth(kind: GrowthKind, current: number): AppError | undefined {
    const s = this.snap;
    if (!s.growth) {
      return new AppError(409, 'license_lapsed', `The licence lapsed on ${s.licence?.graceEndsAt}: existing ${kind} keep working, but new ones cannot be added until a renewal is installed.`, {
        type: 'conflict_error',
        details: { state: s.state, kind },
      });
    }
    const limit = s.limits[kind];
    if (limit !== null && current >= limit) return growthRefusal(kind, limit, current);
    return undefined;
  }

  checkTokens(usedThisMonth: number, requested: number): TokenAdmission {
    const t = this.snap.limits.tokensMonth;
    if (!t) return { allowed: true, limit: null };
    const after = usedThisMonth + Math.max(0, requested);
    if (t.mode === 'hard' && after > t.max) {
      const now = this.now();
      const reset = nextMonthStart(now);
      return {
        allowed: false,
        limit: t.max,
        error: new AppError(429, 'license_quota_exceeded', `The licence's monthly token allowance (${t.max}) is used up; it resets at ${new Date(reset).toISOString()}.`, {
          type: 'quota_error',
          headers: { 'Retry-After': String(Math.max(1, Math.ceil((reset - now) / 1000))) },
          details: { limit: t.max, used: usedThisMonth, reset_at: new Date(reset).toISOString() },
        }),
      };
    }
    const warning = after > t.max ? 'license_quota_exceeded_soft' : after >= t.max * 0.8 ? 'license_quota_80' : undefined;
    return { allowed: true, limit: t.max, ...(warning ? { warning } : {}) };
  }

  allowsBoundary(boundary: Boundary): boolean {
    return this.snap.limits.boundaries.includes(boundary);
  }

  /** Whether the licence covers a deployment mode (community: every mode). */
  allowsDeploymentMode(mode: DeploymentMode): boolean {
    return this.verified ? this.verified.payload.deployment.modes.includes(mode) : true;
  }

  licenseState(): { state: Evaluation['state']; testMode: boolean; clockSuspect: boolean } {
    return { state: this.snap.state, testMode: this.mode === 'test', clockSuspect: this.time.suspect !== null || this.timeTampered !== undefined };
  }

  // ---- operations ---------------------------------------------------------------------

  /** Verifies and installs (admin API); the poll makes every other process pick it up. */
  async install(text: string): Promise<InstallResult> {
    let result: InstallResult;
    try {
      result = await installLicense(this.o.store, this.o.settings, text, this.verifyCtx(this.now()));
    } catch (e) {
      if (e instanceof LicenseError) this.emit({ at: new Date(this.o.clock.now()).toISOString(), type: 'rejected', detail: { code: e.code, message: e.message } }, false);
      await this.settleListeners();
      throw e;
    }
    await this.refresh(true);
    if (result.result === 'installed') this.emit({ at: this.snap.now, type: 'installed', detail: { lid: result.licence.payload.lid, seq: result.licence.payload.seq } }, false);
    await this.settleListeners();
    return result;
  }

  /** Dry run: what would change if this licence were installed (verify CLI, admin API). */
  dryRun(text: string): { licence: VerifiedLicense; before: Evaluation; after: Evaluation } {
    const licence = verifyLicense(text, this.verifyCtx());
    const now = this.now();
    return { licence, before: this.snap, after: evaluate(licence.payload, this.lastUsage, now) };
  }

  /** `enclave license clock confirm`: the admin vouches for the wall clock. */
  confirmClock(): Promise<TimeState> {
    return this.serial(async () => {
      this.time = confirm(this.time, this.o.clock.now());
      this.timeTampered = undefined;
      this.lastMono = this.mono();
      await this.persistTime(true);
      this.emit({ at: new Date(this.time.hwm).toISOString(), type: 'clock_confirmed', detail: { hwm: new Date(this.time.hwm).toISOString() } });
      await this.refreshNow(true);
      return this.time;
    });
  }

  /** Refreshes (reads the database), then describes the state. */
  async status(): Promise<LicenseStatus> {
    await this.refresh();
    const s = this.snap;
    const banners: Banner[] = [];
    if (this.mode === 'test') {
      banners.push({ level: 'warning', audience: 'admins', dismissible: false, message: 'TEST licence mode (ENCLAVE_LICENSE_MODE=test): licences signed with the public test key are accepted. Not for production.' });
    }
    if (this.time.suspect) {
      banners.push({
        level: 'warning',
        audience: 'admins',
        dismissible: false,
        message:
          this.time.suspect.reason === 'forward_jump'
            ? 'The system clock jumped far ahead; licence time advances by elapsed time only. Fix the clock (NTP) or confirm it: enclave license clock confirm.'
            : 'The system clock is behind the last trusted time; licence time keeps advancing from the trusted time. Fix the clock (NTP).',
      });
    }
    if (this.timeTampered) {
      banners.push({
        level: 'warning',
        audience: 'admins',
        dismissible: false,
        message: `The stored licence time was changed outside Enclave (${this.timeTampered.reason}); it was ignored and rebuilt from the clock and the audit log. Check who can write the database, then: enclave license clock confirm.`,
      });
    }
    if (s.banner) banners.push(s.banner);
    return {
      state: s.state,
      mode: this.mode,
      installation: { id: this.installation.id, environment: this.environment },
      plan: s.plan,
      ...(s.licence && this.verified
        ? { licence: { ...s.licence, issuerKid: this.verified.issuerKid, rootTrust: this.verified.rootTrust, ...(this.stored ? { installedAt: this.stored.installedAt } : {}) } }
        : {}),
      capabilities: s.capabilities,
      safetyFloor: SAFETY_FLOOR,
      limits: s.limits,
      usage: this.lastUsage,
      overLimit: s.overLimit,
      banners,
      ...(s.problem ? { problem: s.problem } : {}),
      time: {
        effectiveNow: s.now,
        wallClock: new Date(this.o.clock.now()).toISOString(),
        clockSuspect: this.time.suspect !== null || this.timeTampered !== undefined,
        ...(this.time.suspect ? { suspectReason: this.time.suspect.reason } : this.timeTampered ? { suspectReason: 'tampered' } : {}),
      },
    };
  }

  /** Informational: a licence never makes the appliance unready. */
  readinessCheck(): ReadinessCheck {
    return {
      name: 'license',
      critical: false,
      run: (): CheckResult => {
        const s = this.snap;
        const suspect = this.time.suspect !== null || this.timeTampered !== undefined;
        const degraded = this.mode === 'test' || suspect || !['valid', 'unlicensed'].includes(s.state);
        const parts = [`licence ${s.state}`];
        if (s.licence) parts.push(`${s.licence.daysRemaining} days remaining`);
        if (s.problem) parts.push(s.problem.message);
        if (this.mode === 'test') parts.push('TEST MODE: the committed test root is trusted');
        if (suspect) parts.push(`clock suspect (${this.time.suspect?.reason ?? 'tampered'})`);
        return {
          status: degraded ? 'degraded' : 'ok',
          detail: parts.join('; '),
          state: s.state,
          mode: this.mode,
          plan: s.plan,
          ...(s.licence ? { expiresAt: s.licence.expiresAt, daysRemaining: s.licence.daysRemaining } : {}),
          clockSuspect: suspect,
        };
      },
    };
  }

  /** Values for the metrics module (enclave_license_* gauges). */
  metrics(): { expiryTimestampSeconds: number | null; state: Evaluation['state']; seatsUsed: number; seatsLimit: number | null; daysRemaining: number | null; clockSuspect: boolean } {
    const s = this.snap;
    return {
      expiryTimestampSeconds: s.licence ? Date.parse(s.licence.expiresAt) / 1000 : null,
      state: s.state,
      seatsUsed: this.lastUsage.seats,
      seatsLimit: s.limits.seats,
      daysRemaining: s.licence?.daysRemaining ?? null,
      clockSuspect: this.time.suspect !== null || this.timeTampered !== undefined,
    };
  }

  // ---- internals ----------------------------------------------------------------------

  private verifyCtx(nowMs = this.o.clock.now()) {
    return { store: this.trust, installationId: this.installation.id, environment: this.environment, nowMs };
  }

  /**
   * The newest audit entry's time: evidence that time has passed at least this far (the audit
   * log is hash-chained, so removing its newest entries to lower this shows in audit verify).
   * The maximum over all entries, kept incrementally by seq, so a clock set back later does
   * not lower it; re-read by the refresh at most once a second (now() uses the last value).
   */
  private async loadAuditFloor(): Promise<void> {
    const m = this.mono();
    if (m - this.audit.checkedAt < 1000) return;
    this.audit.checkedAt = m;
    try {
      const { q, t } = this.o.store;
      const r = await this.o.store.one(q.select({ seq: max(t.auditLog.seq), at: max(t.auditLog.at) }).from(t.auditLog).where(gt(t.auditLog.seq, this.audit.seq)));
      if (r && r.seq !== null) this.audit = { seq: r.seq, at: Math.max(this.audit.at, r.at ?? 0), checkedAt: m };
    } catch {
      /* a database without the audit log (tools, tests) */
    }
  }

  private floors(): number[] {
    const f: number[] = [];
    const audit = this.audit.at;
    if (audit > 0) f.push(audit);
    if (this.verified) f.push(this.verified.payload.iat * 1000);
    if (this.stored) {
      const t = Date.parse(this.stored.installedAt);
      if (Number.isFinite(t)) f.push(t);
    }
    try {
      if (this.o.floors) f.push(...this.o.floors());
    } catch {
      /* a floor source failing must not stop licence evaluation */
    }
    return f;
  }

  /** What changes when the licence or the trusted time is written (by any process): cheap to poll. */
  private async readSignature(): Promise<string> {
    const { q, t } = this.o.store;
    const rows = await this.o.store.all(
      q
        .select({ key: t.settings.key, u: t.settings.updatedAt, n: sql<number>`length(${t.settings.value})` })
        .from(t.settings)
        .where(inArray(t.settings.key, [K.current, K.time]))
        .orderBy(asc(t.settings.key)),
    );
    return rows.map((r) => `${r.key}:${r.u}:${r.n}`).join('|');
  }

  private async loadTime(): Promise<void> {
    const stored = await this.readTime();
    if (stored) this.time = merge(this.time, stored);
  }

  /**
   * The stored trusted-time state if its installation signature verifies (time-seal.ts).
   * A row that does not verify is ignored (it can neither lower nor raise the time), logged,
   * recorded as an event, shown as a banner and in readiness, and rewritten signed at the next
   * persist from what this process trusts: its own state, the wall clock and the floors.
   */
  private async readTime(): Promise<TimeState | undefined> {
    let raw: unknown;
    try {
      raw = await this.o.settings.get<unknown>(K.time);
    } catch {
      raw = null;
    }
    if (raw === undefined) return undefined;
    const opened = openTime(raw, this.installation);
    if ('state' in opened) return opened.state;
    const key = JSON.stringify(raw);
    if (key !== this.lastTamperedRaw) {
      this.lastTamperedRaw = key;
      this.timeTampered = { at: new Date(this.o.clock.now()).toISOString(), reason: opened.tampered };
      this.o.log.error({ reason: opened.tampered }, 'licence: the stored trusted time failed its signature check; ignoring it (time comes from the clock and the audit log)');
      this.emit({ at: this.timeTampered.at, type: 'clock_tampered', detail: { reason: opened.tampered } });
    }
    return undefined;
  }

  private async loadLicence(): Promise<void> {
    let stored: StoredLicense | undefined;
    try {
      stored = await this.o.settings.get<StoredLicense>(K.current);
    } catch {
      await this.keepLastKnownGood({ code: 'malformed', message: 'the stored licence record is corrupt' });
      return;
    }
    if (!stored) {
      this.verified = undefined;
      this.stored = undefined;
      this.problem = undefined;
      return;
    }
    if (this.stored && this.verified && stored.fingerprint === this.stored.fingerprint && stored.text === this.stored.text) return;
    try {
      if (typeof stored.text !== 'string') throw new LicenseError('malformed', 'the stored licence record has no text');
      const v = verifyLicense(stored.text, this.verifyCtx());
      this.verified = v;
      this.stored = stored;
      this.problem = undefined;
      const lkg = await safeGet<StoredLicense>(this.o.settings, K.lkg);
      if (lkg?.fingerprint !== v.fingerprint) await this.o.settings.set(K.lkg, { ...stored, fingerprint: v.fingerprint });
    } catch (e) {
      const problem = e instanceof LicenseError ? { code: e.code, message: e.message } : { code: 'malformed', message: (e as Error).message };
      await this.keepLastKnownGood(problem);
    }
  }

  /** The newest stored licence does not verify: keep the one in memory, else the stored last-known-good. */
  private async keepLastKnownGood(problem: { code: string; message: string }): Promise<void> {
    this.problem = problem;
    this.o.log.error({ code: problem.code }, `licence: the installed licence cannot be used (${problem.message}); keeping the last-known-good`);
    if (this.verified) return;
    const lkg = await safeGet<StoredLicense>(this.o.settings, K.lkg);
    if (lkg && typeof lkg.text === 'string') {
      try {
        this.verified = verifyLicense(lkg.text, this.verifyCtx());
        this.stored = lkg;
        return;
      } catch {
        /* fall through to community */
      }
    }
    this.verified = undefined;
    this.stored = undefined;
  }

  /**
   * Persists the trusted time, sealed, merged with what is stored (another process may have
   * advanced or confirmed it). The merge is a read-modify-write of one row, so it holds the
   * row's lock (lockSettings) from the read to the write.
   */
  private async persistTime(force: boolean): Promise<void> {
    const m = this.mono();
    if (!force && !this.due.persist && m - this.lastPersist < (this.o.persistTimeMs ?? 60_000)) return;
    this.lastPersist = m;
    this.due.persist = false;
    const { store } = this.o;
    const held: LicenseEvent[] = (this.held = []);
    try {
      await store.tx(async () => {
        await lockSettings(store, K.time);
        const stored = await this.readTime();
        this.time = merge(this.time, stored);
        await this.o.settings.set(K.time, sealTime(this.time, this.installation));
      });
    } finally {
      this.held = undefined;
      for (const e of held) this.tell(e);
      if (held.length) this.queueDue();
    }
    // Our own write changes the signature; absorb it so it does not trigger a licence reload.
    this.signature = await this.readSignature();
  }

  /**
   * Runs database operations of this service one at a time, in call order: a refresh never
   * overlaps another refresh, a persist or an install's reload.
   */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(() => fn());
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Schedules the writes a synchronous path decided on (events, a time persist) as the next operation. */
  private queueDue(): void {
    if (this.due.queued || this.stopped) return;
    this.due.queued = true;
    void this.detached(() => this.serial(async () => {
      this.due.queued = false;
      if (this.stopped) return;
      await this.flushEvents();
      if (this.due.persist) await this.persistTime(true);
    })).catch((e: Error) => this.o.log.warn({ err: e.message }, 'licence: could not persist the trusted time; the next refresh retries'));
  }

  private async flushEvents(): Promise<void> {
    const events = this.due.events.splice(0);
    try {
      await recordEvents(this.o.store, this.o.settings, events);
    } catch {
      /* events are informational */
    }
  }

  /** Tells listeners at once; the stored event list is written by the running or next operation. */
  private emit(e: LicenseEvent, persist = true): void {
    if (persist) {
      this.due.events.push(e);
      if (!this.held) this.queueDue();
    }
    if (this.held) this.held.push(e);
    else this.tell(e);
  }

  private tell(e: LicenseEvent): void {
    for (const l of this.listeners) {
      try {
        const r = l(e);
        if (r instanceof Promise) this.listening.push(r.catch((err: Error) => this.o.log.warn({ err: err.message, event: e.type }, 'licence: an event listener failed')));
      } catch {
        /* a listener must not break licensing */
      }
    }
  }

  /** Waits for the listeners of events emitted so far (an install returns after its audit entry is written). */
  private async settleListeners(): Promise<void> {
    while (this.listening.length) await Promise.all(this.listening.splice(0));
  }
}

/**
 * Counts what exists until identity and keys register their own counters: active users
 * (seats), tenants, unrevoked API keys. A count that fails (a tool's partial database) is 0.
 */
export function defaultUsage(store: Store): () => Promise<Usage> {
  const n = async (table: SQLiteTable, where?: SQL): Promise<number> => {
    try {
      return (await store.one(store.q.select({ n: count() }).from(table).where(where)))?.n ?? 0;
    } catch {
      return 0;
    }
  };
  const { t } = store;
  return async () => ({
    seats: await n(t.users, eq(t.users.status, 'active')),
    tenants: await n(t.tenants),
    keys: await n(t.apiKeys, isNull(t.apiKeys.revokedAt)),
  });
}
