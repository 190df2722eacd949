import { errorMessage, finishBody, parseOrigin, readSse, toUpstreamError, upstreamCall, upstreamJson, type Origin, type UpstreamResponse } from '../upstream-http.js';
import {
  UpstreamError,
  type AdapterConfig,
  type CallOptions,
  type ChatCompletion,
  type ChatCompletionChunk,
  type ChatRequest,
  type CreateEmbeddingResponse,
  type EmbeddingsRequest,
  type ProviderAdapter,
} from '../types.js';

/**
 * OpenAI-compatible endpoints (OpenAI, Azure OpenAI's /openai/v1, vLLM, LM Studio, Mistral,
 * …) at a base URL (e.g. `http://host:8000/v1`), spoken directly over the gateway's
 * keep-alive client. Requests pass through unchanged: the wire shape is already ours.
 *
 * Why not the official `openai` SDK here (it was, until the overhead was measured): one SDK
 * call cost ≈ 330 µs of CPU on top of the ≈ 40 µs HTTP exchange (per-call header objects,
 * an AbortController and timer, eager debug-log formatting, its promise and stream
 * wrappers), which alone exceeded the gateway's whole overhead budget (DESIGN.md §8). The
 * protocol surface the gateway needs is small — JSON in, JSON or SSE out, OpenAI error
 * bodies — and the SDK stays what it is best at: the client in our tests, which holds this
 * adapter and the gateway to the real wire format (test/integration/gateway-openai-sdk).
 */
export class OpenAIAdapter implements ProviderAdapter {
  readonly kind = 'openai' as const;
  private readonly origin: Origin;
  private readonly headers: Readonly<Record<string, string>>;

  constructor(cfg: AdapterConfig) {
    this.origin = parseOrigin(cfg.baseUrl, cfg.egress);
    this.headers = { authorization: `Bearer ${cfg.apiKey ?? 'unused'}` };
  }

  async chat(req: ChatRequest, o: CallOptions): Promise<ChatCompletion> {
    return (await upstreamJson(this.origin, 'POST', '/chat/completions', this.headers, { ...req, stream: false }, o.signal)) as ChatCompletion;
  }

  async chatStream(req: ChatRequest, o: CallOptions): Promise<AsyncIterable<ChatCompletionChunk>> {
    const res = await upstreamCall(this.origin, 'POST', '/chat/completions', this.headers, { ...req, stream: true, stream_options: { include_usage: true } }, o.signal, 'text/event-stream');
    const type = String(res.headers['content-type'] ?? '');
    if (!type.startsWith('text/event-stream')) {
      // Some servers ignore `stream` on error-free paths; a JSON answer is not a stream.
      res.body.resume();
      throw new UpstreamError('provider_bad_response', `The provider answered ${type || 'without a content type'} instead of an event stream.`);
    }
    return chunks(res);
  }

  async embed(req: EmbeddingsRequest, o: CallOptions): Promise<CreateEmbeddingResponse> {
    return (await upstreamJson(this.origin, 'POST', '/embeddings', this.headers, req, o.signal)) as CreateEmbeddingResponse;
  }

  async listModels(o: CallOptions): Promise<string[]> {
    const r = (await upstreamJson(this.origin, 'GET', '/models', this.headers, undefined, o.signal)) as { data?: { id?: unknown }[] };
    if (!Array.isArray(r?.data)) throw new UpstreamError('provider_bad_response', 'The provider answered /models without a data list.');
    return r.data.map((m) => String(m.id));
  }
}

/** OpenAI chunks from an SSE answer; `[DONE]` ends it, an `error` event or body fails it (Azure OpenAI reuses it). */
export async function* chunks(res: UpstreamResponse): AsyncGenerator<ChatCompletionChunk> {
  let finished = false;
  let done = false;
  try {
    // destroyOnReturn: false — leaving the loop at `[DONE]` must not close a keep-alive socket.
    for await (const ev of readSse(res.body.iterator({ destroyOnReturn: false }))) {
      if (ev.data === '[DONE]') {
        done = true;
        break;
      }
      let chunk: ChatCompletionChunk & { error?: unknown };
      try {
        chunk = JSON.parse(ev.data) as ChatCompletionChunk & { error?: unknown };
      } catch {
        throw new UpstreamError('provider_stream_error', 'The provider sent malformed JSON mid-stream.');
      }
      if (ev.event === 'error' || chunk.error !== undefined) {
        const m = errorMessage(ev.data) ?? 'unknown error';
        throw new UpstreamError('provider_stream_error', `The provider reported an error mid-stream: ${m}`);
      }
      if (chunk.choices?.some((c) => c.finish_reason)) finished = true;
      yield chunk;
    }
  } catch (e) {
    throw toUpstreamError(e, true);
  } finally {
    // A consumer that stopped early (client gone, timeout, error) lets the connection go.
    if (!done && !res.body.readableEnded) res.body.destroy();
  }
  if (done) {
    // Only the body's end is left after `[DONE]`: take it, so the socket is free for the next call.
    await finishBody(res);
    return;
  }
  // The body ended without `data: [DONE]`: a finished answer is complete, anything else was cut off.
  if (!finished) throw new UpstreamError('provider_stream_error', 'The provider stream ended before the answer was finished.');
}
