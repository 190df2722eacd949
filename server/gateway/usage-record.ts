import { performance } from 'node:perf_hooks';
import type { RequestContext } from '../context.js';
import type { UsageRow } from '../db/repos/usage.js';
import { newId } from '../ids.js';
import { child } from '../metrics/registry.js';
import type { CallState } from './call.js';
import type { GatewayDeps } from './service.js';

const WORKFLOW = /^[A-Za-z0-9._:/-]{1,64}$/;

/**
 * Usage (DESIGN.md §4 step 7): the call's metrics and its one usage record, whatever happened
 * (refused, failed, client gone, ok), priced by metering before anyone sees it. Runs once.
 */
export function finishCall(d: GatewayDeps, ctx: RequestContext, st: CallState): void {
  if (st.finished) return;
  st.finished = true;
  const totalMs = performance.now() - st.t0;
  const dep = st.deployment;
  const m = d.metrics;
  const api = st.call.api;
  const depLabel = dep?.name ?? 'none';
  child(m.gatewayRequests, st.endpoint, depLabel, dep?.boundary ?? 'none', st.outcome).inc();
  child(m.gatewayApiCalls, api, st.endpoint, st.outcome).inc();
  child(m.gatewayDuration, st.endpoint, depLabel).observe(totalMs / 1000);
  child(m.gatewayOverhead, st.endpoint, api).observe(Math.max(0, totalMs - st.upstreamMs) / 1000);
  if (st.ttftMs !== null) child(m.gatewayTtft, depLabel).observe(st.ttftMs / 1000);
  if (dep && st.attempts) child(m.gatewayUpstreamDuration, depLabel, st.endpoint).observe(st.upstreamMs / 1000);
  if (dep) {
    if (st.promptTokens) child(m.gatewayTokens, depLabel, 'prompt').inc(st.promptTokens);
    if (st.completionTokens) child(m.gatewayTokens, depLabel, 'completion').inc(st.completionTokens);
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
  d.metering?.complete(st.reservation, row);
  if (!st.call.keepUsage) d.usage.record(row);
  st.content?.end(row);
  st.call.onUsage?.(row);
}
