import type { IncomingMessage, ServerResponse } from 'node:http';
import { countWords, FakeUpstream, REPLY_PIECES, sleep, type Fault, type SeenRequest } from './common.js';
import { vector } from './fake-openai.js';

/**
 * A fake Azure OpenAI resource speaking its real wire protocol:
 * `POST /openai/deployments/{deployment}/chat/completions?api-version=…` (JSON with
 * `prompt_filter_results` and per-choice `content_filter_results`; or SSE: a first chunk
 * with no choices carrying the prompt's filter results, OpenAI chunks, a usage chunk when
 * `stream_options.include_usage`, `data: [DONE]`), `…/embeddings`, `GET /openai/models`;
 * Azure's error shapes (`{"error":{"code":"401"|"DeploymentNotFound"|"content_filter"|"429",
 * "message",…}}`), 429 with both `retry-after` and `retry-after-ms`; auth by `api-key` or a
 * Bearer token issued by its Microsoft Entra ID token endpoint
 * (`POST /{tenant}/oauth2/v2.0/token`, client-credentials grant, AADSTS errors).
 */
export class FakeAzureOpenAI extends FakeUpstream {
  /** Azure deployment name → the model it runs. */
  deployments: Record<string, string> = { 'gpt4o-prod': 'gpt-4o', 'embed-prod': 'text-embedding-3-small' };
  apiKey = 'azure-key-0123456789abcdef';
  entra = { tenant: 'tenant-fake', clientId: 'client-fake', clientSecret: 'entra-secret-0123456789', ttlS: 3599 };
  /** Tokens issued (valid until reset); token requests seen. */
  private readonly tokens = new Set<string>();
  tokenRequests = 0;

  override reset(): void {
    super.reset();
    this.tokenRequests = 0;
  }

  /** The token endpoint never takes a queued fault (the faults are for the model calls). */
  protected override takesFaults(path: string): boolean {
    return !path.includes('/oauth2/') && super.takesFaults(path);
  }

  protected async handle(req: IncomingMessage, res: ServerResponse, seen: SeenRequest, fault: Fault | undefined): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    if (seen.method === 'POST' && url.pathname === `/${this.entra.tenant}/oauth2/v2.0/token`) return this.token(res, seen.raw);
    const auth = req.headers['api-key'] === this.apiKey || this.tokens.has(String(req.headers.authorization ?? '').replace(/^Bearer /, ''));
    if (!auth) {
      return json(res, 401, {
        error: {
          code: '401',
          message:
            'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.',
        },
      });
    }
    if (!url.searchParams.get('api-version')) return json(res, 404, { error: { code: '404', message: 'Resource not found' } });
    if (seen.method === 'GET' && url.pathname === '/openai/models') {
      return json(res, 200, { data: [...new Set(Object.values(this.deployments))].map((id) => ({ id, object: 'model', status: 'succeeded', capabilities: {} })), object: 'list' });
    }
    const m = /^\/openai\/deployments\/([^/]+)\/(chat\/completions|embeddings)$/.exec(url.pathname);
    if (seen.method !== 'POST' || !m) return json(res, 404, { error: { code: '404', message: 'Resource not found' } });
    const model = this.deployments[decodeURIComponent(m[1]!)];
    if (!model) {
      return json(res, 404, {
        error: { code: 'DeploymentNotFound', message: 'The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.' },
      });
    }
    if (fault?.mode === 'rate_limit') {
      const s = fault.retryAfterS ?? 0;
      res.setHeader('retry-after', String(s + 1));
      res.setHeader('retry-after-ms', String(s * 1000 + 250));
      return json(res, 429, {
        error: {
          code: '429',
          message: `Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after ${s + 1} seconds.`,
        },
      });
    }
    if (fault?.mode === 'server_error') return json(res, 500, { error: { code: 'InternalServerError', message: 'The server had an error processing your request.' } });
    if (fault?.mode === 'malformed') {
      res.writeHead(200, { 'content-type': seen.body?.stream ? 'text/event-stream' : 'application/json' });
      res.end(seen.body?.stream ? 'data: {"id": "x", "choices": [\n\n' : '{"id": "chatcmpl-x", "choices": [');
      return;
    }
    if (m[2] === 'embeddings') return this.embeddings(res, seen.body, model);
    return this.chat(res, seen.body, model, fault);
  }

  private token(res: ServerResponse, raw: string): void {
    this.tokenRequests++;
    const f = new URLSearchParams(raw);
    if (f.get('grant_type') !== 'client_credentials') return json(res, 400, { error: 'unsupported_grant_type', error_description: 'AADSTS70003: The app requested an unsupported grant type.' });
    if (f.get('scope') !== 'https://cognitiveservices.azure.com/.default') return json(res, 400, { error: 'invalid_scope', error_description: 'AADSTS70011: The provided value for the input parameter scope is not valid.' });
    if (f.get('client_id') !== this.entra.clientId || f.get('client_secret') !== this.entra.clientSecret) {
      return json(res, 401, {
        error: 'invalid_client',
        error_description: `AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${f.get('client_id')}'. Trace ID: 0000 Correlation ID: 1111 Timestamp: 2026-01-01 00:00:00Z`,
        error_codes: [7000215],
      });
    }
    const t = `eyJ0eXAiOiJKV1Qi.fake-entra-${this.tokens.size + 1}.sig`;
    this.tokens.add(t);
    json(res, 200, { token_type: 'Bearer', expires_in: this.entra.ttlS, ext_expires_in: this.entra.ttlS, access_token: t });
  }

  private embeddings(res: ServerResponse, body: any, model: string): void {
    const inputs: string[] = Array.isArray(body?.input) ? body.input : [body?.input ?? ''];
    const data = inputs.map((s, index) => ({ object: 'embedding', index, embedding: vector(String(s)) }));
    const tokens = inputs.reduce((n, s) => n + String(s).split(/\s+/).filter(Boolean).length, 0);
    json(res, 200, { object: 'list', data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } });
  }

  private async chat(res: ServerResponse, body: any, model: string, fault: Fault | undefined): Promise<void> {
    if (!Array.isArray(body?.messages)) return json(res, 400, { error: { code: null, message: "'messages' is a required property", param: 'messages', type: 'invalid_request_error' } });
    const filteredPrompt = fault?.mode === 'content_filter' && !body.stream;
    if (filteredPrompt) {
      return json(res, 400, {
        error: {
          message:
            "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
          type: null,
          param: 'prompt',
          code: 'content_filter',
          status: 400,
          innererror: { code: 'ResponsibleAIPolicyViolation', content_filter_result: { hate: { filtered: false, severity: 'safe' }, violence: { filtered: true, severity: 'high' } } },
        },
      });
    }
    const id = `chatcmpl-azure${Math.random().toString(36).slice(2, 10)}`;
    const created = Math.floor(Date.now() / 1000);
    const prompt = countWords(body.messages);
    const tool = Array.isArray(body.tools) && body.tools.length > 0 && body.tool_choice !== 'none' ? body.tools[0].function.name : undefined;
    const max = Number(body.max_completion_tokens ?? body.max_tokens);
    const pieces = Number.isInteger(max) && max > 0 ? REPLY_PIECES.slice(0, max) : REPLY_PIECES;
    const completion = tool ? 5 : pieces.length;
    const usage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
    const safe = { hate: { filtered: false, severity: 'safe' }, self_harm: { filtered: false, severity: 'safe' }, sexual: { filtered: false, severity: 'safe' }, violence: { filtered: false, severity: 'safe' } };
    const promptFilter = [{ prompt_index: 0, content_filter_results: safe }];
    const toolCall = tool ? { id: 'call_azure1', type: 'function', function: { name: tool, arguments: '{"city":"Paris"}' } } : undefined;
    const finish = tool ? 'tool_calls' : pieces.length < REPLY_PIECES.length ? 'length' : 'stop';
    if (!body.stream) {
      return json(res, 200, {
        id,
        object: 'chat.completion',
        created,
        model,
        prompt_filter_results: promptFilter,
        choices: [
          { index: 0, message: { role: 'assistant', content: tool ? null : pieces.join(''), ...(toolCall ? { tool_calls: [toolCall] } : {}), refusal: null }, finish_reason: finish, logprobs: null, content_filter_results: safe },
        ],
        usage,
        system_fingerprint: 'fp_azure',
      });
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'apim-request-id': 'fake' });
    const send = (o: unknown): boolean => !res.destroyed && res.write(`data: ${JSON.stringify(o)}\n\n`);
    const base = { id, object: 'chat.completion.chunk', created, model, system_fingerprint: 'fp_azure' };
    // Azure's first event: the prompt's filter results, no choices (and no id/model).
    send({ choices: [], created: 0, id: '', model: '', object: '', prompt_filter_results: promptFilter });
    const deltas: any[] = toolCall
      ? [
          { role: 'assistant', content: null, tool_calls: [{ index: 0, id: toolCall.id, type: 'function', function: { name: tool, arguments: '' } }] },
          { tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] },
          { tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] },
        ]
      : [{ role: 'assistant', content: '', refusal: null }, ...pieces.map((p) => ({ content: p }))];
    for (let i = 0; i < deltas.length; i++) {
      if (i === 2 && fault && fault.mode.endsWith('_mid_stream')) await sleep(30);
      if (i === 2 && fault?.mode === 'stall_mid_stream') return;
      if (i === 2 && fault?.mode === 'drop_mid_stream') {
        res.socket?.destroy();
        return;
      }
      if (i === 2 && fault?.mode === 'error_mid_stream') {
        send({ error: { code: 'InternalServerError', message: 'The server had an error processing your request.' } });
        res.end();
        return;
      }
      if (i === 3 && fault?.mode === 'content_filter') {
        // The answer trips the filter: the stream ends with finish_reason content_filter.
        send({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'content_filter', logprobs: null, content_filter_results: { ...safe, violence: { filtered: true, severity: 'high' } } }] });
        if (body.stream_options?.include_usage) send({ ...base, choices: [], usage: { ...usage, completion_tokens: 2 } });
        res.end('data: [DONE]\n\n');
        return;
      }
      send({ ...base, choices: [{ index: 0, delta: deltas[i], finish_reason: null, logprobs: null, content_filter_results: i ? safe : {} }] });
      if (this.chunkDelayMs) await sleep(this.chunkDelayMs);
      if (res.destroyed) return;
    }
    send({ ...base, choices: [{ index: 0, delta: {}, finish_reason: finish, logprobs: null, content_filter_results: {} }] });
    if (body.stream_options?.include_usage) send({ ...base, choices: [], usage });
    res.end('data: [DONE]\n\n');
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'apim-request-id': 'fake' });
  res.end(text);
}
