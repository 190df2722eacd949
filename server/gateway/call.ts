import { performance } from 'node:perf_hooks';
import type { Classification, RequestContext } from '../context.js';
import type { UsageRow } from '../db/repos/usage.js';
import { AppError } from '../errors.js';
import type { Reservation } from '../metering/index.js';
import { UpstreamError, type Boundary, type ChatCompletion, type ChatCompletionChunk, type CreateEmbeddingResponse } from '../providers/index.js';
import type { Candidate, Deployment } from '../routing/catalogue.js';
import type { ContentAction, Detector } from '../routing/content.js';
import type { TenantPolicy } from '../routing/policy.js';
import type { CacheDirective, CacheStatus, CacheTicket } from './cache/index.js';
import type { ContentCapture } from './content-log.js';
import type { OtelCall } from '../telemetry/index.js';
import type { CallTrace } from '../traces/recorder.js';

/**
 * The transport-free contract of one AI call (DESIGN.md §4a): what a face hands the pipeline
 * (GatewayCall), what the pipeline hands back (GatewayResult: a whole answer, a stream of
 * chunks, or a refusal/failure — each with the call's facts and, once known, its priced
 * usage record), and the state the pipeline keeps while it runs (CallState).
 *
 * The normalized chunk is the OpenAI `chat.completion.chunk` (the providers' lingua franca,
 * server/providers/types.ts): text, tool-call and reasoning deltas, finish reason, usage.
 * The Chat Completions face relays it as it is (the hot path: nothing rebuilt per chunk);
 * other faces read it through server/gateway/faces/deltas.ts.
 */

/** The face a call came through (usage records and metrics carry it). */
export type Api = 'chat' | 'responses' | 'messages' | 'ollama' | 'batch' | 'knowledge';
export type Endpoint = 'chat' | 'embeddings';

export interface GatewayCall {
  readonly api: Api;
  readonly endpoint: Endpoint;
  /** An OpenAI Chat Completions or Embeddings request (faces translate theirs to it at the door). */
  // Client JSON: the pipeline checks the fields it reads.
  readonly body: Record<string, any>;
  /** `X-Enclave-Classification` as sent (or the batch's), unchecked. */
  readonly classification?: string | undefined;
  /** `X-Enclave-Workflow` as sent, unchecked. */
  readonly workflow?: string | undefined;
  /** Fires when the client is gone (connection closed, batch cancelled): the upstream call is aborted. */
  readonly signal?: GoneSignal | undefined;
  /** Sees the usage record once metering priced it (web chat, batch lines). */
  readonly onUsage?: ((row: Readonly<UsageRow>) => void) | undefined;
  /** The caller writes the usage record itself (a batch line, in the transaction that finishes the line). */
  readonly keepUsage?: boolean | undefined;
  /** Only this deployment (by name) may serve the call, if the plan allows it (an administrator's replay, server/traces/replay.ts). */
  readonly pin?: string | undefined;
  /** The client's response-cache directive (`Cache-Control: no-store|no-cache`, `x-enclave-cache: bypass`; server/gateway/cache). */
  readonly cacheDirective?: CacheDirective;
}

/**
 * What the pipeline needs of a client-gone signal: an AbortSignal (the batch's), or the HTTP
 * faces' lighter one over the response's 'close' (faces/http.ts: an AbortController and its
 * EventTarget listeners per call cost more than the rest of a face).
 */
export interface GoneSignal {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** What a face may put in its response headers (and the batch in nothing). */
export interface CallFacts {
  readonly requestId: string;
  readonly alias: string | null;
  readonly classification: Classification | null;
  readonly boundary: Boundary | null;
  /** Detector types redacted from what the called deployment received (types only, never the text). */
  readonly redacted: readonly Detector[] | undefined;
  /** Rate-limit and quota headers of the admission (x-ratelimit-*). */
  readonly limitHeaders: Readonly<Record<string, string>> | undefined;
  /** Enclave's own time so far (total minus time waiting for upstreams), in ms. */
  overheadMs(): number;
  /** The response cache's verdict (x-enclave-cache); undefined when the tenant's cache is off. */
  readonly cache: CacheStatus | undefined;
}

export type GatewayResult =
  | { readonly kind: 'whole'; readonly body: ChatCompletion | CreateEmbeddingResponse; readonly facts: CallFacts }
  | { readonly kind: 'stream'; readonly chunks: AsyncIterable<ChatCompletionChunk>; readonly facts: CallFacts }
  | { readonly kind: 'error'; readonly error: AppError; readonly facts: CallFacts };

export interface Plan {
  readonly policy: TenantPolicy;
  readonly classification: Classification;
  readonly candidates: Candidate[];
  readonly redactSet: Set<Detector> | undefined;
  readonly messages: any[];
  readonly action: 'models:invoke' | 'embeddings:create';
}

/** What the routing decided and what happened, kept for the facts and the usage record. */
export interface CallState {
  readonly call: GatewayCall;
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
  reservation?: Reservation;
  redactedTypes?: readonly Detector[] | undefined;
  content: ContentCapture | undefined;
  /** The call's decision record (server/traces), filled by one-line calls along the pipeline. */
  trace?: CallTrace | undefined;
  /** The response cache's part of the call (server/gateway/cache); undefined when it is off. */
  cache: CacheTicket | undefined;
  /** The call's OpenTelemetry spans (server/telemetry); undefined when tracing is off. */
  otel?: OtelCall | undefined;
  /** Set once: the call's usage record has been made. */
  finished: boolean;
}

export function newState(call: GatewayCall): CallState {
  return {
    call,
    endpoint: call.endpoint,
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
    stream: call.endpoint === 'chat' && call.body.stream === true,
    status: 'error',
    httpStatus: 500,
    errorCode: null,
    outcome: 'server_error',
    content: undefined,
    cache: undefined,
    finished: false,
  };
}

/** The facts of a call, read live from its state (the overhead is taken when a face asks). */
export function factsOf(ctx: RequestContext, st: CallState): CallFacts {
  return new LiveFacts(ctx.requestId, st);
}

/** Getters on the prototype: one small object per call, not five closures and an accessor literal. */
class LiveFacts implements CallFacts {
  constructor(
    readonly requestId: string,
    private readonly st: CallState,
  ) {}
  get alias(): string | null {
    return this.st.alias;
  }
  get classification(): Classification | null {
    return this.st.classification;
  }
  get boundary(): Boundary | null {
    return this.st.deployment?.boundary ?? null;
  }
  get redacted(): readonly Detector[] | undefined {
    return this.st.redactedTypes;
  }
  get limitHeaders(): Readonly<Record<string, string>> | undefined {
    return this.st.reservation?.headers;
  }
  overheadMs(): number {
    return performance.now() - this.st.t0 - this.st.upstreamMs;
  }
  get cache(): CacheStatus | undefined {
    return this.st.cache?.status;
  }
}

/** The state of a call whose client went away (its record says so; 499 as nginx logs it). */
export function markGone(st: CallState): void {
  st.status = 'client_disconnect';
  st.outcome = 'client_disconnect';
  st.httpStatus = 499;
  st.errorCode = 'client_disconnect';
}

/** The abort reason of a client that went away (vs. our own timeouts). */
export const CLIENT_GONE = 'client_gone';
export const TIMEOUT = 'timeout';
export const CLIENT_GONE_ERROR = new Error('client disconnected');

/**
 * Upstream failures as provider_* errors (502/504/429), ours unchanged, anything else a
 * generic internal_error. What a client reads is a stable code and a message written here,
 * naming the model it asked for: never an upstream's connection error (internal addresses),
 * never our own exception text. The detail goes to the log (logUpstream, the pipeline).
 */
export function toGatewayError(e: unknown, model?: string | null): AppError {
  if (e instanceof AppError) return e;
  if (e instanceof UpstreamError) {
    const status =
      e.code === 'provider_timeout' ? 504 : e.code === 'provider_rate_limited' ? 429 : e.code === 'provider_request_rejected' ? (e.status === 400 || e.status === 422 ? 400 : 502) : e.code === 'provider_content_filtered' ? 400 : 502;
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
    case 'provider_content_filtered':
      return `The provider of ${model} refused the request: its content filter flagged ${e.upstreamText === 'completion' ? 'the answer' : 'the prompt'}.`;
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
export function logUpstream(ctx: RequestContext, deployment: string, e: UpstreamError): void {
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
