import type { IncomingMessage as Request, ServerResponse as Response } from 'node:http';
import type { Logger } from 'pino';
import type { Access } from '../access/authorize.js';
import type { Entitlements } from '../access/entitlements.js';
import type { Clock } from '../clock.js';
import type { RequestContext } from '../context.js';
import { requireTenant } from '../context.js';
import { AppError } from '../errors.js';
import type { Metrics } from '../metrics/registry.js';
import type { UsageWriter } from '../metering/usage.js';
import type { MeteringHook } from '../metering/index.js';
import { estimateChat, estimateEmbeddings } from '../metering/estimate.js';
import type { UsageRow } from '../db/repos/usage.js';
import { UpstreamError } from '../providers/index.js';
import type { Catalogue } from '../routing/catalogue.js';
import { CLIENT_GONE_ERROR, factsOf, markGone, newState, toGatewayError, type CallState, type GatewayCall, type GatewayResult, type Plan } from './call.js';
import type { ResponseCache } from './cache/index.js';
import type { ContentLog } from './content-log.js';
import type { Telemetry } from '../telemetry/index.js';
import type { CallTraces } from '../traces/service.js';
import { writeChat } from './faces/openai-chat.js';
import { Planner } from './plan.js';
import type { PolicyCache } from './policy-cache.js';
import { RefusalAudit } from './refusal-audit.js';
import { stream, unary } from './relay.js';
import { finishCall } from './usage-record.js';
import { settleUsage } from './settle.js';

export { estimateTokens, toGatewayError } from './call.js';
export type { Api, CallFacts, Endpoint, GatewayCall, GatewayResult } from './call.js';

/**
 * One AI call, end to end (DESIGN.md §4 and §4a), as a transport-free pipeline: plan
 * (authorize, classify, data-boundary policy and content rules, candidates: plan.ts) →
 * admission (metering) → attempt (retries, fallback, breakers: attempt.ts) → relay (a whole
 * answer or the chunks the face pulls: relay.ts) → one usage record (usage-record.ts),
 * whatever happened. It never writes HTTP: each face (faces/, ollama-api.ts, the batch
 * executor) decodes its request into a GatewayCall and encodes the GatewayResult.
 */
export interface GatewayDeps {
  readonly catalogue: Catalogue;
  readonly policies: PolicyCache;
  readonly usage: UsageWriter;
  readonly access: Access;
  readonly entitlements: () => Entitlements;
  readonly metrics: Metrics;
  readonly clock: Clock;
  readonly log: Logger;
  /** Limits, quotas and cost (server/metering): admission before routing, settlement with the usage record. */
  readonly metering?: MeteringHook;
  /** Opt-in content logging (server/gateway/content-log.ts); consulted only when the tenant's policy has it on. */
  readonly content?: ContentLog;
  /** Refusals that indicate misuse, as rate-limited denied entries in the tenant's audit log. */
  readonly refusals?: RefusalAudit;
  /** OpenTelemetry (server/telemetry); absent when no collector is configured. */
  readonly telemetry?: Telemetry;
  /** Call traces (server/traces): each call's decision record, written in batches off the call path. */
  readonly traces?: CallTraces;
  /** The governed response cache (server/gateway/cache); consulted only when on for the tenant or key. */
  readonly cache?: ResponseCache;
}


export class GatewayService {
  private readonly planner: Planner;

  constructor(private readonly d: GatewayDeps) {
    this.planner = new Planner(d);
  }

  // ---- listing -----------------------------------------------------------------------

  /** Models the caller may use at its floor classification, each with its boundaries. */
  async listModels(ctx: RequestContext) {
    const tenant = requireTenant(ctx);
    await this.d.policies.load(ctx);
    const { policy, floor } = this.planner.floor(ctx);
    const ent = this.d.entitlements();
    const out = [];
    for (const name of this.d.catalogue.names(tenant.id)) {
      if (!this.d.access.authorize(ctx, 'models:list', { model: name }).allow) continue;
      const allowed = this.d.catalogue.candidates(name, tenant.id).filter((c) => this.planner.boundaryAllowed(c.deployment, floor, policy, ent, ctx));
      if (!allowed.length) continue;
      out.push({
        id: name,
        object: 'model' as const,
        created: 0,
        owned_by: 'enclave',
        type: allowed[0]!.type,
        boundaries: [...new Set(allowed.map((c) => c.deployment.boundary))],
      });
    }
    return out;
  }

  async getModel(ctx: RequestContext, id: string) {
    const m = (await this.listModels(ctx)).find((x) => x.id === id);
    if (!m) throw new AppError(404, 'model_not_found', `The model ${id} does not exist or you do not have access to it.`, { param: 'model' });
    return m;
  }

  // ---- calls ---------------------------------------------------------------------------

  /**
   * Runs one call. Never throws: refusals and failures come back as `kind: 'error'` (the
   * usage record is made by then); a stream's record is made when its chunks end, however
   * they end — so a face must always either iterate the chunks or return() them.
   */
  async run(ctx: RequestContext, call: GatewayCall): Promise<GatewayResult> {
    // The answer ends after its usage record is written (server/gateway/settle.ts).
    return settleUsage(this.d.usage, call, await this.call(ctx, call));
  }

  private async call(ctx: RequestContext, call: GatewayCall): Promise<GatewayResult> {
    this.d.metrics.gatewayInflight.inc();
    const st = newState(call);
    st.trace = this.d.traces?.begin(st.t0, call.pin);
    if (this.d.telemetry) st.otel = this.d.telemetry.call(ctx, call);
    const facts = factsOf(ctx, st);
    try {
      // The tenant's policy is cached: on a hit ready() is undefined and nothing waits.
      const loading = this.d.policies.ready(ctx);
      if (loading !== undefined) await loading;
      const plan = this.planner.plan(ctx, st, call.body);
      st.trace?.plannedWith(plan.candidates);
      // Response cache (server/gateway/cache): undefined at once when off for the caller; else its Redis read starts here, alongside admission.
      const cached = this.d.cache?.lookup(ctx, st, plan, this.planner);
      st.otel?.stage('admission');
      await this.admit(ctx, st, plan);
      st.trace?.admitted(st.reservation);
      if (plan.policy.contentLogging) st.content = this.d.content?.begin(ctx, plan.policy.contentLogging, st.endpoint, call.body);
      if (cached !== undefined) {
        // Admitted: a hit is answered without an attempt.
        const hit = await this.d.cache!.answer(ctx, st, plan, this.planner, this.d, cached);
        if (hit) return hit;
      }
      if (st.stream) {
        const chunks = await stream(this.d, this.planner, ctx, st, plan, () => finishCall(this.d, ctx, st));
        return { kind: 'stream', chunks, facts };
      }
      const body = await unary(this.d, this.planner, ctx, st, plan);
      finishCall(this.d, ctx, st);
      return { kind: 'whole', body, facts };
    } catch (e) {
      const error = await this.failed(ctx, st, e);
      finishCall(this.d, ctx, st);
      return { kind: 'error', error, facts };
    }
  }

  /**
   * The OpenAI Chat Completions face over node's response, for in-process callers (the web
   * chat: server/chat/routes.ts). `opts.onUsage` sees the usage record once metering has
   * priced it, before the call resolves.
   */
  // Client JSON: the pipeline checks the fields it reads.
  async chat(ctx: RequestContext, body: Record<string, any>, req: Request, res: Response, opts?: CallOptions): Promise<void> {
    await writeChat(this, ctx, req, res, body, { api: 'chat', ...(opts?.onUsage ? { onUsage: opts.onUsage } : {}) });
  }

  /** Kept for in-process callers written against the earlier interface: run() counts in-flight calls itself. */
  beginCall(): void {}

  /** Limit (DESIGN.md §4 step 3): metering admission — key, user, tenant plan, licence — before anything goes upstream. */
  private async admit(ctx: RequestContext, st: CallState, plan: Plan): Promise<void> {
    if (!this.d.metering) return;
    const body = st.call.body;
    // Pessimistic (issue 16, server/metering/estimate.ts): system/tool content, max_tokens × n, the deployments' maxOutputTokens when unset.
    const est = st.endpoint === 'chat' ? estimateChat(body, plan.messages, plan.candidates) : estimateEmbeddings(body.input);
    st.reservation = await this.d.metering.admit(ctx, { model: st.alias!, promptTokens: est.promptTokens, maxTokens: est.maxTokens });
  }

  /** A call that ended before it produced anything: the state for its record, the error for its face. */
  private async failed(ctx: RequestContext, st: CallState, e: unknown): Promise<AppError> {
    if (e === CLIENT_GONE_ERROR) {
      markGone(st);
      return new AppError(499, 'client_disconnect', 'The client went away.');
    }
    const err = toGatewayError(e, st.alias);
    st.trace?.failed(err);
    st.httpStatus = err.status;
    st.errorCode = err.code;
    st.outcome = err.type;
    st.status = err.type === 'provider_error' || err.status >= 500 ? 'error' : 'refused';
    if (st.status === 'refused' && RefusalAudit.indicatesMisuse(err.status)) {
      // run() never throws: an audit log that cannot be written is logged, the refusal still answered.
      await this.d.refusals?.record(ctx, err.code, { model: st.alias, classification: st.classification, api: st.call.api }).catch((a: Error) => ctx.log.warn({ err: a.message }, 'could not audit a refused call'));
    }
    if (err.status >= 500 && !(e instanceof UpstreamError) && !(e instanceof AppError)) ctx.log.error({ err: (e as Error)?.message, stack: (e as Error)?.stack?.split('\n', 4).join(' | ') }, 'gateway call failed');
    return err;
  }
}

/** Per-call options for in-process callers (the web chat). */
export interface CallOptions {
  /** Called once with the call's usage record after metering priced it (cost_micros, tokens, request id). */
  readonly onUsage?: (row: Readonly<UsageRow>) => void;
}
