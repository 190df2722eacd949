import { randomBytes } from 'node:crypto';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from '../types.js';
import { UpstreamError } from '../types.js';

/**
 * OpenAI Chat Completions ⇄ Bedrock Converse / ConverseStream (pure functions;
 * test/unit/bedrock-transform.test.ts).
 *
 * Request: system/developer messages → `system`; user text and data-URL images → content
 * blocks; assistant tool_calls → `toolUse`; tool messages → `toolResult` blocks of a user
 * turn (Converse wants user/assistant turns alternating, so neighbours of one role merge);
 * tools → `toolConfig`; max_tokens/temperature/top_p/stop → `inferenceConfig`.
 * Response: `output.message.content` → content and tool_calls; `stopReason` → finish_reason;
 * `usage` → usage (cache reads as cached prompt tokens). Stream: the typed events
 * (messageStart, contentBlockStart/Delta/Stop, messageStop, metadata) → OpenAI chunks.
 */

// Converse wire shapes (the parts we read and write).
type Block =
  | { text: string }
  | { image: { format: string; source: { bytes: string } } }
  | { toolUse: { toolUseId: string; name: string; input: unknown } }
  | { toolResult: { toolUseId: string; content: { text: string }[]; status?: 'error' } };
interface Turn {
  role: 'user' | 'assistant';
  content: Block[];
}
export interface ConverseRequest {
  messages: Turn[];
  system?: { text: string }[];
  inferenceConfig?: { maxTokens?: number; temperature?: number; topP?: number; stopSequences?: string[] };
  toolConfig?: { tools: { toolSpec: { name: string; description?: string; inputSchema: { json: unknown } } }[]; toolChoice?: unknown };
}
export interface ConverseUsage {
  inputTokens?: number;
  outputTokens?: number;
  totalTokens?: number;
  cacheReadInputTokens?: number;
  cacheWriteInputTokens?: number;
}
export interface ConverseResponse {
  output?: { message?: { role?: string; content?: Record<string, any>[] } };
  stopReason?: string;
  usage?: ConverseUsage;
}

const IMAGE_FORMATS: Record<string, string> = { 'image/png': 'png', 'image/jpeg': 'jpeg', 'image/jpg': 'jpeg', 'image/gif': 'gif', 'image/webp': 'webp' };

function rejected(msg: string): UpstreamError {
  return new UpstreamError('provider_request_rejected', msg, 400, undefined, msg);
}

/** A `data:image/…;base64,…` URL as [media type, base64]; anything else is refused (Bedrock does not fetch URLs). */
export function dataUrl(url: string): [string, string] {
  const m = /^data:([^;,]+);base64,(.*)$/s.exec(url);
  if (!m) throw rejected('This provider takes images as data: URLs (base64) only, not links.');
  return [m[1]!.toLowerCase(), m[2]!];
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p: any) => (p?.type === 'text' && typeof p.text === 'string' ? p.text : '')).join('');
  return '';
}

function parseArgs(a: unknown): unknown {
  if (typeof a !== 'string') return a ?? {};
  if (a.trim() === '') return {};
  try {
    return JSON.parse(a);
  } catch {
    throw rejected('A tool call’s arguments are not valid JSON.');
  }
}

function userBlocks(content: unknown): Block[] {
  if (typeof content === 'string') return content ? [{ text: content }] : [];
  const out: Block[] = [];
  for (const p of (content as any[]) ?? []) {
    if (p?.type === 'text' && typeof p.text === 'string') {
      if (p.text) out.push({ text: p.text });
    } else if (p?.type === 'image_url') {
      const [type, b64] = dataUrl(String(typeof p.image_url === 'string' ? p.image_url : p.image_url?.url ?? ''));
      const format = IMAGE_FORMATS[type];
      if (!format) throw rejected(`Image type ${type} is not supported (png, jpeg, gif, webp).`);
      out.push({ image: { format, source: { bytes: b64 } } });
    } else throw rejected(`Content part type ${String(p?.type)} is not supported by this provider.`);
  }
  return out;
}

export function toConverse(req: ChatRequest): ConverseRequest {
  const r = req as Record<string, any>;
  if (typeof r.n === 'number' && r.n > 1) throw rejected('This provider answers one choice per request (n must be 1).');
  const system: { text: string }[] = [];
  const messages: Turn[] = [];
  const push = (role: Turn['role'], blocks: Block[]): void => {
    if (!blocks.length) return;
    const last = messages[messages.length - 1];
    if (last && last.role === role) last.content.push(...blocks);
    else messages.push({ role, content: blocks });
  };
  for (const m of (r.messages as any[]) ?? []) {
    switch (m?.role) {
      case 'system':
      case 'developer': {
        const t = textOf(m.content);
        if (t) system.push({ text: t });
        break;
      }
      case 'user':
        push('user', userBlocks(m.content));
        break;
      case 'assistant': {
        const blocks: Block[] = [];
        const t = textOf(m.content);
        if (t) blocks.push({ text: t });
        for (const tc of m.tool_calls ?? []) blocks.push({ toolUse: { toolUseId: String(tc.id), name: String(tc.function?.name), input: parseArgs(tc.function?.arguments) } });
        push('assistant', blocks);
        break;
      }
      case 'tool':
        push('user', [{ toolResult: { toolUseId: String(m.tool_call_id), content: [{ text: textOf(m.content) || ' ' }] } }]);
        break;
      default:
        throw rejected(`Message role ${String(m?.role)} is not supported by this provider.`);
    }
  }
  const out: ConverseRequest = { messages };
  if (system.length) out.system = system;
  const inf: NonNullable<ConverseRequest['inferenceConfig']> = {};
  const max = r.max_completion_tokens ?? r.max_tokens;
  if (typeof max === 'number') inf.maxTokens = max;
  if (typeof r.temperature === 'number') inf.temperature = r.temperature;
  if (typeof r.top_p === 'number') inf.topP = r.top_p;
  if (typeof r.stop === 'string') inf.stopSequences = [r.stop];
  else if (Array.isArray(r.stop) && r.stop.length) inf.stopSequences = r.stop.map(String);
  if (Object.keys(inf).length) out.inferenceConfig = inf;
  const tools = Array.isArray(r.tools) ? r.tools.filter((t: any) => t?.type === 'function' && t.function?.name) : [];
  if (tools.length && r.tool_choice !== 'none') {
    out.toolConfig = {
      tools: tools.map((t: any) => ({
        toolSpec: { name: t.function.name, ...(t.function.description ? { description: t.function.description } : {}), inputSchema: { json: t.function.parameters ?? { type: 'object', properties: {} } } },
      })),
    };
    const tc = r.tool_choice;
    if (tc === 'required') out.toolConfig.toolChoice = { any: {} };
    else if (tc && typeof tc === 'object' && tc.function?.name) out.toolConfig.toolChoice = { tool: { name: tc.function.name } };
    else if (tc === 'auto') out.toolConfig.toolChoice = { auto: {} };
  }
  return out;
}

const STOP: Record<string, 'stop' | 'length' | 'tool_calls' | 'content_filter'> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  max_tokens: 'length',
  tool_use: 'tool_calls',
  guardrail_intervened: 'content_filter',
  content_filtered: 'content_filter',
};
export function finishReason(stop: string | undefined): 'stop' | 'length' | 'tool_calls' | 'content_filter' {
  return STOP[stop ?? ''] ?? 'stop';
}

export function usageOf(u: ConverseUsage | undefined): ChatCompletion['usage'] {
  const p = u?.inputTokens ?? 0;
  const c = u?.outputTokens ?? 0;
  const cached = u?.cacheReadInputTokens;
  return { prompt_tokens: p, completion_tokens: c, total_tokens: u?.totalTokens ?? p + c, ...(cached ? { prompt_tokens_details: { cached_tokens: cached } } : {}) };
}

const newId = (): string => `chatcmpl-${randomBytes(12).toString('hex')}`;

export function fromConverse(r: ConverseResponse, model: string): ChatCompletion {
  const content = r?.output?.message?.content;
  if (!Array.isArray(content)) throw new UpstreamError('provider_bad_response', 'The provider answered without output.message.content.');
  let text = '';
  const toolCalls: { id: string; type: 'function'; function: { name: string; arguments: string } }[] = [];
  for (const b of content) {
    if (typeof b.text === 'string') text += b.text;
    else if (b.toolUse) toolCalls.push({ id: String(b.toolUse.toolUseId), type: 'function', function: { name: String(b.toolUse.name), arguments: JSON.stringify(b.toolUse.input ?? {}) } });
  }
  return {
    id: newId(),
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: toolCalls.length && !text ? null : text, refusal: null, ...(toolCalls.length ? { tool_calls: toolCalls } : {}) },
        finish_reason: finishReason(r.stopReason),
        logprobs: null,
      },
    ],
    usage: usageOf(r.usage),
  };
}

/** A ConverseStream event, already decoded: its `:event-type` and JSON payload. */
export interface StreamEvent {
  readonly type: string;
  readonly body: Record<string, any>;
}

/**
 * ConverseStream events → OpenAI chunks. Tool-use blocks become tool_calls numbered in the
 * order they start; the `metadata` event's usage becomes the final usage chunk. A stream
 * that ends before `messageStop` was cut off (an error, not a short answer).
 */
export async function* toOpenAIChunks(events: AsyncIterable<StreamEvent>, model: string): AsyncGenerator<ChatCompletionChunk> {
  const base = { id: newId(), object: 'chat.completion.chunk' as const, created: Math.floor(Date.now() / 1000), model };
  const chunk = (delta: Record<string, unknown>, finish: ChatCompletionChunk['choices'][number]['finish_reason'] = null): ChatCompletionChunk => ({
    ...base,
    choices: [{ index: 0, delta: delta as ChatCompletionChunk['choices'][number]['delta'], finish_reason: finish, logprobs: null }],
  });
  const toolIndex = new Map<number, number>();
  let stopped = false;
  let usage: ChatCompletion['usage'] | undefined;
  for await (const ev of events) {
    const b = ev.body;
    switch (ev.type) {
      case 'messageStart':
        yield chunk({ role: 'assistant', content: '' });
        break;
      case 'contentBlockStart': {
        const tu = b.start?.toolUse;
        if (tu) {
          const i = toolIndex.size;
          toolIndex.set(Number(b.contentBlockIndex ?? 0), i);
          yield chunk({ tool_calls: [{ index: i, id: String(tu.toolUseId), type: 'function', function: { name: String(tu.name), arguments: '' } }] });
        }
        break;
      }
      case 'contentBlockDelta': {
        const d = b.delta ?? {};
        if (typeof d.text === 'string') {
          if (d.text) yield chunk({ content: d.text });
        } else if (d.toolUse && typeof d.toolUse.input === 'string') {
          const i = toolIndex.get(Number(b.contentBlockIndex ?? 0));
          if (i === undefined) throw new UpstreamError('provider_stream_error', 'The provider sent tool input for a block it never started.');
          yield chunk({ tool_calls: [{ index: i, function: { arguments: d.toolUse.input } }] });
        }
        // reasoningContent and other delta kinds have no Chat Completions form: left out.
        break;
      }
      case 'messageStop':
        stopped = true;
        yield chunk({}, finishReason(b.stopReason));
        break;
      case 'metadata':
        usage = usageOf(b.usage);
        break;
      default:
        // contentBlockStop, and event types newer than this code: nothing to relay.
        break;
    }
  }
  if (!stopped) throw new UpstreamError('provider_stream_error', 'The provider stream ended before the answer was finished.');
  if (usage) yield { ...base, choices: [], usage };
}

/**
 * An AWS error as an UpstreamError. The type comes from `x-amzn-errortype`
 * (`ThrottlingException:http://…`), the body's `__type`, or an event-stream exception's
 * `:exception-type`; AWS's documented statuses back it up when none is named.
 */
export function bedrockError(status: number | undefined, type: string | undefined, message: string | undefined, retryAfterMs?: number): UpstreamError {
  const t = (type ?? '').split(':')[0]!.split('#').pop()!.toLowerCase();
  // Only the first paragraph: AWS's signature errors go on with the canonical request it
  // expected, header values included (a session token among them) — not for logs or clients.
  const text = (message ?? '').split(/\n\s*\n/)[0]!.slice(0, 300);
  const msg = `The provider answered ${status ?? 'mid-stream'}${type ? ` ${type.split(':')[0]}` : ''}: ${text || 'no message'}`;
  switch (t) {
    case 'throttlingexception':
    case 'toomanyrequestsexception':
    case 'servicequotaexceededexception':
      return new UpstreamError('provider_rate_limited', msg, status ?? 429, retryAfterMs);
    case 'modelnotreadyexception':
    case 'serviceunavailableexception':
    case 'internalserverexception':
    case 'modeltimeoutexception':
    case 'modelstreamerrorexception':
      return new UpstreamError(status === undefined ? 'provider_stream_error' : 'provider_server_error', msg, status ?? 503, retryAfterMs);
    case 'validationexception':
    case 'modelerrorexception':
      return new UpstreamError('provider_request_rejected', msg, status ?? 400, undefined, text || undefined);
    case 'accessdeniedexception':
    case 'unrecognizedclientexception':
    case 'invalidsignatureexception':
    case 'expiredtokenexception':
    case 'incompletesignatureexception':
    case 'missingauthenticationtokenexception':
      return new UpstreamError('provider_auth_failed', msg, status ?? 403);
    case 'resourcenotfoundexception':
      return new UpstreamError('provider_model_not_found', msg, status ?? 404);
  }
  if (status === undefined) return new UpstreamError('provider_stream_error', msg);
  if (status === 429) return new UpstreamError('provider_rate_limited', msg, status, retryAfterMs);
  if (status === 401 || status === 403) return new UpstreamError('provider_auth_failed', msg, status);
  if (status === 404) return new UpstreamError('provider_model_not_found', msg, status);
  if (status >= 500) return new UpstreamError('provider_server_error', msg, status, retryAfterMs);
  return new UpstreamError('provider_request_rejected', msg, status, undefined, text || undefined);
}
