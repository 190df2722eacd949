import type { ChatCompletion, ChatCompletionChunk, ChatCompletionCreateParams } from 'openai/resources/chat/completions';
import type { CreateEmbeddingResponse, EmbeddingCreateParams } from 'openai/resources/embeddings';
import type { EgressPolicy } from './egress.js';
import type { ProviderKind, Settings } from './kinds.js';

export type { ProviderKind } from './kinds.js';

/**
 * The one provider interface. Requests and responses are in the OpenAI wire shape (the
 * gateway's lingua franca); each provider folder translates to and from its own protocol.
 * Adapters are built once per deployment configuration and reused for every call (they
 * hold keep-alive connection pools); they never retry, time out or fall back themselves —
 * the gateway does that, through the AbortSignal it passes.
 */
export type Boundary = 'local' | 'private' | 'public';

export type ChatRequest = Omit<ChatCompletionCreateParams, 'stream'> & Record<string, unknown>;
export type EmbeddingsRequest = EmbeddingCreateParams;
export type { ChatCompletion, ChatCompletionChunk, CreateEmbeddingResponse };

export interface CallOptions {
  readonly signal: AbortSignal;
}

export interface ProviderAdapter {
  readonly kind: ProviderKind;
  /** Non-streaming chat; resolves with the whole completion. */
  chat(req: ChatRequest, o: CallOptions): Promise<ChatCompletion>;
  /**
   * Streaming chat: resolves once the upstream answered (headers), then yields OpenAI chunks.
   * The last chunk carries `usage` (with `choices: []`) when the upstream reports usage.
   */
  chatStream(req: ChatRequest, o: CallOptions): Promise<AsyncIterable<ChatCompletionChunk>>;
  embed(req: EmbeddingsRequest, o: CallOptions): Promise<CreateEmbeddingResponse>;
  /** The upstream's model names (discovery and `providers test`). */
  listModels(o: CallOptions): Promise<string[]>;
}

export interface AdapterConfig {
  readonly baseUrl: string;
  readonly apiKey?: string | undefined;
  /** Where this deployment may connect (tenant-private deployments); absent = anywhere. */
  readonly egress?: EgressPolicy | undefined;
  /** The kind's own non-secret settings (server/providers/kinds.ts declares them). */
  readonly settings?: Settings | undefined;
  /** The kind's own secrets, decrypted (entra_client_secret, service_account_json …). */
  readonly credentials?: Readonly<Record<string, string>> | undefined;
  /** The deployment's region label (bedrock, vertex: part of the endpoint and the signature). */
  readonly region?: string | null | undefined;
}

/**
 * An upstream failure, normalised. `retryable` = connection errors, timeouts, 429 and 5xx
 * (worth another attempt or the next candidate); others (400, 401, 404 …) are the caller's
 * or the configuration's problem and are passed on.
 */
export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  constructor(
    readonly code:
      | 'provider_connection_error'
      | 'provider_timeout'
      | 'provider_rate_limited'
      | 'provider_server_error'
      | 'provider_bad_response'
      | 'provider_request_rejected'
      | 'provider_auth_failed'
      | 'provider_model_not_found'
      | 'provider_stream_error'
      /** The provider's content filter refused the prompt or the answer (Azure); not retryable. */
      | 'provider_content_filtered',
    message: string,
    readonly status?: number,
    readonly retryAfterMs?: number,
    /** The provider's own error text (a rejected request's reason, passed to the client scrubbed); never transport errors. */
    readonly upstreamText?: string,
  ) {
    super(message);
  }
  get retryable(): boolean {
    return (
      this.code === 'provider_connection_error' ||
      this.code === 'provider_timeout' ||
      this.code === 'provider_rate_limited' ||
      this.code === 'provider_server_error' ||
      this.code === 'provider_bad_response' ||
      this.code === 'provider_stream_error'
    );
  }
  /** Whether this failure speaks against the deployment's health (circuit breaker). */
  get unhealthy(): boolean {
    return this.retryable && this.code !== 'provider_rate_limited';
  }
}

/** Maps an HTTP status (and optional Retry-After) to an UpstreamError. */
export function httpError(status: number, message: string, retryAfter?: string | null, upstreamText?: string): UpstreamError {
  const ra = parseRetryAfter(retryAfter);
  if (status === 429) return new UpstreamError('provider_rate_limited', message, status, ra);
  if (status === 401 || status === 403) return new UpstreamError('provider_auth_failed', message, status);
  if (status === 404) return new UpstreamError('provider_model_not_found', message, status);
  if (status >= 500) return new UpstreamError('provider_server_error', message, status, ra);
  return new UpstreamError('provider_request_rejected', message, status, undefined, upstreamText);
}

export function parseRetryAfter(v: string | null | undefined): number | undefined {
  if (v === null || v === undefined || v === '') return undefined;
  const s = Number(v);
  if (Number.isFinite(s)) return Math.max(0, s * 1000);
  const d = Date.parse(v);
  return Number.isFinite(d) ? Math.max(0, d - Date.now()) : undefined;
}

/** An error thrown because our own AbortSignal fired (timeout or client gone). */
export function isAbort(e: unknown): boolean {
  const n = (e as { name?: string } | null)?.name;
  return n === 'AbortError' || n === 'APIUserAbortError' || (e as { code?: string } | null)?.code === 'ABORT_ERR';
}
