import { performance } from 'node:perf_hooks';
import type { Entitlements } from '../access/entitlements.js';
import type { Classification, RequestContext } from '../context.js';
import type { AppError } from '../errors.js';
import type { Reservation } from '../metering/admission.js';
import { UpstreamError } from '../providers/index.js';
import type { Candidate, Deployment } from '../routing/catalogue.js';
import type { TenantPolicy } from '../routing/policy.js';

/**
 * The call trace (issue 25): the decision record of one AI call, filled by the pipeline while
 * the call runs and serialised once, off the call path, by the batched writer
 * (server/traces/service.ts).
 *
 * Written on the hot path, so it is cheap: one object per call, a few numbers and references
 * set by one-line calls from plan.ts, attempt.ts, relay.ts and service.ts, arrays only for
 * what happened more than once (attempts) or was dropped (candidates). Everything is turned
 * into the stored JSON (toJson) when the row is written.
 *
 * Never content: no prompt, no completion, no matched text of a content rule (only its type
 * and count), no upstream error text (only codes and statuses).
 */

/** Why a candidate deployment was not used. */
export type DropReason =
  /** The tenant's data-boundary policy does not allow its boundary (or region) at this classification. */
  | 'policy'
  /** The tenant's plan lacks the cloud_providers capability (public deployments). */
  | 'plan'
  /** The licence forbids its boundary (air-gapped deployment mode). */
  | 'licence'
  /** A content rule forces the call to local deployments. */
  | 'content_rule'
  /** Its circuit breaker was open. */
  | 'breaker'
  /** Its concurrency limit was reached (and the queue wait ran out). */
  | 'concurrency'
  /** An administrator's replay was pinned to another deployment. */
  | 'pinned';

export type ClassificationSource = 'header' | 'key_floor' | 'tenant_policy' | 'tenant_default' | 'knowledge' | 'assistant';

interface Attempt {
  readonly deployment: Deployment;
  readonly model: string;
  /** performance.now() at the start of the try. */
  readonly t: number;
  connectMs: number | null;
  firstByteMs: number | null;
  totalMs: number | null;
  /** null while running, 'ok', or the upstream's (or our) error code. */
  status: string | null;
  upstreamStatus: number | null;
  retryable: boolean | null;
  /** The deployment's concurrency slot had to be waited for. */
  queued: boolean;
}

export class CallTrace {
  /** performance.now() marks: planned, admitted, first byte of the winning try, end. */
  planAt = 0;
  admitAt = 0;
  firstByteAt = 0;
  endAt = 0;
  classification: Classification | null = null;
  classSource: ClassificationSource | null = null;
  requested: Classification | undefined;
  /** Candidates of the model asked for, before any filter (references, nothing copied). */
  all: readonly Candidate[] | undefined;
  /** What the filters dropped, and why (only dropped ones: usually none). */
  dropped: { c: Candidate; reason: DropReason }[] | undefined;
  /** The candidates the plan kept, in the order they would be tried. */
  planned: readonly Candidate[] | undefined;
  skipped: { deployment: Deployment; reason: DropReason }[] | undefined;
  attempts: Attempt[] | undefined;
  reservation: Reservation | undefined;
  error: AppError | undefined;
  private queuedNext = false;

  constructor(
    readonly t0: number,
    readonly pin?: string,
  ) {}

  // ---- plan (plan.ts) ----------------------------------------------------------------------

  /** Classification and where it came from: the header (or what raised it: knowledge, an assistant), or the floor's source (key floor, tenant policy default, tenant default). */
  classified(ctx: RequestContext, policy: TenantPolicy, cls: { classification: Classification; requested?: Classification; clamped: boolean }): void {
    this.classification = cls.classification;
    this.requested = cls.requested;
    // Raised by Enclave (retrieved knowledge, an assistant) to exactly what the call carries.
    if (cls.requested !== undefined && !cls.clamped) this.classSource = ctx.classificationRaised?.to === cls.requested ? ctx.classificationRaised.by : 'header';
    else {
      const keyId = ctx.principal?.keyId;
      this.classSource = keyId && policy.keyFloors[keyId] ? 'key_floor' : policy.defaultClassification ? 'tenant_policy' : 'tenant_default';
    }
  }

  /** The candidates before and after the boundary filters; `why` names the reason of each dropped one. */
  candidates(all: readonly Candidate[], allowed: readonly Candidate[], why: (c: Candidate) => DropReason): void {
    this.all = all;
    if (allowed.length === all.length) return;
    this.dropped = [];
    for (const c of all) if (!allowed.includes(c)) this.dropped.push({ c, reason: why(c) });
  }

  /** The plan is made: its candidates in order (content rules may have dropped non-local ones). */
  plannedWith(candidates: readonly Candidate[]): void {
    this.planAt = performance.now();
    this.planned = candidates;
  }

  /** Admission passed (its per-level counters in the reservation). */
  admitted(r: Reservation | undefined): void {
    this.admitAt = performance.now();
    this.reservation = r;
  }

  // ---- attempts (attempt.ts, relay.ts) -------------------------------------------------------

  skip(deployment: Deployment, reason: DropReason): void {
    (this.skipped ??= []).push({ deployment, reason });
  }

  /** The deployment's concurrency slot was not free at once: the call waited for it (`got`: and had it in time). */
  slot(deployment: Deployment, waited: boolean, got: boolean): void {
    if (!got) this.skip(deployment, 'concurrency');
    else this.queuedNext = waited;
  }

  tryStart(deployment: Deployment, model: string): void {
    (this.attempts ??= []).push({ deployment, model, t: performance.now(), connectMs: null, firstByteMs: null, totalMs: null, status: null, upstreamStatus: null, retryable: null, queued: this.queuedNext });
    this.queuedNext = false;
  }

  /** A stream's upstream answered with its headers. */
  connected(): void {
    const a = this.attempts?.at(-1);
    if (a) a.connectMs = performance.now() - a.t;
  }

  /** The try ended: `e` undefined = it produced its answer (a stream: its first chunk). */
  tryEnd(e?: unknown): void {
    const a = this.attempts?.at(-1);
    if (!a || a.status !== null) return;
    const now = performance.now();
    if (e === undefined) {
      a.status = 'ok';
      a.firstByteMs = now - a.t;
      this.firstByteAt = now;
      return;
    }
    a.totalMs = now - a.t;
    if (e instanceof UpstreamError) {
      a.status = e.code;
      a.upstreamStatus = e.status ?? null;
      a.retryable = e.retryable;
    } else {
      a.status = (e as AppError | undefined)?.code ?? 'internal_error';
      a.retryable = false;
    }
  }

  /** The call failed before or during its attempts (refusals: their details, e.g. the admission level). */
  failed(e: AppError): void {
    this.error = e;
  }

  /** The call is over (usage record made). */
  end(): void {
    this.endAt = performance.now();
    const a = this.attempts?.at(-1);
    if (a && a.totalMs === null) a.totalMs = this.endAt - a.t;
  }

  // ---- stage durations (the histogram) ------------------------------------------------------

  /** Seconds per stage, in the order of STAGES; -1 = the call did not reach that stage. */
  stages(): [number, number, number, number] {
    // A call refused in a stage spent the rest of its time there.
    const plan = this.planAt ? this.planAt - this.t0 : this.endAt ? this.endAt - this.t0 : -1;
    const admission = this.admitAt && this.planAt ? this.admitAt - this.planAt : this.planAt && this.endAt ? this.endAt - this.planAt : -1;
    const upstream = this.firstByteAt && this.admitAt ? this.firstByteAt - this.admitAt : -1;
    const relay = this.firstByteAt && this.endAt ? this.endAt - this.firstByteAt : -1;
    return [plan / 1000, admission / 1000, upstream / 1000, relay / 1000];
  }

  // ---- the stored document ----------------------------------------------------------------

  /** The decision record as stored and served (snake_case, ms rounded to 0.01). */
  toJson(): TraceDoc {
    const dropped = new Map<Candidate, DropReason>();
    for (const d of this.dropped ?? []) dropped.set(d.c, d.reason);
    const planned = this.planned ?? (this.all ?? []).filter((c) => !dropped.has(c));
    // Kept by the boundary filters but not planned: a content rule forced local deployments, or a replay pinned one.
    if (this.planned) for (const c of this.all ?? []) if (!dropped.has(c) && !this.planned.includes(c)) dropped.set(c, this.pin !== undefined && c.deployment.name !== this.pin ? 'pinned' : 'content_rule');
    const skipped = new Map<Deployment, DropReason>();
    for (const s of this.skipped ?? []) skipped.set(s.deployment, s.reason);
    const tried = new Set((this.attempts ?? []).map((a) => a.deployment));
    const answered = (this.attempts ?? []).some((a) => a.status === 'ok');
    const candidates: TraceDoc['candidates'] = (this.all ?? []).map((c) => {
      const d = c.deployment;
      const base = { deployment: d.name, model: c.model, boundary: d.boundary };
      const drop = dropped.get(c);
      if (drop) return { ...base, kept: false, reason: drop };
      const skip = skipped.get(d);
      if (skip) return { ...base, kept: true, outcome: skip };
      // Not tried: an earlier candidate answered (not needed), or the call ended before reaching it.
      return { ...base, kept: true, outcome: tried.has(d) ? 'tried' : answered && planned.includes(c) ? 'not_needed' : 'not_reached' };
    });
    const attempts: TraceDoc['attempts'] = (this.attempts ?? []).map((a) => ({
      deployment: a.deployment.name,
      model: a.model,
      boundary: a.deployment.boundary,
      status: a.status ?? 'unfinished',
      ...(a.upstreamStatus !== null ? { upstream_status: a.upstreamStatus } : {}),
      retryable: a.retryable,
      queued: a.queued,
      connect_ms: ms(a.connectMs),
      first_byte_ms: ms(a.firstByteMs),
      total_ms: ms(a.totalMs),
    }));
    // A fallback: the next try is on another deployment; its reason is how the last try on the previous one ended.
    const fallbacks: { from: string; to: string | null; reason: string }[] = [];
    const as = this.attempts ?? [];
    for (let i = 1; i < as.length; i++) {
      if (as[i]!.deployment !== as[i - 1]!.deployment) fallbacks.push({ from: as[i - 1]!.deployment.name, to: as[i]!.deployment.name, reason: as[i - 1]!.status ?? 'unknown' });
    }
    for (const s of this.skipped ?? []) fallbacks.push({ from: s.deployment.name, to: null, reason: s.reason });
    const [plan, admission, upstream, relay] = this.stages();
    return {
      classification_decision: this.classification ? { value: this.classification, source: this.classSource, ...(this.requested !== undefined ? { requested: this.requested } : {}) } : null,
      candidates,
      admission: this.admissionJson(),
      attempts,
      fallbacks,
      stages_ms: { plan: sec(plan), admission: sec(admission), upstream: sec(upstream), relay: sec(relay) },
    };
  }

  private admissionJson(): TraceDoc['admission'] {
    const r = this.reservation;
    const err = this.error;
    const details = err?.details as { level?: string; limit?: string; limit_value?: number; reset?: string } | undefined;
    const refused = err && details?.level && details.limit ? { level: details.level, limit: details.limit, limit_value: details.limit_value ?? null, reset: details.reset ?? null, code: err.code } : undefined;
    if (!refused && !this.admitAt) return null; // refused before admission (or admission failed otherwise)
    const stats = r?.stats;
    const levels = (r?.levels ?? []).map((l, i) => {
      const s = stats?.[i];
      return {
        level: l.level,
        limits: compact({ requests_per_minute: l.rpm, tokens_per_minute: l.tpm, concurrent_requests: l.conc, monthly_tokens: l.mtok, monthly_cost_micros: l.mcost }),
        remaining: s
          ? compact({
              requests_per_minute: l.rpm >= 0 ? s.rpmRemaining : -1,
              tokens_per_minute: l.tpm >= 0 ? s.tpmRemaining : -1,
              concurrent_requests: l.conc >= 0 && s.inFlight >= 0 ? Math.max(0, l.conc - s.inFlight) : -1,
              monthly_tokens: l.mtok >= 0 && s.monthTokens >= 0 ? Math.max(0, l.mtok - s.monthTokens) : -1,
              monthly_cost_micros: l.mcost >= 0 && s.monthCost >= 0 ? Math.max(0, l.mcost - s.monthCost) : -1,
            })
          : null,
      };
    });
    return {
      store: refused ? null : (r?.store ?? 'none'),
      levels,
      waited_ms: sec(this.stages()[1]),
      ...(refused ? { refused } : {}),
    };
  }
}

/** The candidate filters of plan.ts, asked again for a dropped candidate only: which one dropped it. */
export function dropReason(
  d: Deployment,
  ent: Entitlements,
  ctx: RequestContext,
  planAllows: ((ctx: RequestContext, boundary: Deployment['boundary']) => boolean) | undefined,
): DropReason {
  if (d.boundary === 'public' && planAllows && !planAllows(ctx, d.boundary)) return 'plan';
  if (ent.allowsBoundary && !ent.allowsBoundary(d.boundary)) return 'licence';
  return 'policy';
}

function compact(o: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(o)) if (o[k]! >= 0) out[k] = o[k]!;
  return out;
}

function ms(v: number | null): number | null {
  return v === null ? null : Math.round(v * 100) / 100;
}

/** Seconds (stages()) back to ms for the document; null = not reached. */
function sec(v: number): number | null {
  return v < 0 ? null : Math.round(v * 100_000) / 100;
}

/** The decision part of the stored trace (the rest of the row: face, model, usage, cost, status). */
export interface TraceDoc {
  readonly classification_decision: { value: Classification; source: ClassificationSource | null; requested?: Classification } | null;
  readonly candidates: readonly {
    deployment: string;
    model: string;
    boundary: string;
    kept: boolean;
    reason?: DropReason;
    outcome?: DropReason | 'tried' | 'not_needed' | 'not_reached';
  }[];
  readonly admission: {
    store: string | null;
    levels: { level: string; limits: Record<string, number>; remaining: Record<string, number> | null }[];
    waited_ms: number | null;
    refused?: { level: string; limit: string; limit_value: number | null; reset: string | null; code: string };
  } | null;
  readonly attempts: readonly {
    deployment: string;
    model: string;
    boundary: string;
    status: string;
    upstream_status?: number;
    retryable: boolean | null;
    queued: boolean;
    connect_ms: number | null;
    first_byte_ms: number | null;
    total_ms: number | null;
  }[];
  readonly fallbacks: readonly { from: string; to: string | null; reason: string }[];
  readonly stages_ms: { plan: number | null; admission: number | null; upstream: number | null; relay: number | null };
}
