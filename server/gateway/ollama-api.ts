import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestContext } from '../context.js';
import { AppError, toAppError } from '../errors.js';
import { sendJson } from '../http/respond.js';
import { ChunkFold } from '../providers/chunk-fold.js';
import { drain, fromRequest, startStream, writeFacts, writePiece } from './faces/http.js';
import { writeError } from './faces/openai-chat.js';
import type { GatewayService } from './service.js';

/**
 * The Ollama API as a second face of the gateway (`/ollama/api/*`), for tools that speak
 * Ollama (point them at `http://enclave:8080/ollama` with an API key as a bearer token).
 * A call is translated to the OpenAI shape at the door, runs the one gateway pipeline
 * (authorize, policy and content rules, limits, routing, fallback, usage record — the
 * same code as /v1), and its answer is translated back: NDJSON lines when streaming, one
 * JSON object otherwise, `{"error": "…"}` for errors, as Ollama answers.
 */

// Request bodies are client JSON: fields are checked where they are read.
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
 * Encodes the pipeline's result in Ollama's shapes: one JSON object for a whole answer (or
 * `{error}`), NDJSON lines while streaming — text as it comes; tool calls, which OpenAI
 * streams in pieces, whole in the last line (with done_reason and token counts), as Ollama
 * sends them; a failure mid-stream as an `{error}` line.
 */
export async function writeOllama(svc: GatewayService, ctx: RequestContext, req: IncomingMessage, res: ServerResponse, body: Json, kind: 'chat' | 'generate' | 'embed'): Promise<void> {
  const started = Date.now();
  const model = String(body.model);
  const r = await svc.run(ctx, { api: 'ollama', endpoint: kind === 'embed' ? 'embeddings' : 'chat', body, ...fromRequest(req, res) });
  if (r.kind === 'error') return writeError(res, r.facts, r.error, ollamaError);
  const shape = { model, kind, started };
  if (r.kind === 'whole') {
    writeFacts(res, r.facts);
    const j = r.body as Json;
    if (kind === 'embed') {
      return sendJson(res, 200, { model, embeddings: (j.data ?? []).map((d: Json) => d.embedding), total_duration: (Date.now() - started) * 1e6, prompt_eval_count: j.usage?.prompt_tokens ?? 0 });
    }
    const c = j.choices?.[0] ?? {};
    return sendJson(res, 200, doneLine(shape, typeof c.message?.content === 'string' ? c.message.content : '', c.message?.tool_calls, c.finish_reason, j.usage));
  }
  const fold = new ChunkFold();
  let usage: Json | undefined;
  let open = false;
  const line = (o: Json): boolean => writePiece(res, `${JSON.stringify(o)}\n`);
  try {
    for await (const chunk of r.chunks) {
      if (res.destroyed) break;
      if (!open) {
        startStream(res, r.facts, NDJSON);
        open = true;
      }
      if (chunk.usage) usage = chunk.usage;
      fold.add(chunk);
      let text = '';
      for (const ch of chunk.choices ?? []) if (typeof ch.delta?.content === 'string') text += ch.delta.content;
      if (!text) continue;
      if (!line({ model, created_at: new Date().toISOString(), ...textOf(kind, text), done: false })) await drain(res);
    }
    if (res.destroyed) return;
    if (!open) startStream(res, r.facts, NDJSON);
    const c = fold.choices[0];
    line(doneLine(shape, '', c?.toolCalls, c?.finishReason, usage));
    res.end();
  } catch (e) {
    const err = toAppError(e);
    if (!open) return writeError(res, r.facts, err, ollamaError);
    if (!res.writableEnded) res.end(`${JSON.stringify(ollamaError(err))}\n`);
  }
}

const NDJSON = 'application/x-ndjson';

/** The answer's text as /api/chat (`message`) or /api/generate (`response`) carries it. */
function textOf(kind: 'chat' | 'generate' | 'embed', content: string, calls?: Json[]): Json {
  return kind === 'generate' ? { response: content } : { message: { role: 'assistant', content, ...(calls ? { tool_calls: calls } : {}) } };
}

/** A finished answer (a stream's last line, or a whole answer): done reason, token counts, tool calls. */
function doneLine(
  s: { model: string; kind: 'chat' | 'generate' | 'embed'; started: number },
  content: string,
  toolCalls: Parameters<typeof ollamaToolCalls>[0],
  finishReason: string | null | undefined,
  usage: Json | undefined,
): Json {
  return {
    model: s.model,
    created_at: new Date().toISOString(),
    ...textOf(s.kind, content, ollamaToolCalls(toolCalls)),
    done: true,
    done_reason: DONE_REASON[finishReason ?? 'stop'] ?? 'stop',
    total_duration: (Date.now() - s.started) * 1e6,
    prompt_eval_count: usage?.prompt_tokens ?? 0,
    eval_count: usage?.completion_tokens ?? 0,
  };
}
