import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { RequestContext } from '../../context.js';
import { AppError } from '../../errors.js';
import type { FastRoute } from '../../http/fast-path.js';
import { sendJson } from '../../http/respond.js';
import type { ChatCompletion } from '../../providers/index.js';
import { messageTexts } from '../../routing/content.js';
import { estimateTokens } from '../call.js';
import type { GatewayService } from '../service.js';
import { wholeDeltas, type Delta } from './deltas.js';
import { badField as bad, encodeStream, EventWriter, fromRequest, objectBody, writeFacts } from './http.js';
import { writeError } from './openai-chat.js';

/**
 * The Anthropic Messages face (`POST /v1/messages`, `/v1/messages/count_tokens`), for Claude
 * Code and the Anthropic SDKs: the key as `x-api-key` or a bearer token, `anthropic-version`
 * accepted. Decoded into a Chat Completions call at the door (system, text/image/tool_use/
 * tool_result blocks, tools, tool_choice, max_tokens, stop_sequences, sampling), run through
 * the one pipeline, encoded as a Message or its SSE event sequence (message_start, ping,
 * content_block_start/delta/stop, message_delta, message_stop; `error` events). Errors in
 * Anthropic's `{type:"error", error:{type, message}}` shape; an overloaded upstream is 529.
 */
// Client JSON: checked where it is read.
type Json = Record<string, any>;

const ERROR_TYPE: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  529: 'overloaded_error',
};

/** Anthropic's status for one of ours: an unavailable or busy upstream is "overloaded" (529). */
function statusOf(e: AppError): number {
  return e.status === 503 ? 529 : e.status;
}

export function anthropicError(e: AppError): Json {
  const s = statusOf(e);
  return { type: 'error', error: { type: ERROR_TYPE[s] ?? (s >= 500 ? 'api_error' : 'invalid_request_error'), message: e.message } };
}

function textOf(c: unknown): string {
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) return c.map((b: Json) => (b?.type === 'text' ? String(b.text ?? '') : '')).join('');
  return '';
}

function image(b: Json, param: string): Json {
  const s = b.source;
  if (s?.type === 'base64' && typeof s.data === 'string') return { type: 'image_url', image_url: { url: `data:${s.media_type ?? 'image/png'};base64,${s.data}` } };
  if (s?.type === 'url' && typeof s.url === 'string') return { type: 'image_url', image_url: { url: s.url } };
  throw bad('image blocks need a base64 or url source.', `${param}.source`);
}

/** Anthropic messages (+ system) → chat messages: tool results become tool messages, tool uses tool calls. */
export function toChatMessages(system: unknown, messages: unknown): Json[] {
  if (!Array.isArray(messages) || !messages.length) throw bad('messages: at least one message is required.', 'messages');
  const out: Json[] = [];
  const sys = textOf(system);
  if (sys) out.push({ role: 'system', content: sys });
  messages.forEach((m: Json, i) => {
    const param = `messages.${i}`;
    if (m?.role !== 'user' && m?.role !== 'assistant') throw bad(`${param}.role: must be user or assistant.`, `${param}.role`);
    if (typeof m.content === 'string') return void out.push({ role: m.role, content: m.content });
    if (!Array.isArray(m.content)) throw bad(`${param}.content: must be a string or a list of blocks.`, `${param}.content`);
    const parts: Json[] = [];
    const calls: Json[] = [];
    m.content.forEach((b: Json, j: number) => {
      const bp = `${param}.content.${j}`;
      switch (b?.type) {
        case 'text':
          parts.push({ type: 'text', text: String(b.text ?? '') });
          return;
        case 'image':
          parts.push(image(b, bp));
          return;
        case 'tool_use':
          calls.push({ id: String(b.id ?? ''), type: 'function', function: { name: String(b.name ?? ''), arguments: JSON.stringify(b.input ?? {}) } });
          return;
        case 'tool_result':
          out.push({ role: 'tool', tool_call_id: String(b.tool_use_id ?? ''), content: (b.is_error ? 'Error: ' : '') + textOf(b.content) });
          return;
        case 'thinking':
        case 'redacted_thinking':
          return; // the model's own reasoning: not sent back upstream
        default:
          throw bad(`${bp}.type: unsupported block type ${String(b?.type)}.`, `${bp}.type`);
      }
    });
    if (m.role === 'assistant') {
      const text = parts.map((p) => p.text ?? '').join('');
      if (text || calls.length) out.push({ role: 'assistant', content: text || null, ...(calls.length ? { tool_calls: calls } : {}) });
    } else if (parts.length) out.push({ role: 'user', content: parts.every((p) => p.type === 'text') ? parts.map((p) => p.text).join('') : parts });
  });
  return out;
}

export function toChat(b: Json): Json {
  if (typeof b.model !== 'string' || !b.model) throw bad('model: field required.', 'model');
  if (!Number.isInteger(b.max_tokens) || b.max_tokens < 1) throw bad('max_tokens: field required (a positive integer).', 'max_tokens');
  const out: Json = { model: b.model, messages: toChatMessages(b.system, b.messages), max_tokens: b.max_tokens, stream: b.stream === true };
  if (out.stream) out.stream_options = { include_usage: true };
  if (typeof b.temperature === 'number') out.temperature = b.temperature;
  if (typeof b.top_p === 'number') out.top_p = b.top_p;
  if (Array.isArray(b.stop_sequences) && b.stop_sequences.length) out.stop = b.stop_sequences;
  if (Array.isArray(b.tools) && b.tools.length) {
    out.tools = b.tools.map((t: Json, i: number) => {
      if (typeof t?.name !== 'string') throw bad(`tools.${i}.name: field required.`, `tools.${i}.name`);
      return { type: 'function', function: { name: t.name, ...(t.description ? { description: t.description } : {}), parameters: t.input_schema ?? { type: 'object', properties: {} } } };
    });
  }
  const tc = b.tool_choice;
  if (tc?.type === 'auto') out.tool_choice = 'auto';
  else if (tc?.type === 'any') out.tool_choice = 'required';
  else if (tc?.type === 'none') out.tool_choice = 'none';
  else if (tc?.type === 'tool') out.tool_choice = { type: 'function', function: { name: tc.name } };
  if (tc?.disable_parallel_tool_use === true) out.parallel_tool_calls = false;
  return out;
}

const STOP: Record<string, string> = { stop: 'end_turn', length: 'max_tokens', tool_calls: 'tool_use', function_call: 'tool_use', content_filter: 'refusal' };

type Emit = (type: string, payload: Json) => void;

/** Builds the Message from normalized deltas, emitting the SSE events as it goes. */
class MessageBuilder {
  readonly message: Json;
  private open: { index: number; kind: 'text' | 'tool'; tool?: number } | undefined;
  private readonly args = new Map<number, { block: Json; json: string }>();

  constructor(
    model: string,
    private readonly emit: Emit,
  ) {
    this.message = { id: `msg_${randomBytes(12).toString('hex')}`, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 0, output_tokens: 0 } };
  }

  start(): void {
    this.emit('message_start', { message: { ...this.message, content: [] } });
    this.emit('ping', {});
  }

  private close(): void {
    if (!this.open) return;
    this.emit('content_block_stop', { index: this.open.index });
    this.open = undefined;
  }

  add(d: Delta): void {
    const c = this.message.content as Json[];
    switch (d.t) {
      case 'text':
        if (this.open?.kind !== 'text') {
          this.close();
          const index = c.push({ type: 'text', text: '' }) - 1;
          this.open = { index, kind: 'text' };
          this.emit('content_block_start', { index, content_block: { type: 'text', text: '' } });
        }
        c[this.open.index]!.text += d.text;
        this.emit('content_block_delta', { index: this.open.index, delta: { type: 'text_delta', text: d.text } });
        return;
      case 'tool_start': {
        this.close();
        const block = { type: 'tool_use', id: d.id, name: d.name, input: {} };
        const index = c.push(block) - 1;
        this.open = { index, kind: 'tool', tool: d.index };
        this.args.set(d.index, { block, json: '' });
        this.emit('content_block_start', { index, content_block: { ...block } });
        return;
      }
      case 'tool_args': {
        const a = this.args.get(d.index);
        if (!a) return;
        a.json += d.args;
        const index = c.indexOf(a.block);
        this.emit('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: d.args } });
        return;
      }
      case 'finish':
        this.message.stop_reason = STOP[d.reason] ?? 'end_turn';
        return;
      case 'usage':
        this.message.usage = { input_tokens: d.input, output_tokens: d.output };
        return;
      case 'reasoning':
        return;
    }
  }

  end(): Json {
    this.close();
    for (const a of this.args.values()) {
      try {
        a.block.input = a.json ? JSON.parse(a.json) : {};
      } catch {
        a.block.input = {};
      }
    }
    this.message.stop_reason ??= 'end_turn';
    this.emit('message_delta', { delta: { stop_reason: this.message.stop_reason, stop_sequence: null }, usage: this.message.usage });
    this.emit('message_stop', {});
    return this.message;
  }
}

export async function writeMessages(svc: GatewayService, ctx: RequestContext, req: IncomingMessage, res: ServerResponse, b: Json): Promise<void> {
  const chat = toChat(b);
  const r = await svc.run(ctx, { api: 'messages', endpoint: 'chat', body: chat, ...fromRequest(req, res) });
  const fail = (e: AppError): void => {
    if (res.destroyed || res.headersSent) return;
    writeError(res, r.facts, new AppError(statusOf(e), e.code, e.message, { ...(e.headers ? { headers: { ...e.headers } } : {}) }), anthropicError);
  };
  if (r.kind === 'error') return fail(r.error);
  if (r.kind === 'whole') {
    const m = new MessageBuilder(String(b.model), () => {});
    for (const d of wholeDeltas(r.body as ChatCompletion)) m.add(d);
    writeFacts(res, r.facts);
    return sendJson(res, 200, m.end());
  }
  const w = new EventWriter(res);
  const m = new MessageBuilder(String(b.model), (type, payload) => w.event(type, payload));
  const err = await encodeStream(res, r.facts, r.chunks, w, {
    start: () => m.start(),
    add: (d) => m.add(d),
    end: () => m.end(),
    failed: (e) => w.event('error', anthropicError(e)),
  });
  if (err) fail(err);
}

export function messagesRoutes(svc: GatewayService): FastRoute[] {
  return [
    {
      method: 'POST',
      template: '/v1/messages',
      pattern: /^\/v1\/messages\/?$/i,
      body: true,
      errorBody: anthropicError,
      handle: (ctx, req, res, body) => writeMessages(svc, ctx, req, res, objectBody(body)),
    },
    {
      method: 'POST',
      template: '/v1/messages/count_tokens',
      pattern: /^\/v1\/messages\/count_tokens\/?$/i,
      body: true,
      errorBody: anthropicError,
      handle: async (ctx, _req, res, body) => {
        const b = objectBody(body);
        if (typeof b.model !== 'string' || !b.model) throw bad('model: field required.', 'model');
        await svc.getModel(ctx, b.model); // 404 for a model the caller may not use
        const messages = toChatMessages(b.system, b.messages);
        // An estimate (about four characters per token), as the gateway's admission counts: no upstream call.
        const tools = Array.isArray(b.tools) ? JSON.stringify(b.tools) : '';
        sendJson(res, 200, { input_tokens: estimateTokens([...messageTexts(messages), tools]) });
      },
    },
  ];
}
