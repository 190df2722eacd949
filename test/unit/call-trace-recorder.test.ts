import { describe, expect, it } from 'vitest';
import type { Entitlements } from '../../server/access/entitlements.js';
import type { RequestContext } from '../../server/context.js';
import { AppError } from '../../server/errors.js';
import { UpstreamError } from '../../server/providers/index.js';
import type { Candidate, Deployment } from '../../server/routing/catalogue.js';
import type { TenantPolicy } from '../../server/routing/policy.js';
import { CallTrace, dropReason } from '../../server/traces/recorder.js';

/**
 * The decision record's reasons that the integration test (call-trace.test.ts) does not reach
 * with real deployments: breaker and concurrency skips, content-rule and pin drops, plan and
 * licence drops, a classification from the key's floor. Pure: the recorder is plain data.
 */
const dep = (name: string, boundary: Deployment['boundary'] = 'private'): Deployment => ({ id: `prv_${name}`, name, boundary }) as unknown as Deployment;
const cand = (d: Deployment): Candidate => ({ deployment: d, model: 'm', type: 'chat', priority: 1, weight: 1 });
const ctx = { principal: { kind: 'api_key', id: 'key_1', keyId: 'key_1' } } as unknown as RequestContext;

describe('call trace recorder', () => {
  it('breaker and concurrency skips are candidate outcomes and fallbacks; the next deployment answers', () => {
    const [a, b, c] = [dep('a'), dep('b'), dep('c')];
    const all = [cand(a), cand(b), cand(c)];
    const t = new CallTrace(0);
    t.classified(ctx, { keyFloors: { key_1: 'confidential' }, defaultClassification: 'internal' } as unknown as TenantPolicy, { classification: 'confidential', requested: 'public', clamped: true });
    t.candidates(all, all, () => 'policy');
    t.plannedWith(all);
    t.admitted(undefined);
    t.skip(a, 'breaker');
    t.slot(b, true, false);
    t.slot(c, true, true);
    t.tryStart(c, 'm');
    t.tryEnd();
    t.end();
    const j = t.toJson();
    expect(j.classification_decision).toEqual({ value: 'confidential', source: 'key_floor', requested: 'public' });
    expect(j.candidates.map((x) => [x.deployment, x.kept, x.outcome])).toEqual([
      ['a', true, 'breaker'],
      ['b', true, 'concurrency'],
      ['c', true, 'tried'],
    ]);
    expect(j.attempts).toHaveLength(1);
    expect(j.attempts[0]).toMatchObject({ deployment: 'c', status: 'ok', queued: true });
    expect(j.fallbacks).toEqual([
      { from: 'a', to: null, reason: 'breaker' },
      { from: 'b', to: null, reason: 'concurrency' },
    ]);
    expect(j.admission).toEqual({ store: 'none', levels: [], waited_ms: expect.any(Number) });
  });

  it('a retry on the same deployment is not a fallback; a non-retryable error ends the call', () => {
    const a = dep('a');
    const t = new CallTrace(0);
    t.candidates([cand(a)], [cand(a)], () => 'policy');
    t.plannedWith([cand(a)]);
    t.tryStart(a, 'm');
    t.tryEnd(new UpstreamError('provider_timeout', 'x'));
    t.tryStart(a, 'm');
    t.tryEnd(new UpstreamError('provider_request_rejected', 'x', 400));
    t.failed(new AppError(400, 'provider_request_rejected', 'x'));
    t.end();
    const j = t.toJson();
    expect(j.attempts.map((x) => [x.status, x.retryable, x.upstream_status])).toEqual([
      ['provider_timeout', true, undefined],
      ['provider_request_rejected', false, 400],
    ]);
    expect(j.fallbacks).toEqual([]);
    expect(j.admission).toBeNull();
  });

  it('dropped candidates: plan, licence, policy, then content rule (local only) and a replay pin', () => {
    const pub = dep('pub', 'public');
    const air = dep('air', 'private');
    const loc = dep('loc', 'local');
    const pin = dep('pin', 'private');
    const other = dep('other', 'private');
    const noCloud = (_: RequestContext, b: string) => b !== 'public';
    expect(dropReason(pub, {} as Entitlements, ctx, noCloud)).toBe('plan');
    expect(dropReason(air, { allowsBoundary: (b: string) => b === 'local' } as unknown as Entitlements, ctx, noCloud)).toBe('licence');
    expect(dropReason(air, {} as Entitlements, ctx, undefined)).toBe('policy');

    const local = new CallTrace(0);
    const all = [cand(pub), cand(loc)];
    local.candidates(all, all, () => 'policy');
    local.plannedWith([all[1]!]); // a content rule kept only local deployments
    expect(local.toJson().candidates.map((x) => [x.deployment, x.kept, x.reason ?? x.outcome])).toEqual([
      ['pub', false, 'content_rule'],
      ['loc', true, 'not_reached'],
    ]);

    const pinned = new CallTrace(0, 'pin');
    const both = [cand(other), cand(pin)];
    pinned.candidates(both, both, () => 'policy');
    pinned.plannedWith([both[1]!]);
    expect(pinned.toJson().candidates.find((x) => x.deployment === 'other')).toMatchObject({ kept: false, reason: 'pinned' });
  });

  it('an admission refusal names its level and limit; stages give the refused stage the rest of the time', () => {
    const t = new CallTrace(performance.now() - 5);
    t.plannedWith([]);
    t.failed(new AppError(429, 'quota_exceeded', 'x', { details: { level: 'team', limit: 'monthly_tokens', limit_value: 1000, reset: '2026-01-01T00:00:00.000Z' } }));
    t.end();
    const j = t.toJson();
    expect(j.admission?.refused).toEqual({ level: 'team', limit: 'monthly_tokens', limit_value: 1000, reset: '2026-01-01T00:00:00.000Z', code: 'quota_exceeded' });
    expect(j.stages_ms.admission).toBeGreaterThanOrEqual(0);
    expect(j.stages_ms.upstream).toBeNull();
  });

  it('names what raised the classification when Enclave raised it (knowledge, an assistant); a client header stays the header', () => {
    const policy = { keyFloors: {}, defaultClassification: 'internal' } as unknown as TenantPolicy;
    const raised = { ...ctx, classificationRaised: { by: 'knowledge', to: 'confidential' } } as RequestContext;
    const a = new CallTrace(0);
    a.classified(raised, policy, { classification: 'confidential', requested: 'confidential', clamped: false });
    expect(a.toJson().classification_decision).toMatchObject({ value: 'confidential', source: 'knowledge' });
    const b = new CallTrace(0);
    b.classified({ ...ctx, classificationRaised: { by: 'assistant', to: 'restricted' } } as RequestContext, policy, { classification: 'restricted', requested: 'restricted', clamped: false });
    expect(b.toJson().classification_decision).toMatchObject({ source: 'assistant' });
    // Raised to something else than what the call carries: the header decided.
    const c = new CallTrace(0);
    c.classified(raised, policy, { classification: 'restricted', requested: 'restricted', clamped: false });
    expect(c.toJson().classification_decision).toMatchObject({ source: 'header' });
  });
});
