import type { ChatResponse } from 'ollama';
import { finishBody, parseOrigin, readNdjson, toUpstreamError, upstreamCall, upstreamJson, type Origin, type UpstreamResponse } from '../upstream-http.js';
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
import { collectCompletion, toOllamaChat, toOpenAIChunks } from './transform.js';

/**
 * Ollama's HTTP API — `/api/chat` (always NDJSON streaming upstream, folded for
 * non-streaming clients), `/api/embed`, `/api/tags` — over the gateway's keep-alive client
 * (server/providers/upstream-http.ts), with the `ollama` package's types for the wire shapes.
 *
 * Why not the `ollama` SDK's client (it was, until measured): one chat through it cost
 * ≈ 340–530 µs of CPU against ≈ 80–100 µs for the same exchange here (a web stream and
 * TextDecoder per answer, an AbortController per streamed request, and — since the SDK has
 * no per-request signal — an AsyncLocalStorage hop and AbortSignal.any per call to carry
 * ours). Local Ollama is the appliance's main path; that was most of the gateway's overhead.
 */
export class OllamaAdapter implements ProviderAdapter {
  readonly kind = 'ollama' as const;
  private readonly origin: Origin;
  private readonly headers: Readonly<Record<string, string>>;

  constructor(cfg: AdapterConfig) {
    this.origin = parseOrigin(cfg.baseUrl, cfg.egress);
    this.headers = cfg.apiKey ? { authorization: `Bearer ${cfg.apiKey}` } : {};
  }

  async chat(req: ChatRequest, o: CallOptions): Promise<ChatCompletion> {
    const chunks = await this.chatStream(req, o);
    try {
      return await collectCompletion(chunks);
    } catch (e) {
      throw toUpstreamError(e);
    }
  }

  async chatStream(req: ChatRequest, o: CallOptions): Promise<AsyncIterable<ChatCompletionChunk>> {
    const res = await upstreamCall(this.origin, 'POST', '/api/chat', this.headers, toOllamaChat(req), o.signal, 'application/x-ndjson');
    const model = String(req.model);
    return (async function* () {
      try {
        for await (const c of toOpenAIChunks(lines(res), model)) yield c;
      } catch (e) {
        throw toUpstreamError(e, true);
      }
    })();
  }

  async embed(req: EmbeddingsRequest, o: CallOptions): Promise<CreateEmbeddingResponse> {
    const input = req.input as string | string[];
    const body = { model: req.model, input: Array.isArray(input) ? input.map(String) : String(input), ...(req.dimensions ? { dimensions: req.dimensions } : {}) };
    const r = (await upstreamJson(this.origin, 'POST', '/api/embed', this.headers, body, o.signal)) as { embeddings?: number[][]; prompt_eval_count?: number };
    if (!Array.isArray(r?.embeddings)) throw new UpstreamError('provider_bad_response', 'The provider answered /api/embed without embeddings.');
    const n = r.prompt_eval_count ?? 0;
    return {
      object: 'list',
      model: req.model,
      data: r.embeddings.map((embedding, index) => ({ object: 'embedding', index, embedding })),
      usage: { prompt_tokens: n, total_tokens: n },
    };
  }

  async listModels(o: CallOptions): Promise<string[]> {
    const r = (await upstreamJson(this.origin, 'GET', '/api/tags', this.headers, undefined, o.signal)) as { models?: { name?: unknown }[] };
    if (!Array.isArray(r?.models)) throw new UpstreamError('provider_bad_response', 'The provider answered /api/tags without a model list.');
    return r.models.map((m) => String(m.name));
  }
}

/** Ollama's NDJSON answer lines; an `{"error": …}` line fails the stream, `done` ends it. */
async function* lines(res: UpstreamResponse): AsyncGenerator<ChatResponse> {
  let last: ChatResponse | undefined;
  try {
    // destroyOnReturn: false — stopping at the `done` line must not close a keep-alive socket.
    for await (const line of readNdjson(res.body.iterator({ destroyOnReturn: false }))) {
      const l = line as ChatResponse & { error?: unknown };
      if (l.error !== undefined) throw new UpstreamError('provider_stream_error', `The provider reported an error mid-stream: ${String(l.error).slice(0, 300)}`);
      if (l.done) {
        last = l;
        break;
      }
      yield l;
    }
  } finally {
    // A consumer that stopped early (client gone, timeout, error) lets the connection go.
    if (!last && !res.body.readableEnded) res.body.destroy();
  }
  if (last) {
    // Only the body's end is left after `done`: take it, so the socket is free for the next call.
    await finishBody(res);
    yield last;
  }
}
