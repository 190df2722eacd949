import { denialError } from '../access/authorize.js';
import type { Entitlements } from '../access/entitlements.js';
import type { Classification, RequestContext } from '../context.js';
import { requireTenant } from '../context.js';
import { AppError } from '../errors.js';
import { child } from '../metrics/registry.js';
import type { Candidate, Deployment } from '../routing/catalogue.js';
import { orderCandidates } from '../routing/catalogue.js';
import { messageTexts, redactMessages, type ContentAction, type Detector } from '../routing/content.js';
import { resolveClassification, strongestAction, type TenantPolicy } from '../routing/policy.js';
import { estimateTokens, type CallState, type Plan } from './call.js';
import type { GatewayDeps } from './service.js';
import { dropReason } from '../traces/recorder.js';
import { pinCandidates } from '../traces/replay.js';

/**
 * Plan (DESIGN.md §4 steps 2 and 4): who may call which model at which classification, which
 * deployments the tenant's data-boundary policy and content rules leave, in which order, and
 * what each deployment receives (redacted copies for non-local ones). Nothing here waits.
 */
export class Planner {
  constructor(private readonly d: GatewayDeps) {}

  /** The caller's floor classification (key floor, tenant policy default, tenant default). */
  floor(ctx: RequestContext): { policy: TenantPolicy; floor: Classification } {
    const { policy, tenantDefault } = this.d.policies.get(ctx);
    const keyId = ctx.principal?.keyId;
    const floor = (keyId && policy.keyFloors[keyId]) || policy.defaultClassification || tenantDefault;
    return { policy, floor };
  }

  boundaryAllowed(d: Deployment, c: Classification, policy: TenantPolicy, ent: Entitlements, ctx?: RequestContext): boolean {
    // Plan call point: a plan without the cloud_providers capability never reaches public deployments.
    if (ctx && d.boundary === 'public' && this.d.metering?.allowsBoundary && !this.d.metering.allowsBoundary(ctx, d.boundary)) return false;
    // Licence call point: air-gapped deployment mode forbids `public` at call time too.
    if (ent.allowsBoundary && !ent.allowsBoundary(d.boundary)) return false;
    return policy.allows(c, d.boundary, d.region);
  }

  // Client JSON: checked here where it is read.
  plan(ctx: RequestContext, st: CallState, body: Record<string, any>): Plan {
    const tenant = requireTenant(ctx);
    const type = st.endpoint === 'chat' ? 'chat' : 'embedding';
    const model: unknown = body.model;
    let messages: unknown = body.messages;
    let embedTexts: string[] | undefined;
    if (type === 'embedding') {
      const input = body.input;
      embedTexts = typeof input === 'string' ? [input] : Array.isArray(input) ? input.filter((x: unknown) => typeof x === 'string') : [];
      messages = [{ role: 'user', content: embedTexts.join('\n') }];
    }
    if (typeof model !== 'string' || !model) throw new AppError(400, 'invalid_request', 'model is required.', { param: 'model' });
    st.alias = model;
    if (!Array.isArray(messages) || messages.length === 0) throw new AppError(400, 'invalid_request', 'messages must be a non-empty array.', { param: 'messages' });

    const { policy, floor } = this.floor(ctx);
    const cls = resolveClassification(st.call.classification, floor);
    st.classification = cls.classification;
    ctx.classification = cls.classification;
    if (cls.clamped) st.policy.clamped = true;
    st.trace?.classified(ctx, policy, cls);

    const action = type === 'chat' ? 'models:invoke' : 'embeddings:create';
    const decision = this.d.access.authorize(ctx, action, { model, classification: cls.classification });
    if (!decision.allow) throw denialError(decision);

    const all = this.d.catalogue.candidates(model, tenant.id).filter((c) => c.type === type);
    if (!all.length) throw new AppError(404, 'model_not_found', `The model ${model} does not exist or you do not have access to it.`, { param: 'model' });
    const ent = this.d.entitlements();
    let allowed = all.filter((c) => this.boundaryAllowed(c.deployment, cls.classification, policy, ent, ctx));
    st.trace?.candidates(all, allowed, (c) => dropReason(c.deployment, ent, ctx, this.d.metering?.allowsBoundary));
    if (!allowed.length) {
      throw new AppError(403, 'policy_boundary_denied', `No deployment of ${model} is allowed for ${cls.classification} data by this tenant's data-boundary policy.`, {
        type: 'policy_error',
        details: { classification: cls.classification },
      });
    }

    // Content rules: scan only for detectors that do something at this classification.
    const active = policy.active[cls.classification];
    let redactSet: Set<Detector> | undefined;
    let contentAction: ContentAction = 'allow';
    if (active.size) {
      const texts = embedTexts ?? messageTexts(messages as any[]);
      const hits = policy.scanner.scan(texts, active);
      const types = Object.keys(hits) as Detector[];
      if (types.length) {
        const actions = policy.actions[cls.classification];
        contentAction = strongestAction(hits, actions);
        st.policy.hits = hits;
        for (const t of types) this.d.metrics.gatewayRuleHits.labels(t).inc(hits[t]);
        redactSet = new Set(types.filter((t) => actions[t] === 'redact'));
      }
    }
    st.policy.action = contentAction;
    child(this.d.metrics.gatewayPolicyDecisions, cls.classification, contentAction).inc();
    if (contentAction === 'block') {
      throw new AppError(403, 'policy_content_blocked', `The request contains data (${Object.keys(st.policy.hits ?? {}).join(', ')}) that this tenant's policy blocks at ${cls.classification}.`, {
        type: 'policy_error',
      });
    }
    if (contentAction === 'route_local') {
      allowed = allowed.filter((c) => c.deployment.boundary === 'local');
      if (!allowed.length) {
        throw new AppError(403, 'policy_local_unavailable', `The request contains data that must stay local, and no local deployment of ${model} is available.`, {
          type: 'policy_error',
        });
      }
    }

    if (st.call.pin) allowed = pinCandidates(allowed, st.call.pin, model);

    // Licence call point: the monthly token allowance, at admission (metering's admission includes it when wired).
    if (ent.checkTokens && !this.d.metering) {
      const estimate = estimateTokens(embedTexts ?? messageTexts(messages as any[]));
      const adm = ent.checkTokens(this.d.usage.tokensThisMonth(), estimate);
      if (!adm.allowed) throw adm.error;
    }

    return { policy, classification: cls.classification, candidates: orderCandidates(allowed), redactSet: redactSet?.size ? redactSet : undefined, messages: messages as any[], action };
  }

  /** The final check on the deployment actually called (after alias resolution and fallback). */
  authorizeDeployment(ctx: RequestContext, plan: Plan, st: CallState, c: Candidate): void {
    const ent = this.d.entitlements();
    const d = c.deployment;
    const ok =
      d.approved &&
      d.enabled &&
      (d.tenantRef === null || d.tenantRef === ctx.tenant?.id) &&
      this.boundaryAllowed(d, plan.classification, plan.policy, ent, ctx) &&
      (st.policy.action !== 'route_local' || d.boundary === 'local');
    if (!ok) throw new AppError(403, 'policy_boundary_denied', `A deployment of ${st.alias} is not allowed for ${plan.classification} data.`, { type: 'policy_error' });
    const decision = this.d.access.authorize(ctx, plan.action, { model: st.alias!, classification: plan.classification });
    if (!decision.allow) throw denialError(decision);
  }

  /** What candidate `c` receives: the client's request with its model name, redacted when it leaves the machine. */
  bodyFor(plan: Plan, c: Candidate, body: Record<string, any>, st: CallState): Record<string, any> {
    const out: Record<string, any> = { ...body, model: c.model };
    delete out.stream;
    delete out.stream_options;
    if (st.endpoint === 'embeddings') delete out.encoding_format; // upstream floats; base64 is done here
    st.redactedTypes = undefined;
    if (plan.redactSet && c.deployment.boundary !== 'local') {
      if (st.endpoint === 'chat') out.messages = redactMessages(plan.messages, plan.policy.scanner, plan.redactSet);
      else out.input = Array.isArray(body.input) ? body.input.map((s: unknown) => (typeof s === 'string' ? plan.policy.scanner.redact(s, plan.redactSet!) : s)) : plan.policy.scanner.redact(String(body.input), plan.redactSet);
      st.policy.redacted = true;
      st.redactedTypes = [...plan.redactSet];
    }
    return out;
  }
}
