import { UpstreamError, type ChatCompletion, type ChatCompletionChunk, type ChatRequest } from '../types.js';

/**
 * The gateway's OpenAI-shaped chat request ⇄ Anthropic's Messages API (2023-06-01): system
 * and developer messages become `system`, images become image blocks (base64 or URL),
 * assistant tool calls become `tool_use` blocks and tool messages `tool_result` blocks of a
 * user turn (consecutive same-role turns merged, as the API requires alternation), tools and
 * tool_choice translated; answers, stop reasons and usage (cache reads and writes included)
 * translated back. Pure functions: the adapter does the HTTP.
 */

// Provider JSON: checked where it is read.
type Json = Record<string, any>;

/** Anthropic requires max_tokens; an OpenAI client may send none. */
export const DEFAULT_MAX_TOKENS = 4096;

const rejected = (why: string): UpstreamError => new UpstreamError('provider_request_rejected', `Not sent to Anthropic: ${why}`, 400, undefined, why);

function imageBlock(url: string): Json {
  const m = /^data:([^;,]+);base64,(.*)$/s.exec(url);
  if (m) return { type: 'image', source: { type: 'base64', media_type: m[1], data: m[2] } };
  if (/^https?:\/\//i.test(url)) return { type: 'image', source: { type: 'url', url } };
  throw rejected('an image must be a data: URL (base64) or an http(s) URL');
}

function contentBlocks(content: unknown): Json[] {
  if (typeof content === 'string') return content ? [{ type: 'text', text: content }] : [];
  if (!Array.isArray(content)) return [];
  const out: Json[] = [];
  for (const p of content as Json[]) {
    if (p?.type === 'text') out.push({ type: 'text', text: String(p.text ?? '') });
    else if (p?.type === 'image_url') out.push(imageBlock(String(p.image_url?.url ?? '')));
    else if (p?.type === 'refusal') out.push({ type: 'text', text: String(p.refusal ?? '') });
    else throw rejected(`content part type ${String(p?.type)} is not supported`);
  }
  return out;
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return (content as Json[]).map((p) => (p?.type === 'text' ? String(p.text ?? '') : '')).join('');
  return '';
}

function toolInput(args: unknown, i: number): Json {
  if (typeof args !== 'string' || args.trim() === '') return {};
  try {
    const v = JSON.parse(args) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Json;
  } catch {
    // below
  }
  throw rejected(`tool call ${i}: arguments must be a JSON object`);
}

function toolChoice(tc: unknown, parallel: unknown): Json | undefined {
  const off = parallel === false ? { disable_parallel_tool_use: true } : {};
  if (tc === undefined || tc === null) return parallel === false ? { type: 'auto', ...off } : undefined;
  if (tc === 'auto') return { type: 'auto', ...off };
  if (tc === 'required') return { type: 'any', ...off };
  if (tc === 'none') return { type: 'none' };
  const name = (tc as Json)?.function?.name;
  if (typeof name === 'string') return { type: 'tool', name, ...off };
  throw rejected('tool_choice is not one Anthropic understands');
}

/** The Messages request for a chat request (`stream` set by the caller). */
export function toAnthropicRequest(req: ChatRequest, stream: boolean): Json {
  const r = req as Json;
  if (typeof r.n === 'number' && r.n > 1) throw rejected('n > 1 is not supported (Anthropic returns one answer per call)');
  const rf = r.response_format?.type;
  if (rf !== undefined && rf !== 'text') throw rejected(`response_format ${String(rf)} is not supported; describe the format in the prompt or use a tool`);
  const system: string[] = [];
  const messages: Json[] = [];
  const push = (role: 'user' | 'assistant', blocks: Json[]): void => {
    if (!blocks.length) return;
    const last = messages[messages.length - 1];
    if (last && last.role === role) last.content.push(...blocks);
    else messages.push({ role, content: blocks });
  };
  for (const m of (r.messages ?? []) as Json[]) {
    switch (m?.role) {
      case 'system':
      case 'developer': {
        const t = textOf(m.content);
        if (t) system.push(t);
        break;
      }
      case 'user':
        push('user', contentBlocks(m.content));
        break;
      case 'assistant': {
        const blocks = contentBlocks(m.content);
        (m.tool_calls as Json[] | undefined)?.forEach((tc, i) => {
          blocks.push({ type: 'tool_use', id: String(tc.id), name: String(tc.function?.name ?? ''), input: toolInput(tc.function?.arguments, i) });
        });
        push('assistant', blocks);
        break;
      }
      case 'tool':
        push('user', [{ type: 'tool_result', tool_use_id: String(m.tool_call_id ?? ''), content: textOf(m.content) }]);
        break;
      default:
        throw rejected(`message role ${String(m?.role)} is not supported`);
    }
  }
  const out: Json = { model: r.model, max_tokens: r.max_completion_tokens ?? r.max_tokens ?? DEFAULT_MAX_TOKENS, messages };
  if (system.length) out.system = system.join('\n\n');
  if (r.temperature !== undefined && r.temperature !== null) out.temperature = Math.min(1, r.temperature as number);
  if (r.top_p !== undefined && r.top_p !== null) out.top_p = r.top_p;
  if (r.stop !== undefined && r.stop !== null) out.stop_sequences = Array.isArray(r.stop) ? r.stop : [r.stop];
  if (Array.isArray(r.tools) && r.tools.length) {
    out.tools = (r.tools as Json[]).map((t) => {
      if (t?.type !== 'function') throw rejected(`tool type ${String(t?.type)} is not supported`);
      return { name: t.function.name, ...(t.function.description ? { description: t.function.description } : {}), input_schema: t.function.parameters ?? { type: 'object', properties: {} } };
    });
  }
  const choice = toolChoice(r.tool_choice, r.parallel_tool_calls);
  if (choice && out.tools) out.tool_choice = choice;
  if (stream) out.stream = true;
  return out;
}

/** Anthropic stop reason → OpenAI finish reason. */
export function finishReason(s: unknown): ChatCompletion['choices'][number]['finish_reason'] {
  switch (s) {
    case 'max_tokens':
      return 'length';
    case 'tool_use':
      return 'tool_calls';
    case 'refusal':
      return 'content_filter';
    default:
      return 'stop'; // end_turn, stop_sequence, pause_turn
  }
}

/**
 * Anthropic usage → OpenAI usage. Prompt tokens count every input token the provider billed:
 * uncached, written to the cache and read from it; the reads are also `cached_tokens`, the
 * writes `cache_creation_input_tokens` (both priced differently by Anthropic).
 */
export function toUsage(u: Json | undefined): NonNullable<ChatCompletion['usage']> {
  const input = num(u?.input_tokens);
  const write = num(u?.cache_creation_input_tokens);
  const read = num(u?.cache_read_input_tokens);
  const output = num(u?.output_tokens);
  const prompt = input + write + read;
  return {
    prompt_tokens: prompt,
    completion_tokens: output,
    total_tokens: prompt + output,
    ...(read || write ? { prompt_tokens_details: { cached_tokens: read }, cache_creation_input_tokens: write } : {}),
  } as NonNullable<ChatCompletion['usage']>;
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/** A whole Anthropic Message → a chat completion. */
export function toCompletion(m: Json): ChatCompletion {
  if (!m || !Array.isArray(m.content)) throw new UpstreamError('provider_bad_response', 'Anthropic answered without content blocks.');
  let text = '';
  let reasoning = '';
  const calls: Json[] = [];
  for (const b of m.content as Json[]) {
    if (b?.type === 'text') text += String(b.text ?? '');
    else if (b?.type === 'thinking') reasoning += String(b.thinking ?? '');
    else if (b?.type === 'tool_use') calls.push({ id: String(b.id), type: 'function', function: { name: String(b.name), arguments: JSON.stringify(b.input ?? {}) } });
  }
  const message: Json = { role: 'assistant', content: calls.length && !text ? null : text, refusal: null };
  if (calls.length) message.tool_calls = calls;
  if (reasoning) message.reasoning_content = reasoning;
  return {
    id: String(m.id ?? ''),
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: String(m.model ?? ''),
    choices: [{ index: 0, message: message as ChatCompletion['choices'][number]['message'], finish_reason: finishReason(m.stop_reason), logprobs: null }],
    usage: toUsage(m.usage),
  };
}

/**
 * Folds Anthropic's stream events into OpenAI chunks: message_start → the role chunk,
 * content blocks → content / tool-call / reasoning deltas (tool calls numbered in order of
 * appearance), message_delta → the finish chunk, message_stop → the usage chunk. `ping` and
 * unknown events (the API may add some) are skipped; `error` is the caller's to throw.
 */
export class StreamFold {
  private id = '';
  private model = '';
  private readonly created = Math.floor(Date.now() / 1000);
  private usage: Json = {};
  /** Content-block index → tool-call index (only tool_use blocks). */
  private readonly tools = new Map<number, number>();
  stopped = false;
  finished = false;

  private chunk(delta: Json, finish: ChatCompletionChunk['choices'][number]['finish_reason'] = null): ChatCompletionChunk {
    return {
      id: this.id,
      object: 'chat.completion.chunk',
      created: this.created,
      model: this.model,
      choices: [{ index: 0, delta: delta as ChatCompletionChunk['choices'][number]['delta'], finish_reason: finish, logprobs: null }],
    };
  }

  /** The chunk(s) for one event (its `type` from the JSON, as the API documents). */
  onEvent(ev: Json): ChatCompletionChunk | undefined {
    switch (ev?.type) {
      case 'message_start': {
        const m = ev.message ?? {};
        this.id = String(m.id ?? '');
        this.model = String(m.model ?? '');
        this.usage = { ...(m.usage ?? {}) };
        return this.chunk({ role: 'assistant', content: '' });
      }
      case 'content_block_start': {
        const b = ev.content_block ?? {};
        if (b.type === 'tool_use') {
          const i = this.tools.size;
          this.tools.set(Number(ev.index), i);
          return this.chunk({ tool_calls: [{ index: i, id: String(b.id), type: 'function', function: { name: String(b.name), arguments: '' } }] });
        }
        if (b.type === 'text' && b.text) return this.chunk({ content: String(b.text) });
        return undefined;
      }
      case 'content_block_delta': {
        const d = ev.delta ?? {};
        if (d.type === 'text_delta') return this.chunk({ content: String(d.text ?? '') });
        if (d.type === 'input_json_delta') {
          const i = this.tools.get(Number(ev.index));
          if (i === undefined) throw new UpstreamError('provider_stream_error', 'Anthropic sent tool input for a block that is not a tool call.');
          return this.chunk({ tool_calls: [{ index: i, function: { arguments: String(d.partial_json ?? '') } }] });
        }
        if (d.type === 'thinking_delta') return this.chunk({ reasoning_content: String(d.thinking ?? '') });
        return undefined; // signature_delta, citations …
      }
      case 'message_delta': {
        if (ev.usage) this.usage = { ...this.usage, ...ev.usage };
        this.finished = true;
        return this.chunk({}, finishReason(ev.delta?.stop_reason));
      }
      case 'message_stop': {
        this.stopped = true;
        return { id: this.id, object: 'chat.completion.chunk', created: this.created, model: this.model, choices: [], usage: toUsage(this.usage) };
      }
      default:
        return undefined; // ping, content_block_stop, new event types
    }
  }
}
