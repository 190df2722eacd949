import { parseOrigin, readAll, readJson, send, toUpstreamError, type Origin, type UpstreamResponse } from '../upstream-http.js';
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
import { credentialSource, type CredentialSource } from './credentials.js';
import { EventStreamError, readEventStream } from './event-stream.js';
import { amzDate, signV4 } from './sigv4.js';
import { bedrockError, fromConverse, toConverse, toOpenAIChunks, type ConverseResponse, type StreamEvent } from './transform.js';

/**
 * AWS Bedrock through the Converse API (`POST /model/{id}/converse`) and ConverseStream
 * (`/converse-stream`, answered in the AWS event-stream binary framing), every request
 * SigV4-signed for service `bedrock` in the deployment's region, over the gateway's
 * keep-alive client (upstream-http.ts; egress-guarded for tenant-private deployments).
 * The host is bedrock-runtime.<region>.amazonaws.com unless the deployment's base URL says
 * otherwise (a VPC endpoint, or the fake in tests). The model list (`providers test`) comes
 * from the control plane's ListFoundationModels (bedrock.<region>.amazonaws.com).
 */
export class BedrockAdapter implements ProviderAdapter {
  readonly kind = 'bedrock' as const;
  private readonly runtime: Origin;
  private readonly runtimeHost: string;
  private readonly control: Origin;
  private readonly controlHost: string;
  private readonly region: string | undefined;
  private readonly creds: CredentialSource;

  constructor(cfg: AdapterConfig) {
    this.region = cfg.region ?? undefined;
    const base = cfg.baseUrl || (this.region ? `https://bedrock-runtime.${this.region}.amazonaws.com` : 'https://bedrock-runtime.invalid');
    this.runtime = parseOrigin(base, cfg.egress);
    this.runtimeHost = new URL(base).host;
    const defaultRuntime = this.region !== undefined && new URL(base).host === `bedrock-runtime.${this.region}.amazonaws.com`;
    const control = defaultRuntime ? `https://bedrock.${this.region}.amazonaws.com` : base;
    this.control = parseOrigin(control, cfg.egress);
    this.controlHost = new URL(control).host;
    this.creds = credentialSource({ credentials: cfg.credentials, useInstanceRole: cfg.settings?.use_instance_role === true, tenantPrivate: cfg.egress !== undefined });
  }

  /** Signs and sends one request; resolves with a 2xx answer or throws the mapped AWS error. */
  private async call(o: Origin, host: string, method: 'GET' | 'POST', path: string, body: string, accept: string, signal: AbortSignal): Promise<UpstreamResponse> {
    if (!this.region) throw new UpstreamError('provider_request_rejected', 'Bedrock: the deployment has no region.', undefined, undefined, 'the deployment has no region');
    const c = await this.creds.get(signal);
    const date = amzDate(Date.now());
    const headers: Record<string, string> = { host, 'x-amz-date': date };
    if (method === 'POST') headers['content-type'] = 'application/json';
    if (c.sessionToken) headers['x-amz-security-token'] = c.sessionToken;
    const fullPath = o.base + path;
    const q = fullPath.indexOf('?');
    headers.authorization = signV4({
      method,
      path: q < 0 ? fullPath : fullPath.slice(0, q),
      query: q < 0 ? '' : fullPath.slice(q + 1),
      headers,
      body,
      region: this.region,
      service: 'bedrock',
      credentials: c,
      amzDate: date,
    }).authorization;
    headers.accept = accept;
    let res: UpstreamResponse;
    try {
      res = await send(o, method, path, headers, method === 'POST' ? body : undefined, signal);
    } catch (e) {
      throw toUpstreamError(e);
    }
    if (res.status >= 200 && res.status < 300) return res;
    let text = '';
    try {
      text = (await readAll(res, 1024 * 1024)).toString('utf8');
    } catch {
      // The status and the error type header are what matter.
    }
    let message: string | undefined;
    let bodyType: string | undefined;
    try {
      const j = JSON.parse(text) as { message?: unknown; Message?: unknown; __type?: unknown };
      message = typeof j.message === 'string' ? j.message : typeof j.Message === 'string' ? j.Message : undefined;
      bodyType = typeof j.__type === 'string' ? j.__type : undefined;
    } catch {
      message = text.slice(0, 300) || undefined;
    }
    const h = res.headers['x-amzn-errortype'];
    const ra = res.headers['retry-after'];
    throw bedrockError(res.status, (Array.isArray(h) ? h[0] : h) ?? bodyType, message, parseRetryAfter(Array.isArray(ra) ? ra[0] : ra));
  }

  private path(model: string, op: 'converse' | 'converse-stream'): string {
    return `/model/${encodeURIComponent(model)}/${op}`;
  }

  async chat(req: ChatRequest, o: CallOptions): Promise<ChatCompletion> {
    const body = JSON.stringify(toConverse(req));
    const res = await this.call(this.runtime, this.runtimeHost, 'POST', this.path(String(req.model), 'converse'), body, 'application/json', o.signal);
    return fromConverse((await readJson(res)) as ConverseResponse, String(req.model));
  }

  async chatStream(req: ChatRequest, o: CallOptions): Promise<AsyncIterable<ChatCompletionChunk>> {
    const body = JSON.stringify(toConverse(req));
    const res = await this.call(this.runtime, this.runtimeHost, 'POST', this.path(String(req.model), 'converse-stream'), body, 'application/vnd.amazon.eventstream', o.signal);
    const type = String(res.headers['content-type'] ?? '');
    if (!type.startsWith('application/vnd.amazon.eventstream')) {
      res.body.resume();
      throw new UpstreamError('provider_bad_response', `The provider answered ${type || 'without a content type'} instead of an event stream.`);
    }
    const model = String(req.model);
    return (async function* () {
      try {
        for await (const c of toOpenAIChunks(events(res), model)) yield c;
      } catch (e) {
        throw toUpstreamError(e, true);
      } finally {
        // A consumer that stopped early (client gone, timeout, error) lets the connection go.
        if (!res.body.readableEnded) res.body.destroy();
      }
    })();
  }

  /**
   * Amazon Titan text embeddings (`amazon.titan-embed-text-v2:0`, `…-v1`) through InvokeModel:
   * one request per input (Titan embeds one text at a time), in parallel, usage from
   * `inputTextTokenCount`. Other embedding families on Bedrock (Cohere) have their own body
   * shapes and are refused clearly.
   */
  async embed(req: EmbeddingsRequest, o: CallOptions): Promise<CreateEmbeddingResponse> {
    const model = String(req.model);
    if (!/(^|\.)amazon\.titan-embed-text/.test(model)) {
      throw new UpstreamError('provider_request_rejected', 'Bedrock embeddings are served for Amazon Titan text embedding models only.', 400, undefined, 'only Amazon Titan text embedding models are supported');
    }
    const input = req.input as unknown;
    const texts = typeof input === 'string' ? [input] : Array.isArray(input) && input.every((x) => typeof x === 'string') ? (input as string[]) : undefined;
    if (!texts || texts.length === 0) throw new UpstreamError('provider_request_rejected', 'This provider embeds text: input must be a string or a list of strings.', 400, undefined, 'input must be a string or a list of strings');
    const dims = typeof req.dimensions === 'number' ? req.dimensions : undefined;
    const one = async (inputText: string): Promise<{ embedding: number[]; tokens: number }> => {
      const body = JSON.stringify({ inputText, ...(dims ? { dimensions: dims } : {}) });
      const res = await this.call(this.runtime, this.runtimeHost, 'POST', `/model/${encodeURIComponent(model)}/invoke`, body, 'application/json', o.signal);
      const j = (await readJson(res)) as { embedding?: unknown; inputTextTokenCount?: unknown };
      if (!Array.isArray(j.embedding)) throw new UpstreamError('provider_bad_response', 'The provider answered without an embedding.');
      return { embedding: j.embedding as number[], tokens: typeof j.inputTextTokenCount === 'number' ? j.inputTextTokenCount : 0 };
    };
    const out = await Promise.all(texts.map(one));
    const n = out.reduce((k, x) => k + x.tokens, 0);
    return { object: 'list', model, data: out.map((x, index) => ({ object: 'embedding', index, embedding: x.embedding })), usage: { prompt_tokens: n, total_tokens: n } };
  }

  async listModels(o: CallOptions): Promise<string[]> {
    const res = await this.call(this.control, this.controlHost, 'GET', '/foundation-models', '', 'application/json', o.signal);
    const j = (await readJson(res)) as { modelSummaries?: { modelId?: unknown }[] };
    if (!Array.isArray(j?.modelSummaries)) throw new UpstreamError('provider_bad_response', 'The provider answered ListFoundationModels without modelSummaries.');
    return j.modelSummaries.map((m) => String(m.modelId));
  }
}

/** The event-stream messages of a ConverseStream answer as typed events; exceptions fail the stream. */
async function* events(res: UpstreamResponse): AsyncGenerator<StreamEvent> {
  try {
    for await (const m of readEventStream(res.body.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>)) {
      const kind = m.headers[':message-type'];
      const payload = m.payload.toString('utf8');
      if (kind === 'event') {
        let body: Record<string, unknown>;
        try {
          body = payload ? (JSON.parse(payload) as Record<string, unknown>) : {};
        } catch {
          throw new UpstreamError('provider_stream_error', 'The provider sent malformed JSON mid-stream.');
        }
        yield { type: String(m.headers[':event-type'] ?? ''), body };
      } else if (kind === 'exception') {
        let message: string | undefined;
        try {
          message = (JSON.parse(payload) as { message?: string }).message;
        } catch {
          message = payload.slice(0, 300);
        }
        throw bedrockError(undefined, String(m.headers[':exception-type'] ?? ''), message);
      } else if (kind === 'error') {
        throw bedrockError(undefined, String(m.headers[':error-code'] ?? ''), String(m.headers[':error-message'] ?? ''));
      }
    }
  } catch (e) {
    if (e instanceof EventStreamError) throw new UpstreamError('provider_stream_error', `The provider's event stream is corrupt (${e.message}).`);
    throw e;
  }
}
