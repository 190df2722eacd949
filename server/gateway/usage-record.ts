import { performance } from 'node:perf_hooks';
import type { RequestContext } from '../context.js';
import type { UsageRow } from '../db/repos/usage.js';
import { newId } from '../ids.js';
import { child, type Metrics } from '../metrics/registry.js';
import type { CallState } from './call.js';
import type { GatewayDeps } from './service.js';

const WORKFLOW = /^[A-Za-z0-9._:/-]{1,64}$/;

/**
 * The call's metric series for one label combination (endpoint, face, deployment, boundary,
 * outcome: bounded), looked up once per call instead of one child() lookup per series.
 */
function seriesOf(m: Metrics, endpoint: string, api: string, dep: string, boundary: string, outcome: string): Series {
  let byKey = seriesCache.get(m);
  if (!byKey) seriesCache.set(m, (byKey = new Map()));
  const key = `${endpoint}\u0001${api}\u0001${dep}\u0001${boundary}\u0001${outcome}`;
  let s = byKey.get(key);
  if (!s) {
    s = {
      requests: child(m.gatewayRequests, endpoint, dep, boundary, outcome),
      apiCalls: child(m.gatewayApiCalls, api, endpoint, outcome),
      duration: child(m.gatewayDuration, endpoint, dep),
      overhead: child(m.gatewayOverhead, endpoint, api),
      ttft: child(m.gatewayTtft, dep),
      upstream: child(m.gatewayUpstreamDuration, dep, endpoint),
      prompt: child(m.gatewayTokens, dep, 'prompt'),
      completion: child(m.gatewayTokens, dep, 'completion'),
    };
    byKey.set(key, s);
  }
  return s;
}
interface Counted {
  inc(value?: number): void;
}
interface Observed {
  observe(value: number): void;
}
interface Series {
  readonly requests: Counted;
  readonly apiCalls: Counted;
  readonly duration: Observed;
  readonly overhead: Observed;
  readonly ttft: Observed;
  readonly upstream: Observed;
  readonly prompt: Counted;
  readonly completion: Counted;
}
const seriesCache = new WeakMap<Metrics, Map<string, Series>>();

/**
 * Usage (DESIGN.md §4 step 7): the call's metrics and its one usage record, whatever happened
 * (refused, failed, client gone, ok), priced by metering before anyone sees it. Runs once.
 */
export function finishCall(d: GatewayDeps, ctx: RequestContext, st: CallState): void {
  if (st.finished) return;
  st.finished = true;
  st.otel?.end(st);
  const totalMs = performance.now() - st.t0;
  const dep = st.deployment;
  const m = d.metrics;
  const api = st.call.api;
  const s = seriesOf(m, st.endpoint, api, dep?.name ?? 'none', dep?.boundary ?? 'none', st.outcome);
  s.requests.inc();
  s.apiCalls.inc();
  s.duration.observe(totalMs / 1000);
  s.overhead.observe(Math.max(0, totalMs - st.upstreamMs) / 1000);
  if (st.ttftMs !== null) s.ttft.observe(st.ttftMs / 1000);
  if (dep && st.attempts) s.upstream.observe(st.upstreamMs / 1000);
  if (dep) {
    if (st.promptTokens) s.prompt.inc(st.promptTokens);
    if (st.completionTokens) s.completion.inc(st.completionTokens);
  }
  m.gatewayInflight.dec();
  const tenant = ctx.tenant;
  if (!tenant) return;
  const wf = st.call.workflow;
  const p = ctx.principal;
  const row: UsageRow = {
    id: newId('use'),
    tenantId: tenant.id,
    requestId: ctx.requestId,
    userId: p?.userId ?? null,
    keyId: p?.keyId ?? null,
    workflow: wf && WORKFLOW.test(wf) ? wf : null,
    teamId: p?.team?.id ?? null,
    endpoint: st.endpoint,
    api,
    alias: st.alias,
    deploymentId: dep?.id ?? null,
    provider: dep?.kind ?? null,
    model: st.model,
    boundary: dep?.boundary ?? null,
    classification: st.classification,
    policy: JSON.stringify(st.policy),
    promptTokens: st.promptTokens,
    completionTokens: st.completionTokens,
    tokensEstimated: st.estimated,
    costMicros: 0,
    latencyMs: Math.round(totalMs),
    ttftMs: st.ttftMs === null ? null : Math.round(st.ttftMs),
    stream: st.stream,
    attempts: st.attempts,
    status: st.status,
    httpStatus: st.httpStatus,
    errorCode: st.errorCode,
    createdAt: d.clock.now(),
  };
  if (st.cache) {
    row.cache = st.cache.status;
    row.savedCostMicros = st.cache.saved;
    row.costMicros = st.cache.charge;
  }
  d.metering?.complete(st.reservation, row);
  st.cache?.end(row, st);
  if (!st.call.keepUsage) d.usage.record(row);
  st.content?.end(row);
  if (st.trace) d.traces?.finish({ trace: st.trace, row, stream: st.stream, policy: st.policy, redacted: st.redactedTypes, body: st.call.body });
  st.call.onUsage?.(row);
}
