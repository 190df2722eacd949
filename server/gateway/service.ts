import type { IncomingMessage as Request, ServerResponse as Response } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { denialError, type Access } from '../access/authorize.js';
import type { Entitlements } from '../access/entitlements.js';
import type { Clock } from '../clock.js';
import type { Classification, RequestContext } from '../context.js';
import { requireTenant } from '../context.js';
import { AppError } from '../errors.js';
import { requestHeader } from '../http/request-context.js';
import { sendJson } from '../http/respond.js';
import { newId } from '../ids.js';
import { child, type Metrics } from '../metrics/registry.js';
import type { UsageWriter } from '../metering/usage.js';
import type { MeteringHook, Reservation } from '../metering/index.js';
import { estimateChat, estimateEmbeddings } from '../metering/estimate.js';
import type { UsageRow } from '../db/repos/usage.js';
import { UpstreamError, type ChatCompletionChunk } from '../providers/index.js';
import type { Candidate, Catalogue, Deployment } from '../routing/catalogue.js';
import { orderCandidates } from '../routing/catalogue.js';
import { messageTexts, redactMessages, type ContentAction, type Detector } from '../routing/content.js';
import { resolveClassification, strongestAction, type TenantPolicy } from '../routing/policy.js';
import type { PolicyCache } from './policy-cache.js';
import type { ContentCapture, ContentLog } from './content-log.js';
import { RefusalAudit } from './refusal-audit.js';

/**
 * One AI call, end to end (DESIGN.md §4): authorize → classify → route under the tenant's
 * data-boundary policy and content rules → call with timeouts, retries before the first
 * byte, fallback to the next *allowed* candidate, breaker and concurrency limit → relay
 * (SSE) → one usage record, whatever happened. Routes stay thin; this owns the operation.
 */
export type Endpoint = 'chat' | 'embeddings';

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
}

/** What the routing decided, kept for the usage record. */
interface CallState {
  readonly endpoint: Endpoint;
  readonly t0: number;
  /** ms spent waiting for upstreams (excluded from the overhead). */
  upstreamMs: number;
  alias: string | null;
  classification: Classification | null;
  deployment: Deployment | null;
  model: string | null;
  attempts: number;
  policy: { action?: ContentAction; hits?: Partial<Record<Detector, number>>; redacted?: boolean; clamped?: boolean; fallbacks?: number };
  promptTokens: number;
  completionTokens: number;
  estimated: boolean;
  ttftMs: number | null;
  stream: boolean;
  status: 'ok' | 'error' | 'refused' | 'client_disconnect' | 'stream_error';
  httpStatus: number;
  errorCode: string | null;
  outcome: string;
  /** The metering reservation (settled in finish()). */
  reservation?: Reservation;
  /** Detector types redacted from what the called deployment received (types only, never the text). */
  redactedTypes?: readonly Detector[] | undefined;
  /** Set only when the tenant logs content: collects what the client sent and received. */
  content: ContentCapture | undefined;
}

const CLASS_HEADER = 'x-enclave-classification';
const WORKFLOW = /^[A-Za-z0-9._:/-]{1,64}$/;

export class GatewayService {
  constructor(private readonly d: GatewayDeps) {}

  // ---- listing -----------------------------------------------------------------------

  /** Models the caller may use at its floor classification, each with its boundaries. */
  listModels(ctx: RequestContext) {
    const tenant = requireTenant(ctx);
    const { policy, floor } = this.floor(ctx);
    const ent = this.d.entitlements();
    const out = [];
    for (const name of this.d.catalogue.names(tenant.id)) {
      if (!this.d.access.authorize(ctx, 'models:list', { model: name }).allow) continue;
      const allowed = this.d.catalogue.candidates(name, tenant.id).filter((c) => this.boundaryAllowed(c.deployment, floor, policy, ent, ctx));
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

  getModel(ctx: RequestContext, id: string) {
    const m = this.listModels(ctx).find((x) => x.id === id);
    if (!m) throw new AppError(404, 'model_not_found', `The model ${id} does not exist or you do not have access to it.`, { param: 'model' });
    return m;
  }

  // ---- calls ---------------------------------------------------------------------------

  /**
   * `opts.onUsage` (in-process callers such as the web chat; /v1 passes nothing) sees the
   * usage record once metering has priced it, before the call resolves.
   */
  async chat(ctx: RequestContext, body: Record<string, any>, req: Request, res: Response, opts?: CallOptions): Promise<void> {
    const st = newState('chat', body.stream === true);
    try {
      const plan = this.plan(ctx, st, req, body.model, body.messages, 'chat');
      await this.limit(ctx, st, plan, body, res);
      if (plan.policy.contentLogging) st.content = this.d.content?.begin(ctx, plan.policy.contentLogging, 'chat', body);
      if (st.stream) await this.streamChat(ctx, st, plan, body, res);
      else await this.unary(ctx, st, plan, body, res, 'chat');
    } catch (e) {
      this.fail(ctx, st, e, res);
    } finally {
      this.finish(ctx, st, req, opts?.onUsage);
    }
  }

  async embeddings(ctx: RequestContext, body: Record<string, any>, req: Request, res: Response): Promise<void> {
    const st = newState('embeddings', false);
    try {
      const input = body.input;
      const texts = typeof input === 'string' ? [input] : Array.isArray(input) ? input.filter((x: unknown) => typeof x === 'string') : [];
      const plan = this.plan(ctx, st, req, body.model, [{ role: 'user', content: texts.join('\n') }], 'embedding', texts);
      await this.limit(ctx, st, plan, body, res);
      if (plan.policy.contentLogging) st.content = this.d.content?.begin(ctx, plan.policy.contentLogging, 'embeddings', body);
      await this.unary(ctx, st, plan, body, res, 'embeddings');
    } catch (e) {
      this.fail(ctx, st, e, res);
    } finally {
      this.finish(ctx, st, req);
    }
  }

  /** Limit (DESIGN.md §4 step 3): metering admission — key, user, tenant plan, licence — before anything goes upstream. */
  private async limit(ctx: RequestContext, st: CallState, plan: Plan, body: Record<string, any>, res: Response): Promise<void> {
    if (!this.d.metering) return;
    // Pessimistic (issue 16): system/tool content, max_tokens × n, the deployments' maxOutputTokens when unset.
    const est = st.endpoint === 'chat' ? estimateChat(body, plan.messages, plan.candidates) : estimateEmbeddings(body.input);
    st.reservation = await this.d.metering.admit(ctx, { model: st.alias!, promptTokens: est.promptTokens, maxTokens: est.maxTokens });
    for (const k in st.reservation.headers) res.setHeader(k, st.reservation.headers[k]!);
  }

  // ---- routing -------------------------------------------------------------------------

  private floor(ctx: RequestContext): { policy: TenantPolicy; floor: Classification } {
    const { policy, tenantDefault } = this.d.policies.get(ctx);
    const keyId = ctx.principal?.keyId;
    const floor = (keyId && policy.keyFloors[keyId]) || policy.defaultClassification || tenantDefault;
    return { policy, floor };
  }

  private boundaryAllowed(d: Deployment, c: Classification, policy: TenantPolicy, ent: Entitlements, ctx?: RequestContext): boolean {
    // Plan call point: a plan without the cloud_providers capability never reaches public deployments.
    if (ctx && d.boundary === 'public' && this.d.metering?.allowsBoundary && !this.d.metering.allowsBoundary(ctx, d.boundary)) return false;
    // Licence call point: air-gapped deployment mode forbids `public` at call time too.
    if (ent.allowsBoundary && !ent.allowsBoundary(d.boundary)) return false;
    return policy.allows(c, d.boundary, d.region);
  }

  private plan(
    ctx: RequestContext,
    st: CallState,
    req: Request,
    model: unknown,
    messages: unknown,
    type: 'chat' | 'embedding',
    embedTexts?: string[],
  ): Plan {
    const tenant = requireTenant(ctx);
    if (typeof model !== 'string' || !model) throw new AppError(400, 'invalid_request', 'model is required.', { param: 'model' });
    st.alias = model;
    if (!Array.isArray(messages) || messages.length === 0) throw new AppError(400, 'invalid_request', 'messages must be a non-empty array.', { param: 'messages' });

    const { policy, floor } = this.floor(ctx);
    const cls = resolveClassification(requestHeader(req, CLASS_HEADER), floor);
    st.classification = cls.classification;
    ctx.classification = cls.classification;
    if (cls.clamped) st.policy.clamped = true;

    const action = type === 'chat' ? 'models:invoke' : 'embeddings:create';
    const decision = this.d.access.authorize(ctx, action, { model, classification: cls.classification });
    if (!decision.allow) throw denialError(decision);

    const all = this.d.catalogue.candidates(model, tenant.id).filter((c) => c.type === type);
    if (!all.length) throw new AppError(404, 'model_not_found', `The model ${model} does not exist or you do not have access to it.`, { param: 'model' });
    const ent = this.d.entitlements();
    let allowed = all.filter((c) => this.boundaryAllowed(c.deployment, cls.classification, policy, ent, ctx));
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

    // Licence call point: the monthly token allowance, at admission (metering's admission includes it when wired).
    if (ent.checkTokens && !this.d.metering) {
      const estimate = estimateTokens(embedTexts ?? messageTexts(messages as any[]));
      const adm = ent.checkTokens(this.d.usage.tokensThisMonth(), estimate);
      if (!adm.allowed) throw adm.error;
    }

    return { policy, classification: cls.classification, candidates: orderCandidates(allowed), redactSet: redactSet?.size ? redactSet : undefined, messages: messages as any[], action };
  }

  /** The final check on the deployment actually called (after alias resolution and fallback). */
  private authorizeDeployment(ctx: RequestContext, plan: Plan, st: CallState, c: Candidate): void {
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

  private bodyFor(plan: Plan, c: Candidate, body: Record<string, any>, st: CallState): Record<string, any> {
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

  // ---- attempts ------------------------------------------------------------------------

  /**
   * Tries candidates in order; per candidate up to 1 + maxRetries attempts with jittered
   * backoff on retryable errors. `run` performs one attempt and returns true on success;
   * it throws UpstreamError (retryable or not) only while nothing reached the client.
   */
  private async attempt(ctx: RequestContext, st: CallState, plan: Plan, res: Response, run: (c: Candidate, ac: AbortController) => Promise<void>): Promise<void> {
    let last: unknown;
    let tried = 0;
    for (const c of plan.candidates) {
      if (res.destroyed) break;
      this.authorizeDeployment(ctx, plan, st, c);
      const d = c.deployment;
      if (!d.breaker.tryAcquire()) {
        last ??= new AppError(503, 'provider_unavailable', `The model ${st.alias} is unavailable right now (its provider failed repeatedly; retry later).`, { type: 'provider_error' });
        continue;
      }
      const slot = d.limiter.acquire(d.options.queueMs);
      const got = slot === true || slot === false ? slot : await slot;
      if (!got) {
        d.breaker.release();
        last = new AppError(503, 'provider_busy', `The model ${st.alias} is at its concurrency limit; retry later.`, { type: 'provider_error' });
        continue;
      }
      if (tried++ > 0) {
        st.policy.fallbacks = (st.policy.fallbacks ?? 0) + 1;
        this.d.metrics.gatewayFallbacks.labels(st.endpoint).inc();
      }
      st.deployment = d;
      st.model = c.model;
      try {
        for (let i = 0; i <= d.options.maxRetries; i++) {
          st.attempts++;
          const ac = new AbortController();
          const onClose = (): void => ac.abort(CLIENT_GONE);
          res.once('close', onClose);
          try {
            await run(c, ac);
            d.breaker.success();
            child(this.d.metrics.gatewayUpstreamAttempts, d.name, 'ok').inc();
            return;
          } catch (e) {
            if (ac.signal.aborted && ac.signal.reason === CLIENT_GONE) {
              d.breaker.release();
              throw CLIENT_GONE_ERROR;
            }
            if (!(e instanceof UpstreamError) && !(e instanceof AppError)) {
              // Our own failure (building the upstream request overflowed, a translation bug …):
              // it says nothing about the deployment's health, so it never counts against the
              // breaker that every tenant shares, and it is not retried elsewhere.
              d.breaker.release();
              throw e;
            }
            const err = e;
            if (err instanceof UpstreamError) {
              this.d.metrics.gatewayUpstreamAttempts.labels(d.name, err.code).inc();
              logUpstream(ctx, d.name, err);
            }
            if (err instanceof AppError || res.headersSent) {
              if (err instanceof UpstreamError && err.unhealthy) d.breaker.failure(err.code);
              else d.breaker.release();
              throw err;
            }
            last = err;
            if (err.unhealthy) d.breaker.failure(err.code);
            else if (!err.retryable) d.breaker.success(); // the upstream answered: healthy, but the request is refused
            if (!err.retryable) throw err;
            if (d.breaker.state === 'open' || i === d.options.maxRetries) break;
            const wait = err.retryAfterMs !== undefined ? err.retryAfterMs : backoff(d.options.retryBaseMs, i);
            if (wait > d.options.maxRetryAfterMs) break; // not worth waiting: next candidate
            if (wait > 0) await sleep(wait, res);
            if (res.destroyed) throw CLIENT_GONE_ERROR;
            d.breaker.tryAcquire();
          } finally {
            res.off('close', onClose);
          }
        }
      } finally {
        d.limiter.release();
      }
    }
    if (res.destroyed) throw CLIENT_GONE_ERROR;
    throw last ?? new AppError(503, 'provider_unavailable', 'No provider deployment is available for this model right now.', { type: 'provider_error' });
  }

  private async unary(ctx: RequestContext, st: CallState, plan: Plan, body: Record<string, any>, res: Response, ep: Endpoint): Promise<void> {
    let result: any;
    await this.attempt(ctx, st, plan, res, async (c, ac) => {
      const d = c.deployment;
      const limit = Math.min(d.options.firstTokenMs, d.options.totalMs);
      const timer = setTimeout(() => ac.abort(TIMEOUT), limit);
      const sig = ac.signal;
      const t = performance.now();
      try {
        const b = this.bodyFor(plan, c, body, st);
        result = ep === 'chat' ? await d.adapter.chat(b as any, { signal: sig }) : await d.adapter.embed(b as any, { signal: sig });
      } catch (e) {
        if (ac.signal.reason === TIMEOUT) throw new UpstreamError('provider_timeout', `Deployment ${d.name} did not answer within ${limit} ms.`);
        throw e;
      } finally {
        clearTimeout(timer);
        st.upstreamMs += performance.now() - t;
      }
    });
    st.content?.result(ep, result);
    const u = result?.usage;
    if (u) {
      st.promptTokens = u.prompt_tokens ?? 0;
      st.completionTokens = u.completion_tokens ?? 0;
    } else {
      st.estimated = true;
      st.promptTokens = estimateTokens(ep === 'chat' ? messageTexts(plan.messages) : [String(body.input)]);
      st.completionTokens = ep === 'chat' ? estimateTokens([String(result?.choices?.[0]?.message?.content ?? '')]) : 0;
    }
    result.model = st.alias;
    if (ep === 'embeddings' && body.encoding_format === 'base64') {
      for (const e of result.data ?? []) if (Array.isArray(e.embedding)) e.embedding = Buffer.from(new Float32Array(e.embedding).buffer).toString('base64');
    }
    st.httpStatus = 200;
    st.status = 'ok';
    st.outcome = 'ok';
    this.headers(res, st);
    sendJson(res, 200, result);
  }

  private async streamChat(ctx: RequestContext, st: CallState, plan: Plan, body: Record<string, any>, res: Response): Promise<void> {
    const wantUsage = body.stream_options?.include_usage === true;
    let completionChars = 0;
    let sawUsage = false;
    try {
      await this.attempt(ctx, st, plan, res, async (c, ac) => {
        const d = c.deployment;
        const o = d.options;
        let phase: 'connect' | 'first token' | 'idle' | 'total' = 'connect';
        const abort = (): void => ac.abort(TIMEOUT);
        const started = performance.now();
        // Time to first token includes connecting, so the connect phase ends at the earlier of both.
        let timer = setTimeout(abort, Math.min(o.connectMs, o.firstTokenMs));
        const total = setTimeout(() => {
          phase = 'total';
          ac.abort(TIMEOUT);
        }, o.totalMs);
        const sig = ac.signal;
        let t = performance.now();
        const timeout = (): UpstreamError =>
          new UpstreamError('provider_timeout', `Deployment ${d.name} timed out (${phase === 'connect' ? 'connect' : phase === 'first token' ? 'time to first token' : phase === 'idle' ? 'idle between chunks' : 'total'}).`);
        try {
          let stream: AsyncIterable<ChatCompletionChunk>;
          try {
            stream = await d.adapter.chatStream(this.bodyFor(plan, c, body, st) as any, { signal: sig });
          } catch (e) {
            if (ac.signal.reason === TIMEOUT) throw timeout();
            throw e;
          }
          phase = 'first token';
          clearTimeout(timer);
          timer = setTimeout(abort, Math.max(1, o.firstTokenMs - (performance.now() - started)));
          try {
            for await (const chunk of stream) {
              st.upstreamMs += performance.now() - t;
              if (phase === 'first token') {
                phase = 'idle';
                clearTimeout(timer);
                timer = setTimeout(abort, o.idleMs);
              } else timer.refresh();
              if (chunk.usage) {
                st.promptTokens = chunk.usage.prompt_tokens ?? 0;
                st.completionTokens = chunk.usage.completion_tokens ?? 0;
                sawUsage = true;
              }
              if (!chunk.choices?.length && chunk.usage && !wantUsage) {
                t = performance.now();
                continue;
              }
              for (const ch of chunk.choices ?? []) if (ch.delta?.content) completionChars += ch.delta.content.length;
              st.content?.chunk(chunk);
              // Chunks that arrived in one upstream read leave in one write (no added delay:
              // the uncork runs as soon as this read's chunks are relayed).
              if (!res.writableCorked) {
                res.cork();
                process.nextTick(uncork, res);
              }
              if (!res.headersSent) {
                this.headers(res, st);
                res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
                res.flushHeaders();
                st.ttftMs = performance.now() - st.t0;
              }
              (chunk as any).model = st.alias;
              if (!wantUsage && 'usage' in chunk) delete (chunk as any).usage;
              if (!res.write(`data: ${JSON.stringify(chunk)}\n\n`)) await drain(res);
              t = performance.now();
            }
          } catch (e) {
            if (ac.signal.reason === TIMEOUT) throw timeout();
            throw e;
          }
        } finally {
          clearTimeout(timer);
          clearTimeout(total);
        }
      });
      if (!res.headersSent) {
        // An upstream that ended without any chunk: still answer in SSE.
        this.headers(res, st);
        res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
      }
      res.end('data: [DONE]\n\n');
      st.status = 'ok';
      st.outcome = 'ok';
      st.httpStatus = 200;
    } finally {
      if (!sawUsage) {
        st.estimated = true;
        st.promptTokens = estimateTokens(messageTexts(plan.messages));
        st.completionTokens = Math.ceil(completionChars / 4);
      }
    }
  }

  // ---- outcome -------------------------------------------------------------------------

  private headers(res: Response, st: CallState): void {
    const overhead = performance.now() - st.t0 - st.upstreamMs;
    res.setHeader('x-enclave-overhead-ms', overhead.toFixed(3));
    if (st.classification) res.setHeader('x-enclave-classification', st.classification);
    if (st.deployment) res.setHeader('x-enclave-boundary', st.deployment.boundary);
    if (st.redactedTypes?.length) res.setHeader('x-enclave-redacted', st.redactedTypes.join(','));
  }

  private fail(ctx: RequestContext, st: CallState, e: unknown, res: Response): void {
    if (e === CLIENT_GONE_ERROR || (res.destroyed && !res.writableFinished)) {
      st.status = 'client_disconnect';
      st.outcome = 'client_disconnect';
      st.httpStatus = 499;
      st.errorCode = 'client_disconnect';
      return;
    }
    const err = toGatewayError(e, st.alias);
    st.httpStatus = err.status;
    st.errorCode = err.code;
    st.outcome = err.type;
    st.status = err.type === 'provider_error' || err.status >= 500 ? 'error' : 'refused';
    if (st.status === 'refused' && RefusalAudit.indicatesMisuse(err.status)) this.d.refusals?.record(ctx, err.code, { model: st.alias, classification: st.classification, api: st.endpoint });
    if (err.status >= 500 && !(e instanceof UpstreamError) && !(e instanceof AppError)) ctx.log.error({ err: (e as Error)?.message, stack: (e as Error)?.stack?.split('\n', 4).join(' | ') }, 'gateway call failed');
    if (res.headersSent) {
      // Mid-stream: end the SSE stream with an OpenAI-shaped error event.
      st.status = 'stream_error';
      if (!res.writableEnded) res.end(`data: ${JSON.stringify(err.toBody())}\n\n`);
      return;
    }
    this.headers(res, st);
    if (err.headers) for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
    sendJson(res, err.status, err.toBody());
  }

  private finish(ctx: RequestContext, st: CallState, req: Request, onUsage?: (row: Readonly<UsageRow>) => void): void {
    const now = performance.now();
    const totalMs = now - st.t0;
    const dep = st.deployment;
    const m = this.d.metrics;
    const depLabel = dep?.name ?? 'none';
    child(m.gatewayRequests, st.endpoint, depLabel, dep?.boundary ?? 'none', st.outcome).inc();
    child(m.gatewayDuration, st.endpoint, depLabel).observe(totalMs / 1000);
    child(m.gatewayOverhead, st.endpoint).observe(Math.max(0, totalMs - st.upstreamMs) / 1000);
    if (st.ttftMs !== null) child(m.gatewayTtft, depLabel).observe(st.ttftMs / 1000);
    if (dep && st.attempts) child(m.gatewayUpstreamDuration, depLabel, st.endpoint).observe(st.upstreamMs / 1000);
    if (dep) {
      if (st.promptTokens) child(m.gatewayTokens, depLabel, 'prompt').inc(st.promptTokens);
      if (st.completionTokens) child(m.gatewayTokens, depLabel, 'completion').inc(st.completionTokens);
    }
    m.gatewayInflight.dec();
    const tenant = ctx.tenant;
    if (!tenant) return;
    const wf = requestHeader(req, 'x-enclave-workflow');
    const p = ctx.principal;
    const row: UsageRow = {
      id: newId('use'),
      tenantId: tenant.id,
      requestId: ctx.requestId,
      userId: p?.userId ?? null,
      keyId: p?.keyId ?? null,
      workflow: wf && WORKFLOW.test(wf) ? wf : null,
      endpoint: st.endpoint,
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
      createdAt: this.d.clock.now(),
    };
    this.d.metering?.complete(st.reservation, row);
    this.d.usage.record(row);
    st.content?.end(row);
    onUsage?.(row);
  }

  beginCall(): void {
    this.d.metrics.gatewayInflight.inc();
  }
}

/** Per-call options for in-process callers (the web chat). */
export interface CallOptions {
  /** Called once with the call's usage record after metering priced it (cost_micros, tokens, request id). */
  readonly onUsage?: (row: Readonly<UsageRow>) => void;
}

interface Plan {
  readonly policy: TenantPolicy;
  readonly classification: Classification;
  readonly candidates: Candidate[];
  readonly redactSet: Set<Detector> | undefined;
  readonly messages: any[];
  readonly action: 'models:invoke' | 'embeddings:create';
}

const CLIENT_GONE = 'client_gone';
const CLIENT_GONE_ERROR = new Error('client disconnected');
const TIMEOUT = 'timeout';

function newState(endpoint: Endpoint, stream: boolean): CallState {
  return {
    endpoint,
    t0: performance.now(),
    upstreamMs: 0,
    alias: null,
    classification: null,
    deployment: null,
    model: null,
    attempts: 0,
    policy: {},
    promptTokens: 0,
    completionTokens: 0,
    estimated: false,
    ttftMs: null,
    stream,
    status: 'error',
    httpStatus: 500,
    errorCode: null,
    outcome: 'server_error',
    content: undefined,
  };
}

/**
 * Upstream failures as provider_* errors (502/504/429), ours unchanged, anything else a
 * generic internal_error. What a client reads is a stable code and a message written here,
 * naming the model it asked for: never an upstream's connection error (internal addresses),
 * never our own exception text. The detail goes to the log (logUpstream, fail()).
 */
export function toGatewayError(e: unknown, model?: string | null): AppError {
  if (e instanceof AppError) return e;
  if (e instanceof UpstreamError) {
    const status =
      e.code === 'provider_timeout' ? 504 : e.code === 'provider_rate_limited' ? 429 : e.code === 'provider_request_rejected' ? (e.status === 400 || e.status === 422 ? 400 : 502) : 502;
    const headers: Record<string, string> = {};
    if (e.code === 'provider_rate_limited' && e.retryAfterMs !== undefined) headers['retry-after'] = String(Math.ceil(e.retryAfterMs / 1000));
    return new AppError(status, e.code, upstreamMessage(e, model ?? 'the requested model'), { type: 'provider_error', headers, ...(e.status ? { details: { upstream_status: e.status } } : {}) });
  }
  return new AppError(500, 'internal_error', 'Internal error; the request id identifies it in the server log.', { cause: e });
}

/** The client's words for an upstream failure (by code; the upstream's own text only for a rejected request, scrubbed). */
function upstreamMessage(e: UpstreamError, model: string): string {
  switch (e.code) {
    case 'provider_connection_error':
      return `The model ${model} is unavailable right now: its provider could not be reached.`;
    case 'provider_timeout':
      return `The model ${model} did not answer in time.`;
    case 'provider_rate_limited':
      return `The provider of ${model} is rate-limiting requests; retry later.`;
    case 'provider_server_error':
      return `The provider of ${model} failed${e.status ? ` (HTTP ${e.status})` : ''}.`;
    case 'provider_bad_response':
      return `The provider of ${model} sent an answer that could not be read.`;
    case 'provider_stream_error':
      return `The answer from ${model} was cut off: its provider failed mid-stream.`;
    case 'provider_auth_failed':
      return `The provider of ${model} refused this deployment's credentials; an administrator must fix the deployment.`;
    case 'provider_model_not_found':
      return `The provider of ${model} does not serve this model; an administrator must fix the deployment.`;
    case 'provider_request_rejected':
      return `The provider of ${model} rejected the request: ${scrubAddresses(e.upstreamText ?? `HTTP ${e.status ?? 400}`)}`;
  }
}

/** Addresses (URLs, IPs, host:port) out of a provider's text before a client sees it. */
export function scrubAddresses(text: string): string {
  return text
    .replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>]+/gi, '[address]')
    .replace(/\[?[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}\]?(?::\d+)?/gi, (m) => (m.includes(':') && /[0-9a-f]{1,4}:/i.test(m) ? '[address]' : m))
    .replace(/\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b/g, '[address]')
    .replace(/\blocalhost(?::\d+)?\b/gi, '[address]');
}

/** One failed upstream attempt, for operators: code, deployment, status and the transport's own words (no request content). */
function logUpstream(ctx: RequestContext, deployment: string, e: UpstreamError): void {
  // A rejected request's text can quote what was sent: only its status is logged.
  const detail = e.code === 'provider_request_rejected' ? undefined : e.message;
  ctx.log.warn({ deployment, code: e.code, upstreamStatus: e.status, ...(detail ? { detail } : {}) }, 'upstream attempt failed');
}

/** About four characters per token (flagged as an estimate in the record). */
export function estimateTokens(texts: readonly string[]): number {
  let n = 0;
  for (const t of texts) n += t.length;
  return Math.ceil(n / 4);
}

function backoff(base: number, attempt: number): number {
  return Math.round(base * 2 ** attempt * (0.5 + Math.random()));
}

function sleep(ms: number, res: Response): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      res.off('close', done);
      resolve();
    }
    res.once('close', done);
  });
}

function uncork(res: Response): void {
  if (res.writableCorked) res.uncork();
}

function drain(res: Response): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}
