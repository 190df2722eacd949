import { performance } from 'node:perf_hooks';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';
import type { RequestContext } from '../context.js';
import { AppError } from '../errors.js';
import type { CallState, GatewayCall } from '../gateway/call.js';
import { UpstreamError, type ChatCompletion, type ChatCompletionChunk, type CreateEmbeddingResponse } from '../providers/index.js';
import type { ProviderKind } from '../providers/kinds.js';
import type { Deployment } from '../routing/catalogue.js';
import { activeSpan, withActive } from './active.js';
import type { OtelCall } from './index.js';
import { activeRecord as active } from './span-context.js';

/**
 * The spans of one gateway call, following the OpenTelemetry GenAI semantic conventions:
 *
 *   chat <model asked>            the call (gen_ai.* request/response/usage, enclave.*)
 *     enclave.plan                authorize, classify, policy and content rules, candidates
 *     enclave.admission           limits and quotas
 *     enclave.attempt             tries until one answers (and, for a stream, until it ends)
 *       chat <upstream model>     one per upstream try (CLIENT; its context is the traceparent sent upstream)
 *
 * What never goes on a span: message text, prompts, completions, tool arguments, the key or
 * any credential, an upstream's error text (it can quote the request). Errors are recorded as
 * their stable code (`error.type`) only.
 */
export function callTrace(tracer: Tracer, ctx: RequestContext, call: GatewayCall): OtelCall {
  return new Spans(tracer, ctx, call);
}

/** gen_ai.provider.name: the convention's well-known values where one exists, else the kind. */
const PROVIDER: Record<ProviderKind, string> = {
  openai: 'openai',
  'azure-openai': 'azure.ai.openai',
  anthropic: 'anthropic',
  bedrock: 'aws.bedrock',
  vertex: 'gcp.vertex_ai',
  gemini: 'gcp.gemini',
  ollama: 'ollama',
};

/** server.address/port of a deployment, parsed once. */
const servers = new WeakMap<Deployment, Attributes>();
function serverOf(dep: Deployment): Attributes {
  let a = servers.get(dep);
  if (!a) {
    a = {};
    try {
      const u = new URL(dep.baseUrl);
      a['server.address'] = u.hostname;
      a['server.port'] = u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
    } catch {
      // No URL (a kind addressed by region): no server attributes.
    }
    servers.set(dep, a);
  }
  return a;
}

/** An error's stable code (never its message). */
function errorType(e: unknown): string {
  if (e instanceof UpstreamError || e instanceof AppError) return e.code;
  return e instanceof Error ? e.name : 'error';
}

class Spans implements OtelCall {
  private readonly op: 'chat' | 'embeddings';
  private readonly call: Span;
  private readonly ctx: Context;
  private stageSpan: Span;
  private stageCtx: Context;
  /** The try whose answer is being relayed (ended with the call). */
  private winner: Span | undefined;
  private tries = 0;
  /** The last try that failed, not ended yet (see upstream()). */
  private failed: { readonly span: Span; readonly e: unknown; readonly at: number } | undefined;
  private responseModel: string | undefined;
  private reasons: string[] | undefined;

  constructor(
    private readonly tracer: Tracer,
    rc: RequestContext,
    c: GatewayCall,
  ) {
    this.op = c.endpoint === 'chat' ? 'chat' : 'embeddings';
    const parent = (activeSpan()?.context as Context | undefined) ?? ROOT_CONTEXT;
    const b = c.body;
    const model = typeof b.model === 'string' ? b.model : undefined;
    const attributes: Attributes = { 'gen_ai.operation.name': this.op, 'enclave.api': c.api, 'enclave.request_id': rc.requestId };
    if (model !== undefined) attributes['gen_ai.request.model'] = model;
    if (rc.tenant) attributes['enclave.tenant.id'] = rc.tenant.id;
    // Request parameters (numbers and flags, never text).
    const maxTokens = b.max_completion_tokens ?? b.max_tokens;
    if (typeof maxTokens === 'number') attributes['gen_ai.request.max_tokens'] = maxTokens;
    if (typeof b.temperature === 'number') attributes['gen_ai.request.temperature'] = b.temperature;
    if (typeof b.top_p === 'number') attributes['gen_ai.request.top_p'] = b.top_p;
    if (b.stream === true) attributes['enclave.stream'] = true;
    this.call = tracer.startSpan(model ? `${this.op} ${model}` : this.op, { kind: SpanKind.INTERNAL, attributes }, parent);
    this.ctx = trace.setSpan(parent, this.call);
    this.stageSpan = tracer.startSpan('enclave.plan', { attributes: { 'enclave.stage': 'plan' } }, this.ctx);
    this.stageCtx = trace.setSpan(this.ctx, this.stageSpan);
  }

  stage(name: 'admission' | 'attempt'): void {
    this.stageSpan.end();
    this.stageSpan = this.tracer.startSpan(`enclave.${name}`, { attributes: { 'enclave.stage': name } }, this.ctx);
    this.stageCtx = trace.setSpan(this.ctx, this.stageSpan);
  }

  upstream<T>(dep: Deployment, model: string, fn: () => Promise<T>): Promise<T> {
    const attributes: Attributes = {
      'gen_ai.operation.name': this.op,
      'gen_ai.provider.name': PROVIDER[dep.kind] ?? dep.kind,
      'gen_ai.request.model': model,
      'enclave.deployment': dep.name,
      'enclave.deployment.id': dep.id,
      'enclave.boundary': dep.boundary,
      'enclave.try': ++this.tries,
      ...serverOf(dep),
    };
    this.endFailed(false);
    const span = this.tracer.startSpan(`${this.op} ${model}`, { kind: SpanKind.CLIENT, attributes }, this.stageCtx);
    return withActive(active(this.stageCtx, span), fn).then(
      (v) => {
        this.winner = span;
        return v;
      },
      (e: unknown) => {
        // Ended by the next try or by end(): only then is it known whether the client left
        // (the abort surfaces as a connection error here), which is not the provider failing.
        this.failed = { span, e, at: performance.timeOrigin + performance.now() };
        throw e;
      },
    );
  }

  /** Ends the last failed try: as the provider's failure, or as the client's leaving. */
  private endFailed(clientGone: boolean): void {
    const f = this.failed;
    if (!f) return;
    this.failed = undefined;
    if (clientGone) f.span.setAttribute('error.type', 'client_disconnect');
    else {
      f.span.setAttribute('error.type', errorType(f.e));
      if (f.e instanceof UpstreamError && f.e.status) f.span.setAttribute('http.response.status_code', f.e.status);
      f.span.setStatus({ code: SpanStatusCode.ERROR });
    }
    f.span.end(f.at);
  }

  answer(body: ChatCompletion | CreateEmbeddingResponse): void {
    if (typeof body.model === 'string') this.responseModel = body.model;
    if ('choices' in body && Array.isArray(body.choices)) for (const ch of body.choices) this.reason(ch.finish_reason);
  }

  chunk(c: ChatCompletionChunk): void {
    if (this.responseModel === undefined && typeof c.model === 'string') this.responseModel = c.model;
    const choices = c.choices;
    if (choices) for (let i = 0; i < choices.length; i++) this.reason(choices[i]!.finish_reason);
  }

  private reason(r: unknown): void {
    if (typeof r !== 'string' || !r) return;
    const list = (this.reasons ??= []);
    if (list.length < 8 && !list.includes(r)) list.push(r);
  }

  end(st: CallState): void {
    this.endFailed(st.status === 'client_disconnect');
    this.stageSpan.end();
    const dep = st.deployment;
    const a: Attributes = { 'enclave.status': st.status, 'enclave.attempts': st.attempts };
    if (st.classification) a['enclave.classification'] = st.classification;
    if (dep) {
      a['gen_ai.provider.name'] = PROVIDER[dep.kind] ?? dep.kind;
      a['enclave.deployment'] = dep.name;
      a['enclave.deployment.id'] = dep.id;
      a['enclave.boundary'] = dep.boundary;
    }
    const responseModel = this.responseModel ?? st.model ?? undefined;
    if (responseModel) a['gen_ai.response.model'] = responseModel;
    if (st.attempts > 0 || st.status === 'ok') {
      a['gen_ai.usage.input_tokens'] = st.promptTokens;
      a['gen_ai.usage.output_tokens'] = st.completionTokens;
      if (st.estimated) a['enclave.usage.estimated'] = true;
    }
    if (this.reasons) a['gen_ai.response.finish_reasons'] = this.reasons;
    if (st.policy.fallbacks) a['enclave.fallbacks'] = st.policy.fallbacks;
    if (st.policy.action) a['enclave.content.action'] = st.policy.action;
    if (st.redactedTypes?.length) a['enclave.content.redacted'] = [...st.redactedTypes];
    if (st.errorCode) a['error.type'] = st.errorCode;
    if (st.ttftMs !== null) a['enclave.ttft_ms'] = Math.round(st.ttftMs);
    if (st.cache) a['enclave.cache'] = st.cache.status;
    // Admission's view (how close to its limits the call was admitted), as its x-ratelimit-* headers say.
    const h = st.reservation?.headers;
    if (h) {
      const rr = h['x-ratelimit-remaining-requests'];
      const rt = h['x-ratelimit-remaining-tokens'];
      if (rr !== undefined) a['enclave.ratelimit.remaining_requests'] = Number(rr);
      if (rt !== undefined) a['enclave.ratelimit.remaining_tokens'] = Number(rt);
    }
    const failed = st.status === 'error' || st.status === 'stream_error';
    if (this.winner) {
      const w = this.winner;
      if (responseModel) w.setAttribute('gen_ai.response.model', responseModel);
      if (this.reasons) w.setAttribute('gen_ai.response.finish_reasons', this.reasons);
      if (st.status === 'ok') {
        w.setAttribute('gen_ai.usage.input_tokens', st.promptTokens);
        w.setAttribute('gen_ai.usage.output_tokens', st.completionTokens);
      } else if (st.errorCode) w.setAttribute('error.type', st.errorCode);
      if (failed) w.setStatus({ code: SpanStatusCode.ERROR });
      w.end();
      this.winner = undefined;
    }
    this.call.setAttributes(a);
    // A refusal (policy, limits, a bad request) is the client's error: the span says which
    // (error.type) without marking Enclave as failing.
    if (failed) this.call.setStatus({ code: SpanStatusCode.ERROR });
    this.call.end();
  }
}
