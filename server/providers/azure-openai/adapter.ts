import { azureTokenUrl } from '../kinds.js';
import { chunks } from '../openai/adapter.js';
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
import { errorMessage, parseOrigin, upstreamCall, upstreamJson, type Origin } from '../upstream-http.js';
import { EntraTokenSource } from './entra.js';

/**
 * Azure OpenAI: the resource endpoint (`https://<resource>.openai.azure.com`, or the
 * deployment's base URL), the model name is the Azure *deployment* name
 * (`/openai/deployments/<name>/chat/completions?api-version=…`), and the key as `api-key`
 * or a Microsoft Entra ID token (client credentials, cached: entra.ts).
 *
 * The wire shape is OpenAI's, so answers and SSE chunks pass through (the OpenAI adapter's
 * stream reader), minus Azure's choice-less `prompt_filter_results` chunks. Azure's own:
 * - a prompt its content filter refuses is a 400 `content_filter` error →
 *   `provider_content_filtered` (not a generic rejection); an answer it filters ends with
 *   finish_reason `content_filter`, as OpenAI clients expect;
 * - 429 carries `retry-after-ms` (honoured by upstream-http over `retry-after`);
 * - 404 `DeploymentNotFound` → `provider_model_not_found` (the deployment name is wrong or
 *   not deployed in this resource).
 */
export const DEFAULT_API_VERSION = '2024-10-21';

export class AzureOpenAIAdapter implements ProviderAdapter {
  readonly kind = 'azure-openai' as const;
  private readonly origin: Origin;
  private readonly query: string;
  private readonly apiKeyHeaders: Readonly<Record<string, string>> | undefined;
  private readonly entra: EntraTokenSource | undefined;

  constructor(cfg: AdapterConfig) {
    this.origin = parseOrigin(cfg.baseUrl, cfg.egress);
    const s = cfg.settings ?? {};
    const version = typeof s.api_version === 'string' && s.api_version ? s.api_version : DEFAULT_API_VERSION;
    this.query = `?api-version=${encodeURIComponent(version)}`;
    const secret = cfg.credentials?.entra_client_secret;
    if (secret && typeof s.entra_client_id === 'string') {
      this.entra = new EntraTokenSource({ tokenUrl: azureTokenUrl(s), clientId: s.entra_client_id, clientSecret: secret, egress: cfg.egress });
    } else this.apiKeyHeaders = { 'api-key': cfg.apiKey ?? '' };
  }

  /** The auth header: the api-key, or a cached Entra token (fetched only when due). */
  private async headers(signal: AbortSignal): Promise<Readonly<Record<string, string>>> {
    if (this.apiKeyHeaders) return this.apiKeyHeaders;
    return { authorization: `Bearer ${await this.entra!.get(signal)}` };
  }

  private path(model: string, op: string): string {
    return `/openai/deployments/${encodeURIComponent(model)}/${op}${this.query}`;
  }

  async chat(req: ChatRequest, o: CallOptions): Promise<ChatCompletion> {
    return (await upstreamJson(this.origin, 'POST', this.path(req.model, 'chat/completions'), await this.headers(o.signal), { ...req, stream: false }, o.signal, classify)) as ChatCompletion;
  }

  async chatStream(req: ChatRequest, o: CallOptions): Promise<AsyncIterable<ChatCompletionChunk>> {
    const body = { ...req, stream: true, stream_options: { include_usage: true } };
    const res = await upstreamCall(this.origin, 'POST', this.path(req.model, 'chat/completions'), await this.headers(o.signal), body, o.signal, 'text/event-stream', classify);
    const type = String(res.headers['content-type'] ?? '');
    if (!type.startsWith('text/event-stream')) {
      res.body.resume();
      throw new UpstreamError('provider_bad_response', `Azure OpenAI answered ${type || 'without a content type'} instead of an event stream.`);
    }
    return withoutFilterChunks(chunks(res));
  }

  async embed(req: EmbeddingsRequest, o: CallOptions): Promise<CreateEmbeddingResponse> {
    return (await upstreamJson(this.origin, 'POST', this.path(req.model, 'embeddings'), await this.headers(o.signal), req, o.signal, classify)) as CreateEmbeddingResponse;
  }

  /** The models the resource offers (`providers test`: key, endpoint and api-version in one call). */
  async listModels(o: CallOptions): Promise<string[]> {
    const r = (await upstreamJson(this.origin, 'GET', `/openai/models${this.query}`, await this.headers(o.signal), undefined, o.signal)) as { data?: { id?: unknown }[] };
    if (!Array.isArray(r?.data)) throw new UpstreamError('provider_bad_response', 'Azure OpenAI answered /openai/models without a data list.');
    return r.data.map((m) => String(m.id));
  }
}

/** Azure's error bodies that mean more than their status. */
function classify(status: number, body: string): UpstreamError | undefined {
  let e: { code?: unknown; param?: unknown; innererror?: { code?: unknown } } | undefined;
  try {
    e = (JSON.parse(body) as { error?: typeof e }).error;
  } catch {
    return undefined;
  }
  if (status === 400 && (e?.code === 'content_filter' || e?.innererror?.code === 'ResponsibleAIPolicyViolation')) {
    // upstreamText says what was filtered (call.ts words the client's message from it).
    return new UpstreamError('provider_content_filtered', "Azure OpenAI's content filter refused the prompt.", status, undefined, 'prompt');
  }
  if (status === 404 && e?.code === 'DeploymentNotFound') {
    return new UpstreamError('provider_model_not_found', `The provider answered 404: ${errorMessage(body) ?? 'deployment not found'}`, status);
  }
  return undefined;
}

/** Azure sends the prompt's filter results as a chunk without choices or usage: not an OpenAI chunk a client expects. */
async function* withoutFilterChunks(src: AsyncIterable<ChatCompletionChunk>): AsyncGenerator<ChatCompletionChunk> {
  for await (const c of src) {
    if (c.choices?.length === 0 && !c.usage) continue;
    yield c;
  }
}
