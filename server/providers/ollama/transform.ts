import { randomBytes } from 'node:crypto';
import type { ChatRequest as OllamaChatRequest, ChatResponse as OllamaChatResponse, Message as OllamaMessage } from 'ollama';
import { ChunkFold } from '../chunk-fold.js';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from '../types.js';

/**
 * OpenAI ⇄ Ollama translation (pure functions; test/unit/gateway-ollama-transform.test.ts).
 * Request: messages (multi-part text and data-URL images, tool calls and tool results),
 * tools, response_format → format, sampling parameters → options.
 * Response: NDJSON lines → chat.completion.chunk objects; usage from prompt_eval_count /
 * eval_count; done_reason → finish_reason.
 */
export function toOllamaChat(req: ChatRequest): OllamaChatRequest & { stream: true } {
  const r = req as Record<string, any>;
  const options: Record<string, unknown> = {};
  if (typeof r.temperature === 'number') options.temperature = r.temperature;
  if (typeof r.top_p === 'number') options.top_p = r.top_p;
  if (typeof r.seed === 'number') options.seed = r.seed;
  if (typeof r.frequency_penalty === 'number') options.frequency_penalty = r.frequency_penalty;
  if (typeof r.presence_penalty === 'number') options.presence_penalty = r.presence_penalty;
  const maxTokens = r.max_completion_tokens ?? r.max_tokens;
  if (typeof maxTokens === 'number') options.num_predict = maxTokens;
  if (typeof r.stop === 'string') options.stop = [r.stop];
  else if (Array.isArray(r.stop)) options.stop = r.stop;

  const out: OllamaChatRequest & { stream: true } = {
    model: String(r.model),
    messages: (r.messages as any[]).map(toOllamaMessage),
    stream: true,
  };
  if (Object.keys(options).length) out.options = options;
  if (Array.isArray(r.tools) && r.tools.length && r.tool_choice !== 'none') out.tools = r.tools;
  const rf = r.response_format;
  if (rf?.type === 'json_object') out.format = 'json';
  else if (rf?.type === 'json_schema' && rf.json_schema?.schema) out.format = rf.json_schema.schema;
  return out;
}

function toOllamaMessage(m: any): OllamaMessage {
  const msg: OllamaMessage = { role: m.role === 'developer' ? 'system' : m.role, content: '' };
  if (typeof m.content === 'string') msg.content = m.content;
  else if (Array.isArray(m.content)) {
    const texts: string[] = [];
    const images: string[] = [];
    for (const p of m.content) {
      if (p?.type === 'text' && typeof p.text === 'string') texts.push(p.text);
      else if (p?.type === 'image_url') {
        const url: string = typeof p.image_url === 'string' ? p.image_url : p.image_url?.url ?? '';
        const i = url.indexOf('base64,');
        if (i >= 0) images.push(url.slice(i + 7));
      }
    }
    msg.content = texts.join('\n');
    if (images.length) msg.images = images;
  }
  if (Array.isArray(m.tool_calls)) {
    msg.tool_calls = m.tool_calls.map((tc: any) => ({ function: { name: tc.function?.name, arguments: parseArgs(tc.function?.arguments) } }));
  }
  if (m.role === 'tool' && typeof m.name === 'string') msg.tool_name = m.name;
  return msg;
}

function parseArgs(a: unknown): Record<string, unknown> {
  if (typeof a !== 'string') return (a as Record<string, unknown>) ?? {};
  try {
    const v = JSON.parse(a);
    return v && typeof v === 'object' ? v : {};
  } catch {
    return {};
  }
}

export function finishReason(r: OllamaChatResponse, sawTools: boolean): 'stop' | 'length' | 'tool_calls' {
  if (sawTools) return 'tool_calls';
  return r.done_reason === 'length' ? 'length' : 'stop';
}

/** Turns a stream of Ollama chat lines into OpenAI chunks (usage chunk last). */
export async function* toOpenAIChunks(lines: AsyncIterable<OllamaChatResponse>, model: string): AsyncGenerator<ChatCompletionChunk> {
  const id = `chatcmpl-${randomBytes(12).toString('hex')}`;
  const created = Math.floor(Date.now() / 1000);
  const base = { id, object: 'chat.completion.chunk' as const, created, model };
  let first = true;
  let toolIndex = 0;
  let done = false;
  for await (const line of lines) {
    const delta: Record<string, unknown> = {};
    if (first) {
      delta.role = 'assistant';
      first = false;
    }
    const m = line.message;
    if (m?.content) delta.content = m.content;
    if (m?.tool_calls?.length) {
      delta.tool_calls = m.tool_calls.map((tc) => ({
        index: toolIndex++,
        id: `call_${randomBytes(8).toString('hex')}`,
        type: 'function',
        function: { name: tc.function.name, arguments: JSON.stringify(tc.function.arguments ?? {}) },
      }));
    }
    if (line.done) {
      if (Object.keys(delta).length) yield { ...base, choices: [{ index: 0, delta: delta as any, finish_reason: null, logprobs: null }] };
      yield { ...base, choices: [{ index: 0, delta: {}, finish_reason: finishReason(line, toolIndex > 0), logprobs: null }] };
      const p = line.prompt_eval_count ?? 0;
      const c = line.eval_count ?? 0;
      yield { ...base, choices: [], usage: { prompt_tokens: p, completion_tokens: c, total_tokens: p + c } };
      done = true;
      break;
    }
    if (Object.keys(delta).length) yield { ...base, choices: [{ index: 0, delta: delta as any, finish_reason: null, logprobs: null }] };
  }
  if (!done) throw new Error('ollama stream ended before done');
}

/** Folds OpenAI chunks into one chat.completion (non-streaming clients of a streaming upstream). */
export async function collectCompletion(chunks: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletion> {
  let id = '';
  let created = 0;
  let model = '';
  let usage: ChatCompletion['usage'];
  const fold = new ChunkFold();
  for await (const ch of chunks) {
    id ||= ch.id;
    created ||= ch.created;
    model ||= ch.model;
    if (ch.usage) usage = ch.usage;
    fold.add(ch);
  }
  // Ollama answers with one choice.
  const c0 = fold.choices[0];
  const content = c0?.content ?? '';
  const finish = c0?.finishReason ?? null;
  const tools = (c0?.toolCalls ?? []) as { id: string; type: 'function'; function: { name: string; arguments: string } }[];
  return {
    id,
    object: 'chat.completion',
    created,
    model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: tools.length ? (content || null) : content, refusal: null, ...(tools.length ? { tool_calls: tools } : {}) },
        finish_reason: (finish ?? 'stop') as 'stop',
        logprobs: null,
      },
    ],
    ...(usage ? { usage } : {}),
  };
}
