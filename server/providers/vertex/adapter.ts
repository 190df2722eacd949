import { parseOrigin, readAll, readJson, readSse, send, toUpstreamError, type Origin, type UpstreamResponse } from '../upstream-http.js';
import {
  parseRetryAfter,
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
import { parseServiceAccount, ServiceAccountTokens } from './auth.js';
import { readJsonArray } from './json-array.js';
import { fromGemini, googleError, toGemini, toOpenAIChunks, type GeminiResponse } from './transform.js';

/**
 * Gemini models over Google's REST API, in its two forms:
 *  - `vertex`: Vertex AI, `/v1/projects/{project}/locations/{region}/publishers/google/models/{m}`,
 *    host `{region}-aiplatform.googleapis.com`, a bearer token from the deployment's service
 *    account (auth.ts);
 *  - `gemini`: the Generative Language API, `/v1beta/models/{m}`, the API key in `x-goog-api-key`.
 * `:generateContent` for whole answers, `:streamGenerateContent?alt=sse` for streams (server-
 * sent events, one GenerateContentResponse per event, decoded as they arrive by the shared SSE
 * reader); an answer in Google's default JSON-array framing is decoded too (json-array.ts).
 */
interface GoogleAuth {
  headers(signal: AbortSignal): Promise<Record<string, string>>;
  /** The API refused the credential: drop anything cached. */
  refused(): void;
}

abstract class GoogleAdapter implements ProviderAdapter {
  abstract readonly kind: 'vertex' | 'gemini';
  protected readonly origin: Origin;

  constructor(
    baseUrl: string,
    cfg: AdapterConfig,
    private readonly auth: GoogleAuth,
  ) {
    this.origin = parseOrigin(baseUrl, cfg.egress);
  }

  /** The model's path prefix, e.g. `/v1beta/models/gemini-2.5-flash`. */
  protected abstract modelPath(model: string): string;
  protected abstract modelsPath(): string;
  protected abstract modelNames(j: unknown): string[] | undefined;

  private async call(method: 'GET' | 'POST', path: string, body: unknown, signal: AbortSignal): Promise<UpstreamResponse> {
    const headers: Record<string, string> = { accept: 'application/json', ...(await this.auth.headers(signal)) };
    let payload: string | undefined;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
    let res: UpstreamResponse;
    try {
      res = await send(this.origin, method, path, headers, payload, signal);
    } catch (e) {
      throw toUpstreamError(e);
    }
    if (res.status >= 200 && res.status < 300) return res;
    let text = '';
    try {
      text = (await readAll(res, 1024 * 1024)).toString('utf8');
    } catch {
      // the status is what matters
    }
    const ra = res.headers['retry-after'];
    const e = googleError(res.status, text, parseRetryAfter(Array.isArray(ra) ? ra[0] : ra));
    if (e.code === 'provider_auth_failed') this.auth.refused();
    throw e;
  }

  async chat(req: ChatRequest, o: CallOptions): Promise<ChatCompletion> {
    const res = await this.call('POST', `${this.modelPath(String(req.model))}:generateContent`, toGemini(req), o.signal);
    return fromGemini((await readJson(res)) as GeminiResponse, String(req.model));
  }

  async chatStream(req: ChatRequest, o: CallOptions): Promise<AsyncIterable<ChatCompletionChunk>> {
    const res = await this.call('POST', `${this.modelPath(String(req.model))}:streamGenerateContent?alt=sse`, toGemini(req), o.signal);
    const type = String(res.headers['content-type'] ?? '');
    // SSE as asked; Google's default JSON-array framing from a server or proxy that dropped `alt=sse`.
    const sse = type.startsWith('text/event-stream');
    if (!sse && !type.startsWith('application/json')) {
      res.body.resume();
      throw new UpstreamError('provider_bad_response', `The provider answered ${type || 'without a content type'} instead of an event stream.`);
    }
    const model = String(req.model);
    return (async function* () {
      try {
        for await (const c of toOpenAIChunks(sse ? responses(res) : arrayResponses(res), model)) yield c;
      } catch (e) {
        throw toUpstreamError(e, true);
      } finally {
        if (!res.body.readableEnded) res.body.destroy();
      }
    })();
  }

  /** The kind's embeddings request and how to read its answer (vectors and, when told, token counts). */
  protected abstract embedCall(model: string, texts: string[], dimensions: number | undefined): { path: string; body: unknown; read(j: unknown): { vectors: number[][]; tokens: number | undefined } | undefined };

  async embed(req: EmbeddingsRequest, o: CallOptions): Promise<CreateEmbeddingResponse> {
    const input = req.input as unknown;
    const texts = typeof input === 'string' ? [input] : Array.isArray(input) && input.every((x) => typeof x === 'string') ? (input as string[]) : undefined;
    if (!texts || texts.length === 0) throw new UpstreamError('provider_request_rejected', 'This provider embeds text: input must be a string or a list of strings.', 400, undefined, 'input must be a string or a list of strings');
    const model = String(req.model);
    const c = this.embedCall(model, texts, typeof req.dimensions === 'number' ? req.dimensions : undefined);
    const res = await this.call('POST', c.path, c.body, o.signal);
    const j = await readJson(res);
    const r = c.read(j);
    if (!r || r.vectors.length !== texts.length || !r.vectors.every(Array.isArray)) throw new UpstreamError('provider_bad_response', 'The provider answered without one embedding per input.');
    // The Gemini API reports no token count for embeddings: estimated at four characters a token.
    const n = r.tokens ?? texts.reduce((k, t) => k + Math.ceil(t.length / 4), 0);
    return { object: 'list', model, data: r.vectors.map((embedding, index) => ({ object: 'embedding', index, embedding })), usage: { prompt_tokens: n, total_tokens: n } };
  }

  async listModels(o: CallOptions): Promise<string[]> {
    const res = await this.call('GET', this.modelsPath(), undefined, o.signal);
    const j = await readJson(res);
    const names = this.modelNames(j);
    if (!names) throw new UpstreamError('provider_bad_response', 'The provider answered the model list without models.');
    return names;
  }
}

/** The SSE events of a streamGenerateContent answer, parsed (malformed JSON fails the stream). */
async function* responses(res: UpstreamResponse): AsyncGenerator<GeminiResponse> {
  for await (const ev of readSse(res.body.iterator({ destroyOnReturn: false }))) {
    let j: GeminiResponse;
    try {
      j = JSON.parse(ev.data) as GeminiResponse;
    } catch {
      throw new UpstreamError('provider_stream_error', 'The provider sent malformed JSON mid-stream.');
    }
    yield j;
  }
}

/** The elements of a streamed JSON array answer (malformed JSON fails the stream). */
async function* arrayResponses(res: UpstreamResponse): AsyncGenerator<GeminiResponse> {
  try {
    for await (const v of readJsonArray(res.body.iterator({ destroyOnReturn: false }))) yield v as GeminiResponse;
  } catch (e) {
    if (e instanceof SyntaxError) throw new UpstreamError('provider_stream_error', 'The provider sent malformed JSON mid-stream.');
    throw e;
  }
}

const lastSegment = (name: unknown): string => String(name).split('/').pop() ?? '';

export class GeminiAdapter extends GoogleAdapter {
  readonly kind = 'gemini' as const;
  constructor(cfg: AdapterConfig) {
    const key = cfg.apiKey;
    super(cfg.baseUrl || 'https://generativelanguage.googleapis.com', cfg, {
      headers: () => (key ? Promise.resolve({ 'x-goog-api-key': key }) : Promise.reject(new UpstreamError('provider_auth_failed', 'Gemini: the deployment has no API key.'))),
      refused: () => {},
    });
  }
  protected modelPath(model: string): string {
    return `/v1beta/models/${encodeURIComponent(model)}`;
  }
  protected modelsPath(): string {
    return '/v1beta/models?pageSize=1000';
  }
  protected embedCall(model: string, texts: string[], dimensions: number | undefined) {
    return {
      path: `${this.modelPath(model)}:batchEmbedContents`,
      body: { requests: texts.map((text) => ({ model: `models/${model}`, content: { parts: [{ text }] }, ...(dimensions ? { outputDimensionality: dimensions } : {}) })) },
      read: (j: unknown) => {
        const e = (j as { embeddings?: { values?: number[] }[] } | null)?.embeddings;
        return Array.isArray(e) ? { vectors: e.map((x) => x.values as number[]), tokens: undefined } : undefined;
      },
    };
  }
  protected modelNames(j: unknown): string[] | undefined {
    const m = (j as { models?: { name?: unknown }[] } | null)?.models;
    return Array.isArray(m) ? m.map((x) => lastSegment(x.name)) : undefined;
  }
}

export class VertexAdapter extends GoogleAdapter {
  readonly kind = 'vertex' as const;
  private readonly project: string;
  private readonly region: string;

  constructor(cfg: AdapterConfig) {
    const region = cfg.region ?? '';
    // kinds.ts derives the base URL from the region (the `global` location has no regional host).
    const base = cfg.baseUrl || 'https://aiplatform.googleapis.com';
    let tokens: ServiceAccountTokens | undefined;
    let bad: UpstreamError | undefined;
    try {
      tokens = new ServiceAccountTokens(parseServiceAccount(cfg.credentials?.service_account_json), cfg.egress);
    } catch (e) {
      // Reported on each call (a broken key must not break the catalogue's reload).
      bad = e instanceof UpstreamError ? e : new UpstreamError('provider_auth_failed', 'Vertex: the service-account key is unusable.');
    }
    super(base, cfg, {
      headers: async (signal) => {
        if (!tokens) throw bad;
        return { authorization: `Bearer ${await tokens.get(signal)}` };
      },
      refused: () => tokens?.invalidate(),
    });
    const project = cfg.settings?.project;
    this.project = typeof project === 'string' ? project : '';
    this.region = region;
  }
  protected modelPath(model: string): string {
    if (!this.project || !this.region) throw new UpstreamError('provider_request_rejected', 'Vertex: the deployment needs a project and a region.', undefined, undefined, 'the deployment needs a project and a region');
    return `/v1/projects/${encodeURIComponent(this.project)}/locations/${encodeURIComponent(this.region)}/publishers/google/models/${encodeURIComponent(model)}`;
  }
  protected modelsPath(): string {
    return '/v1beta1/publishers/google/models?pageSize=100';
  }
  protected embedCall(model: string, texts: string[], dimensions: number | undefined) {
    return {
      path: `${this.modelPath(model)}:predict`,
      body: { instances: texts.map((content) => ({ content })), ...(dimensions ? { parameters: { outputDimensionality: dimensions } } : {}) },
      read: (j: unknown) => {
        const p = (j as { predictions?: { embeddings?: { values?: number[]; statistics?: { token_count?: number } } }[] } | null)?.predictions;
        if (!Array.isArray(p)) return undefined;
        const counts = p.map((x) => x.embeddings?.statistics?.token_count);
        return { vectors: p.map((x) => x.embeddings?.values as number[]), tokens: counts.every((c) => typeof c === 'number') ? counts.reduce((a, b) => a + (b as number), 0) : undefined };
      },
    };
  }
  protected modelNames(j: unknown): string[] | undefined {
    const m = (j as { publisherModels?: { name?: unknown }[] } | null)?.publisherModels;
    return Array.isArray(m) ? m.map((x) => lastSegment(x.name)) : undefined;
  }
}
