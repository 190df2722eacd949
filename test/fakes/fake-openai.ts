import type { IncomingMessage, ServerResponse } from 'node:http';
import { countWords, FakeUpstream, REPLY_PIECES, sleep, type Fault, type SeenRequest } from './common.js';

/**
 * A fake OpenAI-compatible server speaking the real wire protocol: `POST /v1/chat/completions`
 * (JSON, or SSE `data: {chunk}` lines ending with `data: [DONE]`, usage chunk when
 * `stream_options.include_usage`), tool calls (when the request offers tools), `POST
 * /v1/embeddings`, `GET /v1/models`, errors in the `{"error":{…}}` shape. Faults: see common.ts.
 */
export class FakeOpenAI extends FakeUpstream {
  models = ['gpt-fake', 'text-embedding-fake'];
  /**
   * Embeddings that mean something (knowledge tests): a hashed bag of words (wordVector), so
   * texts sharing words are near. Off: the small character-sum vector other tests pin.
   */
  wordEmbeddings = false;
  /** Required bearer token; undefined = any. */
  apiKey: string | undefined;
  /**
   * A streamed chat answer of `bytes` bytes of text ('~'), in pieces of `piece` bytes, written as
   * fast as the connection takes them (the writer waits for 'drain' like a real server): for
   * backpressure tests, with what got out so far in floodSent and floodWaiting.
   */
  flood: { readonly bytes: number; readonly piece: number } | undefined;
  /** Text bytes of the flood written so far. */
  floodSent = 0;
  /** The flood's writer is waiting for the connection to drain. */
  floodWaiting = false;

  override reset(): void {
    super.reset();
    this.flood = undefined;
    this.floodSent = 0;
    this.floodWaiting = false;
  }

  protected async handle(req: IncomingMessage, res: ServerResponse, seen: SeenRequest, fault: Fault | undefined): Promise<void> {
    if (this.apiKey !== undefined && req.headers.authorization !== `Bearer ${this.apiKey}`) {
      return json(res, 401, { error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
    }
    if (fault?.mode === 'rate_limit') {
      res.setHeader('retry-after', String(fault.retryAfterS ?? 0));
      return json(res, 429, { error: { message: 'Rate limit reached for requests', type: 'requests', param: null, code: 'rate_limit_exceeded' } });
    }
    if (fault?.mode === 'server_error') {
      return json(res, 500, { error: { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: null } });
    }
    if (fault?.mode === 'malformed') {
      res.writeHead(200, { 'content-type': seen.body?.stream ? 'text/event-stream' : 'application/json' });
      res.end(seen.body?.stream ? 'data: {"id": "x", "choices": [\n\n' : '{"id": "chatcmpl-x", "choices": [');
      return;
    }
    if (seen.method === 'GET' && seen.path === '/v1/models') {
      return json(res, 200, { object: 'list', data: this.models.map((id) => ({ id, object: 'model', created: 1700000000, owned_by: 'fake' })) });
    }
    if (seen.method === 'POST' && seen.path === '/v1/embeddings') return this.embeddings(res, seen.body);
    if (seen.method === 'POST' && seen.path === '/v1/chat/completions') return this.chat(res, seen.body, fault);
    return json(res, 404, { error: { message: `Unknown path ${seen.path}`, type: 'invalid_request_error', param: null, code: 'unknown_url' } });
  }

  private embeddings(res: ServerResponse, body: any): void {
    const inputs: string[] = Array.isArray(body?.input) ? body.input : [body?.input ?? ''];
    const b64 = body?.encoding_format === 'base64';
    const data = inputs.map((s, index) => {
      const v = this.wordEmbeddings ? wordVector(String(s)) : vector(String(s));
      return { object: 'embedding', index, embedding: b64 ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v };
    });
    const tokens = inputs.reduce((n, s) => n + String(s).split(/\s+/).filter(Boolean).length, 0);
    json(res, 200, { object: 'list', data, model: body?.model, usage: { prompt_tokens: tokens, total_tokens: tokens } });
  }

  private async chat(res: ServerResponse, body: any, fault: Fault | undefined): Promise<void> {
    if (!body?.model || !Array.isArray(body?.messages)) {
      return json(res, 400, { error: { message: "'messages' is a required property", type: 'invalid_request_error', param: 'messages', code: null } });
    }
    const id = `chatcmpl-fake${Math.random().toString(36).slice(2, 10)}`;
    const created = Math.floor(Date.now() / 1000);
    const prompt = countWords(body.messages);
    const tool = Array.isArray(body.tools) && body.tools.length > 0 && body.tool_choice !== 'none' ? body.tools[0].function.name : undefined;
    // As the real API: `n` choices, each at most max_tokens long, all counted in completion_tokens.
    const n = Number.isInteger(body.n) && body.n > 0 ? body.n : 1;
    const max = Number(body.max_completion_tokens ?? body.max_tokens);
    const pieces = Number.isInteger(max) && max > 0 ? REPLY_PIECES.slice(0, max) : REPLY_PIECES;
    const perChoice = tool ? 5 : pieces.length;
    const usage = { prompt_tokens: prompt, completion_tokens: perChoice * n, total_tokens: prompt + perChoice * n };
    const toolCall = tool ? { id: 'call_fake1', type: 'function', function: { name: tool, arguments: '{"city":"Paris"}' } } : undefined;
    if (!body.stream) {
      return json(res, 200, {
        id,
        object: 'chat.completion',
        created,
        model: body.model,
        choices: Array.from({ length: n }, (_, index) => ({
          index,
          message: { role: 'assistant', content: tool ? null : pieces.join(''), ...(toolCall ? { tool_calls: [toolCall] } : {}), refusal: null },
          logprobs: null,
          finish_reason: tool ? 'tool_calls' : pieces.length < REPLY_PIECES.length ? 'length' : 'stop',
        })),
        usage,
        system_fingerprint: 'fp_fake',
      });
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const base = { id, object: 'chat.completion.chunk', created, model: body.model, system_fingerprint: 'fp_fake' };
    const send = (o: unknown): boolean => !res.destroyed && res.write(`data: ${JSON.stringify(o)}\n\n`);
    const includeUsage = body.stream_options?.include_usage === true;
    if (this.flood) return this.floodStream(res, base, this.flood, prompt, includeUsage);
    const deltas: any[] = tool
      ? [
          { role: 'assistant', content: null, tool_calls: [{ index: 0, id: toolCall!.id, type: 'function', function: { name: tool, arguments: '' } }] },
          { tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] },
          { tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] },
        ]
      : [{ role: 'assistant', content: '', refusal: null }, ...pieces.map((p) => ({ content: p }))];
    for (let i = 0; i < deltas.length; i++) {
      // Let the first chunks reach the client before the fault (as a real mid-stream failure).
      if (i === 2 && fault && fault.mode.endsWith('_mid_stream')) await sleep(30);
      if (i === 2 && fault?.mode === 'stall_mid_stream') return; // keep the socket open, send nothing more
      if (i === 2 && fault?.mode === 'drop_mid_stream') {
        res.socket?.destroy();
        return;
      }
      if (i === 2 && fault?.mode === 'error_mid_stream') {
        res.write(`event: error\ndata: ${JSON.stringify({ error: { message: 'The model crashed', type: 'server_error', param: null, code: 'model_error' } })}\n\n`);
        res.end();
        return;
      }
      send({ ...base, choices: [{ index: 0, delta: deltas[i], logprobs: null, finish_reason: null }], ...(includeUsage ? { usage: null } : {}) });
      if (this.chunkDelayMs) await sleep(this.chunkDelayMs);
      if (res.destroyed) return;
    }
    send({ ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: tool ? 'tool_calls' : 'stop' }], ...(includeUsage ? { usage: null } : {}) });
    if (includeUsage) send({ ...base, choices: [], usage });
    res.end('data: [DONE]\n\n');
  }

  private async floodStream(res: ServerResponse, base: object, flood: { bytes: number; piece: number }, prompt: number, includeUsage: boolean): Promise<void> {
    const text = '~'.repeat(flood.piece);
    this.floodSent = 0;
    while (this.floodSent < flood.bytes) {
      if (res.destroyed) return;
      const ok = res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { content: text }, logprobs: null, finish_reason: null }] })}\n\n`);
      this.floodSent += text.length;
      if (!ok) {
        this.floodWaiting = true;
        await new Promise<void>((resolve) => {
          const go = (): void => {
            res.off('drain', go);
            res.off('close', go);
            resolve();
          };
          res.once('drain', go);
          res.once('close', go);
        });
        this.floodWaiting = false;
      }
    }
    const completion = Math.ceil(flood.bytes / 4);
    res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }] })}\n\n`);
    if (includeUsage) res.write(`data: ${JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion } })}\n\n`);
    res.end('data: [DONE]\n\n');
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** A deterministic small vector for a text. */
export function vector(s: string, dims = 8): number[] {
  const v = new Array<number>(dims).fill(0);
  for (let i = 0; i < s.length; i++) v[i % dims]! += s.charCodeAt(i) / 1000;
  return v.map((x) => Math.round(x * 1e6) / 1e6);
}

/**
 * A deterministic embedding of the words of a text: each lower-cased word adds 1 to the
 * dimension its FNV-1a hash picks (64 dims). Texts that share words have a high cosine, so
 * vector search behaves like a (weak) real one, reproducibly.
 */
export function wordVector(s: string, dims = 64): number[] {
  const v = new Array<number>(dims).fill(0);
  for (const w of s.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []) {
    let h = 0x811c9dc5;
    for (let i = 0; i < w.length; i++) h = Math.imul(h ^ w.charCodeAt(i), 0x01000193) >>> 0;
    v[h % dims]! += 1;
  }
  return v;
}
