import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { exportPKCS8, generateKeyPair, jwtVerify, type CryptoKey } from 'jose';
import { FakeUpstream, REPLY_PIECES, sleep, type Fault, type SeenRequest } from './common.js';
import { vector } from './fake-openai.js';

/**
 * A fake Google Gemini endpoint in one of its two forms, speaking the real wire protocol:
 *  - `vertex`: Vertex AI (`/v1/projects/{p}/locations/{l}/publishers/google/models/{m}:…`,
 *    a bearer token) plus an OAuth token endpoint at `/token` for a service account whose key
 *    pair the fake generated: the token endpoint VERIFIES the jwt-bearer assertion with the
 *    account's public key (RS256, iss = the account, aud = the token URI, a live exp) and
 *    hands out short opaque tokens; `serviceAccountJson()` is the key file an admin would
 *    download (token_uri pointing here);
 *  - `gemini`: the Generative Language API (`/v1beta/models/{m}:…`, `x-goog-api-key`; a wrong
 *    key is Google's 400 INVALID_ARGUMENT with reason API_KEY_INVALID).
 * `:batchEmbedContents` (gemini) / `:predict` (vertex, with token counts) embed text.
 * `:generateContent` answers JSON; `:streamGenerateContent` answers SSE with `?alt=sse` and
 * otherwise Google's default framing, one JSON array written element by element. Function
 * calls when the request offers tools; a prompt containing BLOCKME is blocked
 * (promptFeedback.blockReason SAFETY), UNSAFE_ANSWER gets a candidate stopped with SAFETY.
 * Errors in Google's `{"error":{code,message,status,details}}` shape. Faults (common.ts):
 * rate_limit → 429 RESOURCE_EXHAUSTED with RetryInfo; server_error → 500 INTERNAL;
 * malformed; error_mid_stream (an `error` object as an event); stall/drop mid-stream.
 */
export class FakeVertex extends FakeUpstream {
  models = ['gemini-2.5-flash', 'gemini-2.5-pro', 'gemini-2.0-flash-001'];
  embeddingModels = ['text-embedding-004', 'gemini-embedding-001'];
  project = 'enclave-test-1';
  location = 'europe-west4';
  /** gemini: the API key required. */
  apiKey = 'AIza-fake-gemini-key';
  /** vertex: seconds a token lives (expires_in). */
  tokenTtlS = 3599;
  /** Stream the default JSON array even when `alt=sse` is asked for (a proxy that drops the query). */
  ignoreAlt = false;
  /** Tokens handed out, and assertions refused. */
  tokensIssued = 0;
  assertionsRefused = 0;
  private readonly tokens = new Set<string>();
  private publicKey: CryptoKey | undefined;
  private privatePem = '';
  readonly clientEmail = 'enclave@enclave-test-1.iam.gserviceaccount.com';

  constructor(readonly mode: 'vertex' | 'gemini') {
    super();
  }

  override async start(): Promise<this> {
    await super.start();
    const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
    this.publicKey = publicKey;
    this.privatePem = await exportPKCS8(privateKey);
    return this;
  }

  /** The service-account key file for this fake (optionally signed by another key: a wrong key). */
  serviceAccountJson(o: { privatePem?: string; clientEmail?: string } = {}): string {
    return JSON.stringify({
      type: 'service_account',
      project_id: this.project,
      private_key_id: 'fakekeyid1',
      private_key: o.privatePem ?? this.privatePem,
      client_email: o.clientEmail ?? this.clientEmail,
      client_id: '1234567890',
      token_uri: `${this.url}/token`,
    });
  }

  /** Revokes every token handed out (the next call gets 401 and must fetch a new one). */
  revokeTokens(): void {
    this.tokens.clear();
  }

  override reset(): void {
    super.reset();
    this.tokensIssued = 0;
    this.assertionsRefused = 0;
    this.tokenTtlS = 3599;
    this.ignoreAlt = false;
  }

  protected override takesFaults(path: string): boolean {
    return path.includes(':generateContent') || path.includes(':streamGenerateContent');
  }

  protected async handle(req: IncomingMessage, res: ServerResponse, seen: SeenRequest, fault: Fault | undefined): Promise<void> {
    if (this.mode === 'vertex' && seen.method === 'POST' && seen.path === '/token') return this.token(res, seen);
    if (this.mode === 'gemini') {
      if (req.headers['x-goog-api-key'] !== this.apiKey) {
        return googleError(res, 400, 'INVALID_ARGUMENT', 'API key not valid. Please pass a valid API key.', [
          { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com', metadata: { service: 'generativelanguage.googleapis.com' } },
        ]);
      }
    } else {
      const auth = req.headers.authorization ?? '';
      if (!auth.startsWith('Bearer ') || !this.tokens.has(auth.slice(7))) {
        return googleError(res, 401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.');
      }
    }
    const list = this.mode === 'gemini' ? '/v1beta/models' : '/v1beta1/publishers/google/models';
    if (seen.method === 'GET' && seen.path === list) {
      return json(
        res,
        200,
        this.mode === 'gemini'
          ? { models: this.models.map((m) => ({ name: `models/${m}`, displayName: m, supportedGenerationMethods: ['generateContent', 'countTokens'] })) }
          : { publisherModels: this.models.map((m) => ({ name: `publishers/google/models/${m}`, versionId: '001', launchStage: 'GA' })) },
      );
    }
    const prefix = this.mode === 'gemini' ? '/v1beta/models/' : `/v1/projects/${this.project}/locations/${this.location}/publishers/google/models/`;
    const em = /^(.*\/models\/)([^/:]+):(batchEmbedContents|predict)$/.exec(seen.path);
    if (seen.method === 'POST' && em && em[1] === prefix && em[3] === (this.mode === 'gemini' ? 'batchEmbedContents' : 'predict')) {
      if (!this.embeddingModels.includes(decodeURIComponent(em[2]!))) return googleError(res, 404, 'NOT_FOUND', `models/${em[2]} is not found for API version v1beta, or is not supported for embedContent.`);
      const texts: string[] = this.mode === 'gemini' ? (seen.body?.requests ?? []).map((r: any) => r.content?.parts?.[0]?.text ?? '') : (seen.body?.instances ?? []).map((i: any) => i.content ?? '');
      const dims = Number(this.mode === 'gemini' ? seen.body?.requests?.[0]?.outputDimensionality : seen.body?.parameters?.outputDimensionality) || 8;
      return json(
        res,
        200,
        this.mode === 'gemini'
          ? { embeddings: texts.map((t) => ({ values: vector(t, dims) })) }
          : { predictions: texts.map((t) => ({ embeddings: { values: vector(t, dims), statistics: { token_count: t.split(/\s+/).filter(Boolean).length, truncated: false } } })), metadata: { billableCharacterCount: texts.join('').length } },
      );
    }
    const m = /^(.*\/models\/)([^/:]+):(generateContent|streamGenerateContent)$/.exec(seen.path);
    if (seen.method !== 'POST' || !m) return googleError(res, 404, 'NOT_FOUND', `The requested URL ${seen.path} was not found on this server.`);
    if (m[1] !== prefix) {
      return this.mode === 'vertex'
        ? googleError(res, 403, 'PERMISSION_DENIED', `Permission 'aiplatform.endpoints.predict' denied on resource '${m[1]}' (or it may not exist).`)
        : googleError(res, 404, 'NOT_FOUND', `The requested URL ${seen.path} was not found on this server.`);
    }
    const model = decodeURIComponent(m[2]!);
    if (!this.models.includes(model)) {
      return googleError(
        res,
        404,
        'NOT_FOUND',
        this.mode === 'gemini'
          ? `models/${model} is not found for API version v1beta, or is not supported for generateContent.`
          : `Publisher Model \`projects/${this.project}/locations/${this.location}/publishers/google/models/${model}\` was not found or your project does not have access to it.`,
      );
    }
    if (fault?.mode === 'rate_limit') {
      return googleError(res, 429, 'RESOURCE_EXHAUSTED', 'Resource has been exhausted (e.g. check quota).', [
        { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${fault.retryAfterS ?? 1}s` },
      ]);
    }
    if (fault?.mode === 'server_error') return googleError(res, 500, 'INTERNAL', 'Internal error encountered.');
    const body = seen.body;
    if (!Array.isArray(body?.contents) || body.contents.length === 0) return googleError(res, 400, 'INVALID_ARGUMENT', '* GenerateContentRequest.contents: contents is not specified');
    for (const c of body.contents) {
      if (c.role !== 'user' && c.role !== 'model') return googleError(res, 400, 'INVALID_ARGUMENT', `Please use a valid role: user, model.`);
    }
    const text = body.contents
      .flatMap((c: any) => c.parts ?? [])
      .map((p: any) => p.text ?? '')
      .join(' ');
    const prompt = text.split(/\s+/).filter(Boolean).length + (body.systemInstruction?.parts ?? []).reduce((n: number, p: any) => n + String(p.text ?? '').split(/\s+/).filter(Boolean).length, 0);
    const stream = m[3] === 'streamGenerateContent';
    const sse = !this.ignoreAlt && new URL(req.url ?? '/', 'http://x').searchParams.get('alt') === 'sse';
    const tool: string | undefined = body.tools?.[0]?.functionDeclarations?.[0]?.name;
    const lastIsResponse = body.contents.at(-1)?.parts?.some((p: any) => p.functionResponse);
    const useTool = tool !== undefined && !lastIsResponse && body.toolConfig?.functionCallingConfig?.mode !== 'NONE';
    const max = Number(body.generationConfig?.maxOutputTokens);
    const pieces = Number.isInteger(max) && max > 0 ? REPLY_PIECES.slice(0, max) : REPLY_PIECES;
    const out = useTool ? 1 : pieces.length;
    const usageMetadata = { promptTokenCount: prompt, candidatesTokenCount: out, totalTokenCount: prompt + out };
    const safety = [{ category: 'HARM_CATEGORY_DANGEROUS_CONTENT', probability: 'NEGLIGIBLE' }];
    const modelVersion = model;
    if (text.includes('BLOCKME')) {
      return this.answer(res, stream, sse, [{ promptFeedback: { blockReason: 'SAFETY', safetyRatings: [{ category: 'HARM_CATEGORY_DANGEROUS_CONTENT', probability: 'HIGH', blocked: true }] }, usageMetadata: { promptTokenCount: prompt, totalTokenCount: prompt }, modelVersion }]);
    }
    if (text.includes('UNSAFE_ANSWER')) {
      return this.answer(res, stream, sse, [{ candidates: [{ content: { role: 'model', parts: [] }, finishReason: 'SAFETY', index: 0, safetyRatings: [{ category: 'HARM_CATEGORY_DANGEROUS_CONTENT', probability: 'HIGH', blocked: true }] }], usageMetadata: { promptTokenCount: prompt, totalTokenCount: prompt }, modelVersion }]);
    }
    const finishReason = pieces.length < REPLY_PIECES.length && !useTool ? 'MAX_TOKENS' : 'STOP';
    if (!stream) {
      if (fault?.mode === 'malformed') {
        res.writeHead(200, { 'content-type': 'application/json; charset=UTF-8' });
        res.end('{"candidates": [{"content": {"parts": [');
        return;
      }
      const parts = useTool ? [{ functionCall: { name: tool, args: { city: 'Paris' } } }] : [{ text: pieces.join('') }];
      return json(res, 200, { candidates: [{ content: { role: 'model', parts }, finishReason, index: 0, safetyRatings: safety }], usageMetadata, modelVersion, responseId: randomBytes(8).toString('hex') });
    }
    const events: unknown[] = useTool
      ? [{ candidates: [{ content: { role: 'model', parts: [{ functionCall: { name: tool, args: { city: 'Paris' } } }] }, index: 0 }], usageMetadata: { promptTokenCount: prompt, totalTokenCount: prompt }, modelVersion }]
      : pieces.map((p) => ({ candidates: [{ content: { role: 'model', parts: [{ text: p }] }, index: 0 }], usageMetadata: { promptTokenCount: prompt, totalTokenCount: prompt }, modelVersion }));
    events.push({ candidates: [{ content: { role: 'model', parts: [{ text: '' }] }, finishReason, index: 0, safetyRatings: safety }], usageMetadata, modelVersion });
    return this.answer(res, stream, sse, events, fault);
  }

  /** Writes the answer events: one JSON document, SSE events, or the default streamed JSON array. */
  private async answer(res: ServerResponse, stream: boolean, sse: boolean, events: unknown[], fault?: Fault): Promise<void> {
    if (!stream) return json(res, 200, events[0]);
    res.writeHead(200, { 'content-type': sse ? 'text/event-stream' : 'application/json; charset=UTF-8', 'x-content-type-options': 'nosniff' });
    if (!sse) res.write('[');
    for (let i = 0; i < events.length; i++) {
      if (i === 2 && fault && fault.mode.endsWith('_mid_stream')) await sleep(30);
      if (i === 2 && fault?.mode === 'stall_mid_stream') return;
      if (i === 2 && fault?.mode === 'drop_mid_stream') {
        res.socket?.destroy();
        return;
      }
      let data = JSON.stringify(events[i]);
      if (i === 2 && fault?.mode === 'error_mid_stream') data = JSON.stringify({ error: { code: 500, message: 'Internal error encountered.', status: 'INTERNAL' } });
      if (i === 2 && fault?.mode === 'malformed') data = '{"candidates": [{"content": ';
      if (res.destroyed) return;
      res.write(sse ? `data: ${data}\r\n\r\n` : `${i ? ',\r\n' : ''}${data}`);
      if (i === 2 && (fault?.mode === 'error_mid_stream' || fault?.mode === 'malformed')) {
        res.end(sse ? '' : ']');
        return;
      }
      if (this.chunkDelayMs) await sleep(this.chunkDelayMs);
    }
    res.end(sse ? '' : ']');
  }

  /** The OAuth token endpoint: a jwt-bearer grant whose assertion must verify with the account's public key. */
  private async token(res: ServerResponse, seen: SeenRequest): Promise<void> {
    const form = new URLSearchParams(seen.raw);
    const refuse = (why: string): void => {
      this.assertionsRefused++;
      json(res, 400, { error: 'invalid_grant', error_description: why });
    };
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return json(res, 400, { error: 'unsupported_grant_type', error_description: 'Invalid grant_type.' });
    const assertion = form.get('assertion') ?? '';
    try {
      const { payload, protectedHeader } = await jwtVerify(assertion, this.publicKey!, {
        algorithms: ['RS256'],
        issuer: this.clientEmail,
        audience: `${this.url}/token`,
        maxTokenAge: 3900, // an assertion lives an hour at most
      });
      if (protectedHeader.kid !== 'fakekeyid1') return refuse('Invalid JWT: the key id is not one of this account’s keys.');
      if (payload.scope !== 'https://www.googleapis.com/auth/cloud-platform') return refuse('Invalid OAuth scope or ID token audience provided.');
    } catch (e) {
      return refuse((e as { code?: string }).code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' ? 'Invalid JWT Signature.' : `Invalid JWT: ${(e as Error).message}`);
    }
    const token = `ya29.fake-${randomBytes(12).toString('hex')}`;
    this.tokens.add(token);
    this.tokensIssued++;
    json(res, 200, { access_token: token, expires_in: this.tokenTtlS, token_type: 'Bearer' });
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function googleError(res: ServerResponse, code: number, status: string, message: string, details?: unknown[]): void {
  json(res, code, { error: { code, message, status, ...(details ? { details } : {}) } });
}
