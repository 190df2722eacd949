import { AsyncLocalStorage } from 'node:async_hooks';
import { Ollama, type ChatResponse } from 'ollama';
import { nodeFetch } from '../http-fetch.js';
import {
  httpError,
  isAbort,
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
import { collectCompletion, toOllamaChat, toOpenAIChunks } from './transform.js';

/**
 * Ollama through the official `ollama` SDK: `/api/chat` (always NDJSON streaming upstream,
 * folded for non-streaming clients), `/api/embed`, `/api/tags`. One SDK client per
 * deployment; the per-call AbortSignal reaches the SDK's fetch through AsyncLocalStorage
 * (the SDK has no per-request signal option).
 */
const callSignal = new AsyncLocalStorage<AbortSignal>();

function signalFetch(base: typeof fetch): typeof fetch {
  return (input, init) => {
    const s = callSignal.getStore();
    if (!s) return base(input, init);
    const signal = init?.signal ? AbortSignal.any([init.signal, s]) : s;
    return base(input, { ...init, signal });
  };
}

export class OllamaAdapter implements ProviderAdapter {
  readonly kind = 'ollama' as const;
  private readonly client: Ollama;

  constructor(cfg: AdapterConfig) {
    const headers: Record<string, string> = cfg.apiKey ? { authorization: `Bearer ${cfg.apiKey}` } : {};
    this.client = new Ollama({ host: cfg.baseUrl.replace(/\/+$/, ''), fetch: signalFetch(nodeFetch), headers });
  }

  async chat(req: ChatRequest, o: CallOptions): Promise<ChatCompletion> {
    const chunks = await this.chatStream(req, o);
    try {
      const c = await collectCompletion(chunks);
      return c;
    } catch (e) {
      throw mapError(e, false);
    }
  }

  async chatStream(req: ChatRequest, o: CallOptions): Promise<AsyncIterable<ChatCompletionChunk>> {
    const body = toOllamaChat(req);
    let it: AsyncIterable<ChatResponse> & { abort(): void };
    try {
      it = await callSignal.run(o.signal, () => this.client.chat(body));
    } catch (e) {
      throw mapError(e, false);
    }
    const onAbort = (): void => it.abort();
    o.signal.addEventListener('abort', onAbort, { once: true });
    const model = String(req.model);
    return (async function* () {
      try {
        for await (const c of toOpenAIChunks(it, model)) yield c;
      } catch (e) {
        throw mapError(e, true);
      } finally {
        o.signal.removeEventListener('abort', onAbort);
      }
    })();
  }

  async embed(req: EmbeddingsRequest, o: CallOptions): Promise<CreateEmbeddingResponse> {
    try {
      const input = req.input as string | string[];
      const r = await callSignal.run(o.signal, () =>
        this.client.embed({ model: req.model, input: Array.isArray(input) ? input.map(String) : String(input), ...(req.dimensions ? { dimensions: req.dimensions } : {}) }),
      );
      const n = r.prompt_eval_count ?? 0;
      return {
        object: 'list',
        model: req.model,
        data: r.embeddings.map((embedding, index) => ({ object: 'embedding', index, embedding })),
        usage: { prompt_tokens: n, total_tokens: n },
      };
    } catch (e) {
      throw mapError(e, false);
    }
  }

  async listModels(o: CallOptions): Promise<string[]> {
    try {
      const r = await callSignal.run(o.signal, () => this.client.list());
      return r.models.map((m) => m.name);
    } catch (e) {
      throw mapError(e, false);
    }
  }
}

/** Socket errors of node:http (the provider fetch) that mean "could not reach the provider". */
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);

function mapError(e: unknown, midStream: boolean): unknown {
  if (e instanceof UpstreamError || isAbort(e)) return e;
  const err = e as { name?: string; status_code?: number; message?: string; cause?: unknown };
  if (err?.name === 'ResponseError' && typeof err.status_code === 'number') {
    return httpError(err.status_code, `The provider answered ${err.status_code}: ${String(err.message).slice(0, 300)}`);
  }
  const code = (err as { code?: unknown }).code;
  const refused = typeof code === 'string' && CONNECTION_CODES.has(code);
  if (refused || (err?.name === 'TypeError' && /fetch failed|terminated|other side closed|socket/i.test(String(err.message) + String((err.cause as Error)?.message ?? '')))) {
    return new UpstreamError(midStream ? 'provider_stream_error' : 'provider_connection_error', midStream ? 'The provider connection dropped mid-stream.' : 'Could not reach the provider (connection failed).');
  }
  if (e instanceof SyntaxError) return new UpstreamError(midStream ? 'provider_stream_error' : 'provider_bad_response', 'The provider sent malformed JSON.');
  const m = err?.message ?? String(e);
  return new UpstreamError(midStream ? 'provider_stream_error' : 'provider_bad_response', `Provider call failed: ${m.slice(0, 200)}`);
}
