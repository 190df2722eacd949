import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { AppError } from '../errors.js';
import { sendJson } from '../http/respond.js';
import { ChunkFold } from '../providers/chunk-fold.js';

/**
 * The Ollama API as a second face of the gateway (`/ollama/api/*`), for tools that speak
 * Ollama (point them at `http://enclave:8080/ollama` with an API key as a bearer token).
 * A call is translated to the OpenAI shape at the door, runs the one gateway pipeline
 * (authorize, policy and content rules, limits, routing, fallback, usage record — the
 * same code as /v1), and its answer is translated back: NDJSON lines when streaming, one
 * JSON object otherwise, `{"error": "…"}` for errors, as Ollama answers.
 */

// Request bodies are client JSON: fields are checked where they are read.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>;

/** Ollama's error body: `{"error": "message"}` (what its clients read). */
export function ollamaError(e: AppError): { error: string } {
  return { error: e.message };
}

function requireObject(b: unknown): Json {
  if (!b || typeof b !== 'object' || Array.isArray(b)) throw new AppError(400, 'invalid_request', 'Send a JSON object body.');
  return b as Json;
}

function requireModel(b: Json): string {
  if (typeof b.model !== 'string' || !b.model) throw new AppError(400, 'invalid_request', 'model is required', { param: 'model' });
  return b.model;
}

/** Ollama `options` → OpenAI sampling fields (the ones both sides have). */
function sampling(options: unknown): Json {
  const o = (options && typeof options === 'object' ? options : {}) as Json;
  const out: Json = {};
  if (typeof o.temperature === 'number') out.temperature = o.temperature;
  if (typeof o.top_p === 'number') out.top_p = o.top_p;
  if (typeof o.num_predict === 'number' && o.num_predict > 0) out.max_tokens = o.num_predict;
  if (typeof o.seed === 'number') out.seed = o.seed;
  if (typeof o.stop === 'string' || Array.isArray(o.stop)) out.stop = o.stop;
  if (typeof o.frequency_penalty === 'number') out.frequency_penalty = o.frequency_penalty;
  if (typeof o.presence_penalty === 'number') out.presence_penalty = o.presence_penalty;
  return out;
}

/**
 * Ollama chat messages → OpenAI messages: images become image parts, tool-call arguments JSON
 * strings. Ollama's messages carry no tool-call ids, which OpenAI-compatible upstreams need
 * to pair a tool result with its call: calls get ids here, and each tool message takes the id
 * of the latest assistant message's first unanswered call of its `tool_name` (else the next one).
 */
function toOpenAIMessages(messages: unknown[]): Json[] {
  let open: { id: string; name: string }[] = [];
  return messages.map((raw, i) => {
    if (!raw || typeof raw !== 'object') throw new AppError(400, 'invalid_request', `messages[${i}] must be an object`, { param: `messages[${i}]` });
    const m = raw as Json;
    const role = m.role;
    if (!['system', 'user', 'assistant', 'tool'].includes(role)) {
      throw new AppError(400, 'invalid_request', `messages[${i}].role must be system, user, assistant or tool`, { param: `messages[${i}].role` });
    }
    const text = typeof m.content === 'string' ? m.content : '';
    if (role === 'tool') {
      const k = Math.max(0, open.findIndex((c) => c.name === m.tool_name));
      const id = typeof m.tool_call_id === 'string' ? m.tool_call_id : (open.splice(k, 1)[0]?.id ?? `call_${i}`);
      return { role: 'tool', content: text, tool_call_id: id };
    }
    const images: string[] = Array.isArray(m.images) ? m.images.filter((x: unknown) => typeof x === 'string') : [];
    const content =
      images.length && role === 'user'
        ? [...(text ? [{ type: 'text', text }] : []), ...images.map((b64) => ({ type: 'image_url', image_url: { url: `data:image/png;base64,${b64}` } }))]
        : text;
    const out: Json = { role, content };
    if (role === 'assistant') {
      open = [];
      if (Array.isArray(m.tool_calls) && m.tool_calls.length) {
        out.tool_calls = m.tool_calls.map((tc: Json, j: number) => {
          const call = { id: typeof tc.id === 'string' ? tc.id : `call_${i}_${j}`, name: String(tc.function?.name ?? '') };
          open.push(call);
          const args = tc.function?.arguments;
          return { id: call.id, type: 'function', function: { name: call.name, arguments: typeof args === 'string' ? args : JSON.stringify(args ?? {}) } };
        });
      }
    }
    return out;
  });
}

/** `POST /api/chat` body → the OpenAI chat request the gateway runs (stream defaults to true, as in Ollama). */
export function chatRequest(body: unknown): Json {
  const b = requireObject(body);
  if (!Array.isArray(b.messages)) throw new AppError(400, 'invalid_request', 'messages must be an array', { param: 'messages' });
  return openAIChat(b, toOpenAIMessages(b.messages));
}

/** `POST /api/generate` body (prompt, system, images) → the same chat request: one user turn. */
export function generateRequest(body: unknown): Json {
  const b = requireObject(body);
  if (typeof b.prompt !== 'string') throw new AppError(400, 'invalid_request', 'prompt must be a string', { param: 'prompt' });
  const turns = [...(typeof b.system === 'string' && b.system ? [{ role: 'system', content: b.system }] : []), { role: 'user', content: b.prompt, images: b.images }];
  return openAIChat(b, toOpenAIMessages(turns));
}

function openAIChat(b: Json, messages: Json[]): Json {
  const model = requireModel(b);
  const stream = b.stream !== false;
  const out: Json = { model, messages, stream, ...sampling(b.options) };
  if (stream) out.stream_options = { include_usage: true };
  if (Array.isArray(b.tools) && b.tools.length) out.tools = b.tools;
  if (b.format === 'json') out.response_format = { type: 'json_object' };
  else if (b.format && typeof b.format === 'object') out.response_format = { type: 'json_schema', json_schema: { name: 'response', schema: b.format } };
  return out;
}

/** `POST /api/embed` body → the OpenAI embeddings request. */
export function embedRequest(body: unknown): Json {
  const b = requireObject(body);
  const model = requireModel(b);
  const input = b.input;
  if (!(typeof input === 'string' || (Array.isArray(input) && input.every((x) => typeof x === 'string')))) {
    throw new AppError(400, 'invalid_request', 'input must be a string or an array of strings', { param: 'input' });
  }
  return { model, input };
}

const DONE_REASON: Record<string, string> = { stop: 'stop', length: 'length', tool_calls: 'stop', content_filter: 'stop' };

function ollamaToolCalls(calls: readonly { function: { name: string; arguments: string } }[] | undefined): Json[] | undefined {
  if (!calls?.length) return undefined;
  return calls.map((c) => {
    let args: unknown;
    try {
      args = JSON.parse(c.function.arguments || '{}');
    } catch {
      args = {};
    }
    return { function: { name: c.function.name, arguments: args } };
  });
}

/** `GET /api/tags` from the models the caller may use. */
export function tagsBody(models: readonly { id: string }[]): Json {
  return {
    models: models.map((m) => ({
      name: m.id,
      model: m.id,
      modified_at: new Date(0).toISOString(),
      size: 0,
      digest: '',
      details: { format: '', family: '', families: null, parameter_size: '', quantization_level: '' },
    })),
  };
}

/**
 * Stands in for the client's response while the gateway service answers in OpenAI's shape,
 * and writes Ollama's shape to the real response: the JSON of a whole answer translated
 * when it ends; SSE events turned into NDJSON lines as they come (tool calls, which OpenAI
 * streams in pieces, are sent whole with the last line, as Ollama does). Only what the
 * service uses of a ServerResponse is here; events ('close', 'drain') are the real
 * response's.
 */
export class OllamaResponse extends EventEmitter {
  statusCode = 200;
  private readonly fold = new ChunkFold();
  private usage: { prompt_tokens?: number; completion_tokens?: number } | undefined;
  private readonly started = Date.now();
  private sse = false;

  constructor(
    private readonly out: ServerResponse,
    private readonly model: string,
    private readonly kind: 'chat' | 'generate' | 'embed',
  ) {
    super();
  }

  get headersSent(): boolean {
    return this.out.headersSent;
  }
  get writableEnded(): boolean {
    return this.out.writableEnded;
  }
  get writableFinished(): boolean {
    return this.out.writableFinished;
  }
  get writableCorked(): number {
    return this.out.writableCorked;
  }
  get destroyed(): boolean {
    return this.out.destroyed;
  }
  override on(event: string, fn: (...a: unknown[]) => void): this {
    this.out.on(event, fn);
    return this;
  }
  override once(event: string, fn: (...a: unknown[]) => void): this {
    this.out.once(event, fn);
    return this;
  }
  override off(event: string, fn: (...a: unknown[]) => void): this {
    this.out.off(event, fn);
    return this;
  }
  cork(): void {
    this.out.cork();
  }
  uncork(): void {
    this.out.uncork();
  }
  flushHeaders(): void {
    this.out.flushHeaders();
  }

  setHeader(k: string, v: string | number | readonly string[]): this {
    const key = k.toLowerCase();
    // Content type and length are the translated answer's, set when it is written.
    if (key !== 'content-type' && key !== 'content-length') this.out.setHeader(k, v);
    return this;
  }

  /** Only streaming answers write a head of their own (SSE): it becomes NDJSON's. */
  writeHead(code: number): this {
    this.sse = true;
    this.out.writeHead(code, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
    return this;
  }

  write(chunk: string): boolean {
    let ok = true;
    for (const data of events(chunk)) ok = this.relay(data) && ok;
    return ok;
  }

  end(chunk?: string): this {
    if (!this.sse) {
      this.answer(chunk ?? '');
      return this;
    }
    for (const data of events(chunk ?? '')) this.relay(data);
    if (!this.out.writableEnded) this.out.end();
    return this;
  }

  /** One SSE event of a streamed chat: a chunk, [DONE], or an error event. */
  private relay(data: string): boolean {
    if (data === '[DONE]') return this.line(this.last());
    let j: Json;
    try {
      j = JSON.parse(data) as Json;
    } catch {
      return true;
    }
    if (j.error) return this.line({ error: String(j.error.message ?? 'error') });
    if (j.usage) this.usage = j.usage;
    this.fold.add(j as never);
    const text = (j.choices ?? []).map((c: Json) => (typeof c.delta?.content === 'string' ? c.delta.content : '')).join('');
    if (!text) return true;
    return this.line({ model: this.model, created_at: new Date().toISOString(), ...this.text(text), done: false });
  }

  private line(o: Json): boolean {
    return this.out.write(`${JSON.stringify(o)}\n`);
  }

  /** The answer's text as /api/chat (`message`) or /api/generate (`response`) carries it. */
  private text(content: string, calls?: Json[]): Json {
    return this.kind === 'generate' ? { response: content } : { message: { role: 'assistant', content, ...(calls ? { tool_calls: calls } : {}) } };
  }

  /** The final line of a stream, from the folded chunks and the usage chunk. */
  private last(): Json {
    const c = this.fold.choices[0];
    return this.done('', c?.toolCalls, c?.finishReason, this.usage);
  }

  /** A finished answer (a stream's last line, or a whole answer): done reason, token counts, tool calls. */
  private done(content: string, toolCalls: Parameters<typeof ollamaToolCalls>[0], finishReason: string | null | undefined, usage: Json | undefined): Json {
    return {
      model: this.model,
      created_at: new Date().toISOString(),
      ...this.text(content, ollamaToolCalls(toolCalls)),
      done: true,
      done_reason: DONE_REASON[finishReason ?? 'stop'] ?? 'stop',
      total_duration: (Date.now() - this.started) * 1e6,
      prompt_eval_count: usage?.prompt_tokens ?? 0,
      eval_count: usage?.completion_tokens ?? 0,
    };
  }

  /** A whole (non-streamed) answer or an error, as one JSON object. */
  private answer(text: string): void {
    let j: Json = {};
    try {
      j = text ? (JSON.parse(text) as Json) : {};
    } catch {
      /* not JSON: answered as an error below */
    }
    let body: Json;
    if (this.statusCode >= 400 || j.error) body = { error: String(j.error?.message ?? 'error') };
    else if (this.kind === 'embed') {
      body = { model: this.model, embeddings: (j.data ?? []).map((d: Json) => d.embedding), total_duration: (Date.now() - this.started) * 1e6, prompt_eval_count: j.usage?.prompt_tokens ?? 0 };
    } else {
      const c = j.choices?.[0] ?? {};
      body = this.done(typeof c.message?.content === 'string' ? c.message.content : '', c.message?.tool_calls, c.finish_reason, j.usage);
    }
    sendJson(this.out, this.statusCode, body);
  }
}

/** The `data:` payloads of the SSE events in one write (the service writes whole events). */
function events(chunk: string): string[] {
  const out: string[] = [];
  for (const block of chunk.split('\n\n')) {
    if (block.startsWith('data: ')) out.push(block.slice(6));
  }
  return out;
}
