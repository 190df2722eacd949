import { nodeFetch } from '../http-fetch.js';
import OpenAI, { APIConnectionError, APIError, APIUserAbortError } from 'openai';
import {
  isAbort,
  httpError,
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
 * …) through the official SDK with a base URL (e.g. `http://host:8000/v1`). Requests pass
 * through unchanged: the wire shape is already ours. One SDK client per deployment, built
 * at configuration time; the SDK's own retries are off (the gateway retries).
 */
export class OpenAIAdapter implements ProviderAdapter {
  readonly kind = 'openai' as const;
  private readonly client: OpenAI;

  constructor(cfg: AdapterConfig) {
    this.client = new OpenAI({
      baseURL: cfg.baseUrl.replace(/\/+$/, ''),
      apiKey: cfg.apiKey ?? 'unused',
      maxRetries: 0,
      fetch: nodeFetch,
      timeout: 24 * 3600_000, // the gateway's timers decide
    });
  }

  async chat(req: ChatRequest, o: CallOptions): Promise<ChatCompletion> {
    try {
      return (await this.client.chat.completions.create({ ...(req as any), stream: false }, { signal: o.signal })) as ChatCompletion;
    } catch (e) {
      throw mapError(e);
    }
  }

  async chatStream(req: ChatRequest, o: CallOptions): Promise<AsyncIterable<ChatCompletionChunk>> {
    let stream: AsyncIterable<ChatCompletionChunk>;
    try {
      stream = (await this.client.chat.completions.create(
        { ...(req as any), stream: true, stream_options: { include_usage: true } },
        { signal: o.signal },
      )) as unknown as AsyncIterable<ChatCompletionChunk>;
    } catch (e) {
      throw mapError(e);
    }
    return (async function* () {
      let finished = false;
      try {
        for await (const chunk of stream) {
          if (chunk.choices?.some((c) => c.finish_reason)) finished = true;
          yield chunk;
        }
      } catch (e) {
        throw mapError(e, true);
      }
      // The SDK ends quietly when the body ends without `data: [DONE]` (connection dropped).
      if (!finished) throw new UpstreamError('provider_stream_error', 'The provider stream ended before the answer was finished.');
    })();
  }

  async embed(req: EmbeddingsRequest, o: CallOptions): Promise<CreateEmbeddingResponse> {
    try {
      return await this.client.embeddings.create(req, { signal: o.signal });
    } catch (e) {
      throw mapError(e);
    }
  }

  async listModels(o: CallOptions): Promise<string[]> {
    try {
      const out: string[] = [];
      for await (const m of this.client.models.list({ signal: o.signal })) out.push(m.id);
      return out;
    } catch (e) {
      throw mapError(e);
    }
  }
}

function mapError(e: unknown, midStream = false): unknown {
  if (e instanceof UpstreamError) return e;
  if (e instanceof APIUserAbortError || isAbort(e)) return e; // our own signal: the caller knows why
  if (e instanceof APIConnectionError) return new UpstreamError('provider_connection_error', 'Could not reach the provider (connection failed).');
  if (e instanceof APIError) {
    const msg = safeMessage(e);
    if (e.status === undefined) {
      // An `error` event inside an SSE stream.
      return new UpstreamError('provider_stream_error', `The provider reported an error mid-stream: ${msg}`);
    }
    return httpError(e.status, `The provider answered ${e.status}: ${msg}`, e.headers?.get?.('retry-after'));
  }
  if (e instanceof SyntaxError) return new UpstreamError(midStream ? 'provider_stream_error' : 'provider_bad_response', 'The provider sent malformed JSON.');
  const m = (e as Error)?.message ?? String(e);
  return new UpstreamError(midStream ? 'provider_stream_error' : 'provider_connection_error', `Provider call failed: ${m.slice(0, 200)}`);
}

/** The upstream's message, cut short (it never contains our prompt, but keep it bounded). */
function safeMessage(e: APIError): string {
  const err = e.error as { message?: unknown } | undefined;
  const m = typeof err?.message === 'string' ? err.message : e.message;
  return m.slice(0, 300);
}
