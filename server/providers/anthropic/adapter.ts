import { errorMessage, finishBody, parseOrigin, readSse, toUpstreamError, upstreamCall, upstreamJson, type Origin, type UpstreamResponse } from '../upstream-http.js';
import {
  UpstreamError,
  type AdapterConfig,
  type CallOptions,
  type ChatCompletion,
  type ChatCompletionChunk,
  type ChatRequest,
  type CreateEmbeddingResponse,
  type ProviderAdapter,
} from '../types.js';
import { StreamFold, toAnthropicRequest, toCompletion } from './transform.js';

/**
 * Anthropic's Messages API (`POST /v1/messages`, `GET /v1/models`) at a base URL (default
 * https://api.anthropic.com), with `x-api-key` and `anthropic-version`.
 *
 * Direct HTTP over the gateway's keep-alive client rather than `@anthropic-ai/sdk`, for the
 * reason the OpenAI adapter dropped its SDK: per-call CPU. Measured with bench/provider-cpu.ts
 * (bench/README.md, "Provider adapters"): the SDK's client cost several times this adapter's
 * translation + HTTP per call. The wire surface is small (JSON in, JSON or SSE out,
 * `{type:"error", error:{type, message}}` bodies); the SDK stays a client in the tests.
 *
 * Errors: 429 (Retry-After) → rate limited; 529 `overloaded_error` and 5xx → server error
 * (retryable, next candidate); 401/403 → auth; 404 → model not found; other 4xx → rejected
 * with Anthropic's message. An `error` event mid-stream (e.g. overloaded) → stream error.
 */
export class AnthropicAdapter implements ProviderAdapter {
  readonly kind = 'anthropic' as const;
  private readonly origin: Origin;
  private readonly headers: Readonly<Record<string, string>>;

  constructor(cfg: AdapterConfig) {
    this.origin = parseOrigin(cfg.baseUrl, cfg.egress);
    const version = typeof cfg.settings?.anthropic_version === 'string' ? cfg.settings.anthropic_version : '2023-06-01';
    this.headers = { 'x-api-key': cfg.apiKey ?? '', 'anthropic-version': version };
  }

  async chat(req: ChatRequest, o: CallOptions): Promise<ChatCompletion> {
    return toCompletion((await upstreamJson(this.origin, 'POST', '/v1/messages', this.headers, toAnthropicRequest(req, false), o.signal)) as Record<string, unknown>);
  }

  async chatStream(req: ChatRequest, o: CallOptions): Promise<AsyncIterable<ChatCompletionChunk>> {
    const res = await upstreamCall(this.origin, 'POST', '/v1/messages', this.headers, toAnthropicRequest(req, true), o.signal, 'text/event-stream');
    const type = String(res.headers['content-type'] ?? '');
    if (!type.startsWith('text/event-stream')) {
      res.body.resume();
      throw new UpstreamError('provider_bad_response', `Anthropic answered ${type || 'without a content type'} instead of an event stream.`);
    }
    return events(res);
  }

  embed(): Promise<CreateEmbeddingResponse> {
    const why = 'Anthropic offers no embeddings API; route embedding models to another deployment';
    return Promise.reject(new UpstreamError('provider_request_rejected', why, 400, undefined, why));
  }

  async listModels(o: CallOptions): Promise<string[]> {
    const r = (await upstreamJson(this.origin, 'GET', '/v1/models?limit=1000', this.headers, undefined, o.signal)) as { data?: { id?: unknown }[] };
    if (!Array.isArray(r?.data)) throw new UpstreamError('provider_bad_response', 'Anthropic answered /v1/models without a data list.');
    return r.data.map((m) => String(m.id));
  }
}

/** OpenAI chunks from Anthropic's event stream; `message_stop` ends it, an `error` event fails it. */
async function* events(res: UpstreamResponse): AsyncGenerator<ChatCompletionChunk> {
  const fold = new StreamFold();
  try {
    for await (const ev of readSse(res.body.iterator({ destroyOnReturn: false }))) {
      let data: Record<string, unknown> & { type?: unknown };
      try {
        data = JSON.parse(ev.data) as typeof data;
      } catch {
        throw new UpstreamError('provider_stream_error', 'Anthropic sent malformed JSON mid-stream.');
      }
      if (ev.event === 'error' || data.type === 'error') {
        const m = errorMessage(ev.data) ?? 'unknown error';
        throw new UpstreamError('provider_stream_error', `Anthropic reported an error mid-stream: ${m}`);
      }
      const chunk = fold.onEvent(data);
      if (chunk) yield chunk;
      if (fold.stopped) break;
    }
  } catch (e) {
    throw toUpstreamError(e, true);
  } finally {
    if (!fold.stopped && !res.body.readableEnded) res.body.destroy();
  }
  if (fold.stopped) {
    await finishBody(res);
    return;
  }
  if (!fold.finished) throw new UpstreamError('provider_stream_error', 'The Anthropic stream ended before the answer was finished.');
}
