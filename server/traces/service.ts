import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { RequestContext } from '../context.js';
import { BatchedWriter } from '../db/batched-writer.js';
import { CallTraceRepo, type TraceFilter, type TraceRow } from '../db/repos/call-traces.js';
import type { UsageRow } from '../db/repos/usage.js';
import type { Store } from '../db/store.js';
import type { TenantStore } from '../db/tenant-store.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import { page, type Page } from '../identity/deps.js';
import type { Metrics } from '../metrics/registry.js';
import type { Detector } from '../routing/content.js';
import { CallTrace, type TraceDoc } from './recorder.js';

/**
 * Call traces (issue 25): the recorder handed to each AI call (begin), the stage-duration
 * histogram, the batched writer that stores each call's decision record off the call path
 * (like usage records), the explorer's reads, and retention.
 *
 * Retention follows the tenant's raw usage retention (metering settings `raw_retention_days`),
 * DEFAULT_RETENTION_DAYS when the tenant has none: a trace explains a usage record, and a
 * tenant that keeps its raw records longer keeps their explanations as long.
 */
export const DEFAULT_RETENTION_DAYS = 30;
const DAY = 86_400_000;

/** The stages of the histogram, in the order of CallTrace.stages(). */
export const STAGES = ['plan', 'admission', 'upstream', 'relay'] as const;

/** Rows kept while the database refuses writes; beyond this the oldest are dropped (and counted). */
const MAX_PENDING = 20_000;

/** The parts of the call state a trace reads when it is written (references; nothing copied on the call path). */
export interface TraceInput {
  readonly trace: CallTrace;
  readonly row: UsageRow;
  readonly stream: boolean;
  readonly policy: { action?: string; hits?: Partial<Record<Detector, number>>; redacted?: boolean; clamped?: boolean };
  readonly redacted: readonly Detector[] | undefined;
  /** The client's request (only numeric and boolean sampling parameters are read from it, never content). */
  // Client JSON: only whitelisted scalar fields are read (paramsOf).
  readonly body: Record<string, any>;
}

export interface CallTracesDeps {
  readonly store: Store;
  readonly tenantStore: TenantStore;
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly flushMs?: number;
}

export class CallTraces {
  readonly repo: CallTraceRepo;
  private readonly writer: BatchedWriter<Pending>;
  private readonly stageSeries: { observe(v: number): void }[];

  constructor(private readonly d: CallTracesDeps) {
    this.repo = new CallTraceRepo(d.store, d.tenantStore);
    // Serialised here, when the batch is written: the call only queued references.
    this.writer = new BatchedWriter({ insertMany: (rows) => this.repo.insertMany(rows.map(toRow)), log: d.log, what: 'call traces', intervalMs: d.flushMs ?? 250, maxBatch: 500, slice: 100, maxPending: MAX_PENDING });
    this.stageSeries = STAGES.map((s) => d.metrics.gatewayStage.labels(s));
  }

  /** Traces written since start, and traces lost to a database that refused writes for too long. */
  get written(): number {
    return this.writer.written;
  }
  get dropped(): number {
    return this.writer.dropped;
  }

  /** A recorder for one call (t0: the call's start, performance.now(); pin: a replay's pinned deployment). */
  begin(t0: number, pin?: string): CallTrace {
    return new CallTrace(t0, pin);
  }

  /** The call is over and its usage record made: observe its stages and queue its trace. Never throws. */
  finish(input: TraceInput): void {
    const t = input.trace;
    t.end();
    const s = t.stages();
    for (let i = 0; i < 4; i++) if (s[i]! >= 0) this.stageSeries[i]!.observe(s[i]!);
    // The request body is not kept while the row waits (it holds the prompt): only its scalar parameters.
    this.writer.push({ trace: t, row: input.row, stream: input.stream, policy: input.policy, redacted: input.redacted, params: paramsOf(input.body) });
  }

  flush(): Promise<void> {
    return this.writer.flush();
  }

  // ---- reads (admin API) -------------------------------------------------------------------

  async search(ctx: RequestContext, f: TraceFilter, limit: number): Promise<Page<TraceSummary>> {
    await this.flush(); // a call that just finished in this process is found at once
    const rows = await this.repo.search(ctx, f, limit + 1);
    return page(rows, limit, (r) => r.id, summaryJson);
  }

  /** The traces of one request id in the context's tenant (normally one); none: 404 (the route audits it). */
  async byRequest(ctx: RequestContext, requestId: string): Promise<TraceJson[]> {
    await this.flush();
    const rows = await this.repo.byRequest(ctx, requestId);
    if (!rows.length) throw new AppError(404, 'not_found', 'No call trace for that request id (unknown, past its retention, or another tenant’s).');
    return rows.sort((a, b) => (a.id < b.id ? -1 : 1)).map(traceJson);
  }

  // ---- retention ---------------------------------------------------------------------------

  /** Deletes traces past each tenant's retention (policies: tenants with a raw usage retention); the rest after DEFAULT_RETENTION_DAYS. */
  async purgeExpired(policies: readonly { tenantId: string; days: number }[]): Promise<number> {
    await this.flush();
    const now = this.d.clock.now();
    let n = 0;
    for (const p of policies) n += await this.repo.purgeTenant(p.tenantId, now - p.days * DAY);
    n += await this.repo.purgeOthers(
      now - DEFAULT_RETENTION_DAYS * DAY,
      policies.map((p) => p.tenantId),
    );
    if (n) this.d.log.info({ deleted: n }, 'purged call traces past their retention');
    return n;
  }

  close(): Promise<void> {
    return this.flush();
  }
}

/** Scalar sampling parameters worth replaying (never text: no stop sequences, no content). */
const PARAMS = ['temperature', 'top_p', 'max_tokens', 'max_completion_tokens', 'n', 'seed', 'presence_penalty', 'frequency_penalty', 'dimensions'] as const;

function paramsOf(body: Record<string, unknown>): Record<string, number | boolean> {
  const out: Record<string, number | boolean> = {};
  for (const k of PARAMS) {
    const v = body[k];
    if (typeof v === 'number' && Number.isFinite(v)) out[k] = v;
  }
  if (Array.isArray(body.tools)) out.tools = body.tools.length;
  return out;
}

/** A finished call waiting for the writer: the trace and the call's facts, never its content. */
type Pending = Omit<TraceInput, 'body'> & { readonly params: Record<string, number | boolean> };

/** The stored row: searchable columns and the document (the decision record plus the call's facts). */
function toRow(i: Pending): TraceRow {
  const r = i.row;
  const doc: StoredDoc = {
    v: 1,
    stream: i.stream,
    params: i.params,
    rules: { action: i.policy.action ?? 'allow', hits: i.policy.hits ?? {}, redacted: i.redacted ?? [], ...(i.policy.clamped ? { classification_clamped: true } : {}) },
    ...i.trace.toJson(),
    result: {
      status: r.status,
      http_status: r.httpStatus,
      error_code: r.errorCode,
      deployment_id: r.deploymentId,
      provider: r.provider,
      upstream_model: r.model,
      boundary: r.boundary,
      prompt_tokens: r.promptTokens,
      completion_tokens: r.completionTokens,
      tokens_estimated: r.tokensEstimated,
      cost_micros: r.costMicros,
      price_version: r.priceVersion ?? null,
      latency_ms: r.latencyMs,
      ttft_ms: r.ttftMs,
      attempts: r.attempts,
      ...((r as { cache?: string | null }).cache ? { cache: (r as { cache?: string | null }).cache } : {}),
    },
  };
  const last = doc.attempts.at(-1);
  return {
    id: newId('trc', r.createdAt),
    tenantId: r.tenantId,
    requestId: r.requestId,
    usageId: r.id,
    createdAt: r.createdAt,
    api: r.api ?? 'chat',
    endpoint: r.endpoint,
    model: r.alias,
    deployment: last?.deployment ?? null,
    userId: r.userId,
    keyId: r.keyId,
    teamId: (r as { teamId?: string | null }).teamId ?? null,
    workflow: r.workflow,
    classification: r.classification,
    status: r.status,
    httpStatus: r.httpStatus,
    errorCode: r.errorCode,
    latencyMs: r.latencyMs,
    promptTokens: r.promptTokens,
    completionTokens: r.completionTokens,
    costMicros: r.costMicros,
    trace: JSON.stringify(doc),
  };
}

/** The row the writer stores for a call (exported for bench/call-trace-recorder.ts). */
export const toRowForBench = (i: TraceInput): TraceRow => toRow({ ...i, params: paramsOf(i.body) });

interface StoredDoc extends TraceDoc {
  readonly v: 1;
  readonly stream: boolean;
  readonly params: Record<string, number | boolean>;
  readonly rules: { action: string; hits: Partial<Record<Detector, number>>; redacted: readonly Detector[]; classification_clamped?: boolean };
  readonly result: Record<string, unknown>;
}

export type TraceSummary = ReturnType<typeof summaryJson>;
export type TraceJson = ReturnType<typeof traceJson>;

function summaryJson(r: Omit<TraceRow, 'trace'>) {
  return {
    object: 'call_trace' as const,
    id: r.id,
    request_id: r.requestId,
    created_at: new Date(r.createdAt).toISOString(),
    api: r.api,
    endpoint: r.endpoint,
    model: r.model,
    deployment: r.deployment,
    user_id: r.userId,
    key_id: r.keyId,
    team_id: r.teamId,
    workflow: r.workflow,
    classification: r.classification,
    status: r.status,
    http_status: r.httpStatus,
    error_code: r.errorCode,
    latency_ms: r.latencyMs,
    prompt_tokens: r.promptTokens,
    completion_tokens: r.completionTokens,
    cost_micros: r.costMicros,
  };
}

function traceJson(r: TraceRow) {
  const { v: _v, ...doc } = JSON.parse(r.trace) as StoredDoc;
  void _v;
  return { ...summaryJson(r), usage_id: r.usageId, ...doc };
}
