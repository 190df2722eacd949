import { ChunkFold } from '../../providers/chunk-fold.js';
import type { ChatCompletion, ChatCompletionChunk } from '../../providers/index.js';

/**
 * What a cache entry holds (JSON, then encrypted): the normalized answer — the choices of an
 * OpenAI chat completion, whatever face asked and whether it was streamed — and what the
 * original call reported and cost. A hit is rebuilt from it as a whole completion or as
 * chunks, and the face encodes either in its own format.
 */
export interface CachedChoice {
  readonly index: number;
  readonly message: Record<string, unknown>;
  readonly finish_reason: string | null;
}

export interface CacheEntry {
  readonly v: 1;
  /** The deployment the answer came from (checked against the key's deployment on a hit). */
  readonly dep: string;
  readonly choices: readonly CachedChoice[];
  readonly usage: { readonly prompt_tokens: number; readonly completion_tokens: number };
  /** What the original call cost (micro-units): what each hit saves. */
  readonly cost: number;
  readonly at: number;
}

/** The choices of a whole completion, as stored (message fields as the upstream sent them). */
export function choicesOfWhole(r: ChatCompletion): CachedChoice[] {
  return (r.choices ?? []).map((c, i) => {
    const m = (c.message ?? {}) as unknown as Record<string, unknown>;
    const message: Record<string, unknown> = { role: m.role ?? 'assistant', content: m.content ?? null };
    if (m.tool_calls) message.tool_calls = m.tool_calls;
    if (m.refusal) message.refusal = m.refusal;
    if (typeof m.reasoning_content === 'string') message.reasoning_content = m.reasoning_content;
    return { index: c.index ?? i, message, finish_reason: c.finish_reason ?? null };
  });
}

/** The choices of a streamed answer, folded from its chunks. */
export function choicesOfFold(f: ChunkFold): CachedChoice[] {
  return f.choices.filter(Boolean).map((a) => ({
    index: a.index,
    message: { role: a.role, content: a.content === '' && a.toolCalls ? null : a.content, ...(a.toolCalls ? { tool_calls: a.toolCalls.filter(Boolean) } : {}) },
    finish_reason: a.finishReason,
  }));
}

function usageOf(e: CacheEntry) {
  return { prompt_tokens: e.usage.prompt_tokens, completion_tokens: e.usage.completion_tokens, total_tokens: e.usage.prompt_tokens + e.usage.completion_tokens };
}

/** A hit as a whole completion (a new id; the usage the original call reported, as an OpenAI client expects). */
export function wholeOf(e: CacheEntry, id: string, model: string, nowMs: number): ChatCompletion {
  return {
    id,
    object: 'chat.completion',
    created: Math.floor(nowMs / 1000),
    model,
    choices: e.choices.map((c) => ({ index: c.index, message: structuredClone(c.message), logprobs: null, finish_reason: c.finish_reason ?? 'stop' })),
    usage: usageOf(e),
  } as unknown as ChatCompletion;
}

/**
 * A hit as the chunks a streamed upstream would have sent: per choice its role and text, its
 * tool calls, its finish reason; then the usage chunk (no choices), as OpenAI ends a stream
 * with include_usage (the Chat Completions face drops it for clients that did not ask).
 */
export function chunksOf(e: CacheEntry, id: string, model: string, nowMs: number): ChatCompletionChunk[] {
  const created = Math.floor(nowMs / 1000);
  const chunk = (choices: unknown[], extra?: Record<string, unknown>) => ({ id, object: 'chat.completion.chunk', created, model, choices, ...extra }) as unknown as ChatCompletionChunk;
  const out: ChatCompletionChunk[] = [];
  for (const c of e.choices) {
    const m = c.message;
    const delta: Record<string, unknown> = { role: m.role ?? 'assistant' };
    if (typeof m.reasoning_content === 'string') delta.reasoning_content = m.reasoning_content;
    if (typeof m.content === 'string') delta.content = m.content;
    if (m.refusal) delta.refusal = m.refusal;
    out.push(chunk([{ index: c.index, delta, logprobs: null, finish_reason: null }]));
    const calls = Array.isArray(m.tool_calls) ? (m.tool_calls as { id?: string; type?: string; function?: { name?: string; arguments?: string } }[]) : [];
    if (calls.length) {
      out.push(
        chunk([
          {
            index: c.index,
            delta: { tool_calls: calls.map((t, i) => ({ index: i, id: t.id, type: t.type ?? 'function', function: { name: t.function?.name ?? '', arguments: t.function?.arguments ?? '' } })) },
            logprobs: null,
            finish_reason: null,
          },
        ]),
      );
    }
    out.push(chunk([{ index: c.index, delta: {}, logprobs: null, finish_reason: c.finish_reason ?? 'stop' }]));
  }
  out.push(chunk([], { usage: usageOf(e) }));
  return out;
}

export { ChunkFold };
