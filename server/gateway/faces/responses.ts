import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { Classification, RequestContext } from '../../context.js';
import type { FastRoute } from '../../http/fast-path.js';
import { sendJson } from '../../http/respond.js';
import type { ChatCompletion } from '../../providers/index.js';
import type { GatewayService } from '../service.js';
import { wholeDeltas, type Delta } from './deltas.js';
import { badField as bad, encodeStream, EventWriter, fromRequest, objectBody, writeFacts } from './http.js';
import { writeError } from './openai-chat.js';
import type { ResponseStore } from './response-store.js';
import type { FileSearchHook, FileSearchPlan } from '../../knowledge/file-search.js';

/**
 * The OpenAI Responses face (`POST /v1/responses`, `GET`/`DELETE /v1/responses/{id}`):
 * decoded into a Chat Completions call at the door (input items, instructions, function
 * tools, tool_choice, text.format, reasoning, max_output_tokens, sampling, the stored
 * conversation of `previous_response_id`), run through the one pipeline, and encoded back as
 * a Response object or its typed SSE events (response.created … response.completed).
 */
// Client JSON: checked where it is read.
type Json = Record<string, any>;

const rid = (p: string): string => `${p}_${randomBytes(12).toString('hex')}`;

/** Responses input content → chat content (text parts and images). */
function content(c: unknown, param: string): string | Json[] {
  if (typeof c === 'string') return c;
  if (!Array.isArray(c)) throw bad('content must be a string or an array of parts.', param);
  return c.map((p: Json, i) => {
    if (p?.type === 'input_text' || p?.type === 'output_text' || p?.type === 'text') return { type: 'text', text: String(p.text ?? '') };
    if (p?.type === 'input_image') {
      const url = typeof p.image_url === 'string' ? p.image_url : undefined;
      if (!url) throw bad('input_image needs an image_url (file_id is not supported).', `${param}[${i}].image_url`);
      return { type: 'image_url', image_url: { url, ...(p.detail ? { detail: p.detail } : {}) } };
    }
    throw bad(`Unsupported content part type ${String(p?.type)}.`, `${param}[${i}].type`);
  });
}

/** Responses input (a string or items) → chat messages. */
export function inputMessages(input: unknown): Json[] {
  if (typeof input === 'string') return [{ role: 'user', content: input }];
  if (!Array.isArray(input)) throw bad('input must be a string or an array of items.', 'input');
  const out: Json[] = [];
  input.forEach((it: Json, i) => {
    const param = `input[${i}]`;
    if (!it || typeof it !== 'object') throw bad('Each input item must be an object.', param);
    const type = it.type ?? 'message';
    if (type === 'message') {
      const role = it.role === 'developer' ? 'system' : it.role;
      if (!['user', 'assistant', 'system'].includes(role)) throw bad('role must be user, assistant, system or developer.', `${param}.role`);
      out.push({ role, content: content(it.content, `${param}.content`) });
    } else if (type === 'function_call') {
      const call = { id: String(it.call_id ?? ''), type: 'function', function: { name: String(it.name ?? ''), arguments: String(it.arguments ?? '') } };
      const last = out.at(-1);
      if (last?.role === 'assistant' && Array.isArray(last.tool_calls)) last.tool_calls.push(call);
      else out.push({ role: 'assistant', content: null, tool_calls: [call] });
    } else if (type === 'function_call_output') {
      out.push({ role: 'tool', tool_call_id: String(it.call_id ?? ''), content: typeof it.output === 'string' ? it.output : JSON.stringify(it.output ?? '') });
    } else if (type === 'reasoning') {
      // Reasoning items are the model's own: not sent back upstream.
    } else throw bad(`Unsupported input item type ${String(type)}.`, `${param}.type`);
  });
  return out;
}

/** The chat request for a Responses request (history = the stored conversation it continues). */
export function toChat(b: Json, history: Json[]): Json {
  if (typeof b.model !== 'string' || !b.model) throw bad('model is required.', 'model');
  const messages = [...(typeof b.instructions === 'string' && b.instructions ? [{ role: 'system', content: b.instructions }] : []), ...history, ...inputMessages(b.input)];
  const out: Json = { model: b.model, messages, stream: b.stream === true };
  if (out.stream) out.stream_options = { include_usage: true };
  if (typeof b.temperature === 'number') out.temperature = b.temperature;
  if (typeof b.top_p === 'number') out.top_p = b.top_p;
  if (typeof b.max_output_tokens === 'number') out.max_tokens = b.max_output_tokens;
  if (b.reasoning?.effort) out.reasoning_effort = b.reasoning.effort;
  if (typeof b.parallel_tool_calls === 'boolean') out.parallel_tool_calls = b.parallel_tool_calls;
  // file_search runs before the call (server/knowledge/file-search.ts); the model gets the function tools.
  const fnTools = Array.isArray(b.tools) ? b.tools.filter((t: Json) => t?.type !== 'file_search') : [];
  if (fnTools.length) {
    out.tools = fnTools.map((t: Json, i: number) => {
      if (t?.type !== 'function') throw bad(`Tool type ${String(t?.type)} is not supported here (function tools are).`, `tools[${i}].type`);
      return { type: 'function', function: { name: t.name, ...(t.description ? { description: t.description } : {}), parameters: t.parameters ?? { type: 'object', properties: {} }, ...(typeof t.strict === 'boolean' ? { strict: t.strict } : {}) } };
    });
  }
  const tc = b.tool_choice;
  if (typeof tc === 'string') out.tool_choice = tc;
  else if (tc?.type === 'function') out.tool_choice = { type: 'function', function: { name: tc.name } };
  const f = b.text?.format;
  if (f?.type === 'json_schema') out.response_format = { type: 'json_schema', json_schema: { name: f.name ?? 'response', schema: f.schema, ...(typeof f.strict === 'boolean' ? { strict: f.strict } : {}) } };
  else if (f?.type === 'json_object') out.response_format = { type: 'json_object' };
  return out;
}

type Emit = (type: string, payload: Json) => void;

/**
 * Builds the Response from normalized deltas, emitting the stream's events as it goes
 * (a whole answer runs the same builder without emitting).
 */
export class ResponseBuilder {
  readonly response: Json;
  private msg: { item: Json; index: number } | undefined;
  private readonly tools = new Map<number, { item: Json; index: number }>();
  private finish = 'stop';

  constructor(
    b: Json,
    id: string,
    private readonly emit: Emit,
    /** file_search: its output item (first in the output) and the annotations of the answer's text. */
    private readonly search?: FileSearchPlan,
  ) {
    this.response = {
      id,
      object: 'response',
      created_at: Math.floor(Date.now() / 1000),
      status: 'in_progress',
      error: null,
      incomplete_details: null,
      instructions: b.instructions ?? null,
      max_output_tokens: b.max_output_tokens ?? null,
      model: b.model,
      output: [],
      parallel_tool_calls: b.parallel_tool_calls ?? true,
      previous_response_id: b.previous_response_id ?? null,
      reasoning: b.reasoning ?? null,
      store: b.store !== false,
      temperature: b.temperature ?? 1,
      text: b.text ?? { format: { type: 'text' } },
      tool_choice: b.tool_choice ?? 'auto',
      tools: b.tools ?? [],
      top_p: b.top_p ?? 1,
      truncation: 'disabled',
      usage: null,
      metadata: b.metadata ?? {},
    };
    if (search) this.response.output.push(search.item);
  }

  start(): void {
    this.emit('response.created', { response: { ...this.response, output: [] } });
    this.emit('response.in_progress', { response: { ...this.response, output: [] } });
    if (this.search) {
      this.emit('response.output_item.added', { output_index: 0, item: { ...this.search.item, status: 'in_progress' } });
      this.emit('response.output_item.done', { output_index: 0, item: this.search.item });
    }
  }

  add(d: Delta): void {
    switch (d.t) {
      case 'text': {
        if (!this.msg) {
          const item = { id: rid('msg'), type: 'message', status: 'in_progress', role: 'assistant', content: [] as Json[] };
          const index = this.response.output.push(item) - 1;
          this.msg = { item, index };
          this.emit('response.output_item.added', { output_index: index, item: { ...item, content: [] } });
          item.content.push({ type: 'output_text', text: '', annotations: [] });
          this.emit('response.content_part.added', { item_id: item.id, output_index: index, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } });
        }
        this.msg.item.content[0].text += d.text;
        this.emit('response.output_text.delta', { item_id: this.msg.item.id, output_index: this.msg.index, content_index: 0, delta: d.text });
        return;
      }
      case 'tool_start': {
        this.closeMessage();
        const item = { id: rid('fc'), type: 'function_call', status: 'in_progress', call_id: d.id, name: d.name, arguments: '' };
        const index = this.response.output.push(item) - 1;
        this.tools.set(d.index, { item, index });
        this.emit('response.output_item.added', { output_index: index, item: { ...item } });
        return;
      }
      case 'tool_args': {
        const t = this.tools.get(d.index);
        if (!t) return;
        t.item.arguments += d.args;
        this.emit('response.function_call_arguments.delta', { item_id: t.item.id, output_index: t.index, delta: d.args });
        return;
      }
      case 'finish':
        this.finish = d.reason;
        return;
      case 'usage':
        this.response.usage = { input_tokens: d.input, input_tokens_details: { cached_tokens: 0 }, output_tokens: d.output, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: d.input + d.output };
        return;
      case 'reasoning':
        return; // not exposed: providers' reasoning text is not part of this face's output yet
    }
  }

  private closeMessage(): void {
    const m = this.msg;
    if (!m) return;
    this.msg = undefined;
    const part = m.item.content[0];
    if (this.search) {
      part.annotations = this.search.annotate(part.text);
      part.annotations.forEach((annotation: Json, i: number) => this.emit('response.output_text.annotation.added', { item_id: m.item.id, output_index: m.index, content_index: 0, annotation_index: i, annotation }));
    }
    this.emit('response.output_text.done', { item_id: m.item.id, output_index: m.index, content_index: 0, text: part.text });
    this.emit('response.content_part.done', { item_id: m.item.id, output_index: m.index, content_index: 0, part });
    m.item.status = 'completed';
    this.emit('response.output_item.done', { output_index: m.index, item: m.item });
  }

  /** Closes open items and the response; emits response.completed (or .incomplete). */
  end(): Json {
    this.closeMessage();
    for (const t of this.tools.values()) {
      this.emit('response.function_call_arguments.done', { item_id: t.item.id, output_index: t.index, arguments: t.item.arguments });
      t.item.status = 'completed';
      this.emit('response.output_item.done', { output_index: t.index, item: t.item });
    }
    this.tools.clear();
    const r = this.response;
    if (this.finish === 'length') {
      r.status = 'incomplete';
      r.incomplete_details = { reason: 'max_output_tokens' };
    } else r.status = 'completed';
    this.emit(r.status === 'completed' ? 'response.completed' : 'response.incomplete', { response: r });
    return r;
  }
}

/** The conversation a stored response continues: its messages plus the answer as an assistant turn. */
function answerMessages(r: Json): Json[] {
  const out: Json[] = [];
  for (const item of r.output ?? []) {
    if (item.type === 'message') out.push({ role: 'assistant', content: (item.content ?? []).map((p: Json) => p.text ?? '').join('') });
    else if (item.type === 'function_call') {
      const call = { id: item.call_id, type: 'function', function: { name: item.name, arguments: item.arguments } };
      const last = out.at(-1);
      if (last?.tool_calls) last.tool_calls.push(call);
      else out.push({ role: 'assistant', content: null, tool_calls: [call] });
    }
  }
  return out;
}

export async function writeResponses(svc: GatewayService, store: ResponseStore, ctx: RequestContext, req: IncomingMessage, res: ServerResponse, b: Json, fileSearch?: FileSearchHook): Promise<void> {
  const history = typeof b.previous_response_id === 'string' ? (await store.get(ctx, b.previous_response_id, 'previous_response_id')).messages : [];
  const chat = toChat(b, history);
  // file_search (issue 20): passages into the prompt and the classification raised to theirs, before routing.
  const asked = fromRequest(req, res).classification;
  const search = fileSearch ? await fileSearch(ctx, b, chat, asked) : undefined;
  if (search?.classification && search.classification !== asked?.trim().toLowerCase()) ctx.classificationRaised = { by: 'knowledge', to: search.classification as Classification };
  const id = rid('resp');
  const save = async (r: Json): Promise<void> => {
    if (b.store === false || r.status === 'failed') return;
    const sent = chat.messages.filter((m: Json, i: number) => !(i === 0 && typeof b.instructions === 'string' && b.instructions && m.role === 'system'));
    await store.save(ctx, id, String(b.model), { messages: [...sent, ...answerMessages(r)], response: r });
  };
  const r = await svc.run(ctx, { api: 'responses', endpoint: 'chat', body: chat, ...fromRequest(req, res), ...(search ? { classification: search.classification } : {}) });
  if (r.kind === 'error') return writeError(res, r.facts, r.error);
  if (r.kind === 'whole') {
    const builder = new ResponseBuilder(b, id, () => {}, search);
    for (const d of wholeDeltas(r.body as ChatCompletion)) builder.add(d);
    const out = builder.end();
    await save(out);
    writeFacts(res, r.facts);
    return sendJson(res, 200, out);
  }
  let seq = 0;
  const w = new EventWriter(res, () => ({ sequence_number: seq++ }));
  const builder = new ResponseBuilder(b, id, (type, payload) => w.event(type, payload), search);
  const err = await encodeStream(res, r.facts, r.chunks, w, {
    start: () => builder.start(),
    add: (d) => builder.add(d),
    end: () => save(builder.end()),
    failed: (e) => {
      builder.response.status = 'failed';
      builder.response.error = { code: e.code, message: e.message };
      w.event('error', { code: e.code, message: e.message, param: null });
      w.event('response.failed', { response: builder.response });
    },
  });
  if (err) writeError(res, r.facts, err);
}

export function responsesRoutes(svc: GatewayService, store: ResponseStore, fileSearch?: () => FileSearchHook | undefined): FastRoute[] {
  return [
    {
      method: 'POST',
      template: '/v1/responses',
      pattern: /^\/v1\/responses\/?$/i,
      body: true,
      handle: (ctx, req, res, body) => writeResponses(svc, store, ctx, req, res, objectBody(body), fileSearch?.()),
    },
    {
      method: 'GET',
      template: '/v1/responses/:id',
      pattern: /^\/v1\/responses\/([^/]+)\/?$/i,
      body: false,
      handle: async (ctx, _req, res, _body, [id]) => sendJson(res, 200, (await store.get(ctx, id!)).response),
    },
    {
      method: 'DELETE',
      template: '/v1/responses/:id',
      pattern: /^\/v1\/responses\/([^/]+)\/?$/i,
      body: false,
      handle: async (ctx, _req, res, _body, [id]) => {
        await store.remove(ctx, id!);
        sendJson(res, 200, { id, object: 'response', deleted: true });
      },
    },
  ];
}
