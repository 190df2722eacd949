import type { IncomingMessage } from 'node:http';
import { parseOrigin, readAll, readSse, send, type Origin } from '../upstream-http.js';
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
  private readonly auth: string;

  constructor(cfg: AdapterConfig) {
    this.origin = parseOrigin(cfg.baseUrl);
    this.auth = `Bearer ${cfg.apiKey ?? 'unused'}`;
  }

  async chat(req: ChatRequest, o: CallOptions): Promise<ChatCompletion> {
    return (await this.json('POST', '/chat/completions', { ...req, stream: false }, o)) as ChatCompletion;
  }

  async chatStream(req: ChatRequest, o: CallOptions): Promise<AsyncIterable<ChatCompletionChunk>> {
    const res = await this.call('POST', '/chat/completions', { ...req, stream: true, stream_options: { include_usage: true } }, o, 'text/event-stream');
    const type = res.headers['content-type'] ?? '';
    if (!type.startsWith('text/event-stream')) {
      // Some servers ignore `stream` on error-free paths; a JSON answer is not a stream.
      res.resume();
      throw new UpstreamError('provider_bad_response', `The provider answered ${type || 'without a content type'} instead of an event stream.`);
    }
    return chunks(res);
  }

  async embed(req: EmbeddingsRequest, o: CallOptions): Promise<CreateEmbeddingResponse> {
    return (await this.json('POST', '/embeddings', req, o)) as CreateEmbeddingResponse;
  }

  async listModels(o: CallOptions): Promise<string[]> {
    const r = (await this.json('GET', '/models', undefined, o)) as { data?: { id?: unknown }[] };
    if (!Array.isArray(r?.data)) throw new UpstreamError('provider_bad_response', 'The provider answered /models without a data list.');
    return r.data.map((m) => String(m.id));
  }

  /** One call whose answer is a JSON document. */
  private async json(method: string, path: string, body: unknown, o: CallOptions): Promise<unknown> {
    const res = await this.call(method, path, body, o, 'application/json');
    let raw: Buffer;
    try {
      raw = await readAll(res);
    } catch (e) {
      throw mapError(e);
    }
    try {
      return JSON.parse(raw.toString('utf8'));
    } catch {
      throw new UpstreamError('provider_bad_response', 'The provider sent malformed JSON.');
    }
  }

  /** Sends the request; resolves with a 2xx response, throws the upstream's error otherwise. */
  private async call(method: string, path: string, body: unknown, o: CallOptions, accept: string): Promise<IncomingMessage> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string | number> = { accept, authorization: this.auth };
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(payload);
    }
    let res: IncomingMessage;
    try {
      res = await send(this.origin, method, path, headers, payload, o.signal);
    } catch (e) {
      throw mapError(e);
    }
    const status = res.statusCode ?? 500;
    if (status >= 200 && status < 300) return res;
    let message = res.statusMessage || `HTTP ${status}`;
    try {
      message = errorMessage((await readAll(res, 1024 * 1024)).toString('utf8')) ?? message;
    } catch {
      // The status is what matters; an unreadable error body keeps the status line.
    }
    const ra = res.headers['retry-after'];
    throw httpError(status, `The provider answered ${status}: ${message}`, Array.isArray(ra) ? ra[0] : ra);
  }
}

/** OpenAI chunks from an SSE answer; `[DONE]` ends it, an `error` event or body fails it. */
async function* chunks(res: IncomingMessage): AsyncGenerator<ChatCompletionChunk> {
  let finished = false;
  let done = false;
  try {
    // destroyOnReturn: false — leaving the loop at `[DONE]` must not close a keep-alive socket.
    for await (const ev of readSse(res.iterator({ destroyOnReturn: false }))) {
      if (ev.data === '[DONE]') {
        done = true;
        return;
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
    throw mapError(e, true);
  } finally {
    // After `[DONE]` only the body's end is left: read it so the socket returns to the pool.
    // A consumer that stopped early (client gone, timeout, error) lets the connection go.
    if (!res.complete) {
      if (done) res.resume();
      else res.destroy();
    }
  }
  // The body ended without `data: [DONE]`: a finished answer is complete, anything else was cut off.
  if (!finished) throw new UpstreamError('provider_stream_error', 'The provider stream ended before the answer was finished.');
}

/** The `error.message` of an OpenAI error body (or a plain `message`/`error` string), cut short. */
function errorMessage(text: string): string | undefined {
  try {
    const j = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown };
    const m = typeof j?.error === 'string' ? j.error : typeof j?.error?.message === 'string' ? j.error.message : typeof j?.message === 'string' ? j.message : undefined;
    return m?.slice(0, 300);
  } catch {
    return text ? text.slice(0, 300) : undefined;
  }
}

function mapError(e: unknown, midStream = false): unknown {
  if (e instanceof UpstreamError || isAbort(e)) return e;
  if (midStream) return new UpstreamError('provider_stream_error', 'The provider connection dropped mid-stream.');
  const m = (e as Error)?.message ?? String(e);
  return new UpstreamError('provider_connection_error', `Could not reach the provider (${m.slice(0, 200)}).`);
}
