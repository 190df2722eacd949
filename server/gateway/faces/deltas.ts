import type { ChatCompletion, ChatCompletionChunk } from '../../providers/index.js';

/**
 * The normalized deltas of the pipeline's chunks, for faces that are not Chat Completions
 * (Responses, Messages): text, reasoning, a tool call starting (its id and name), a piece of
 * a tool call's arguments, the finish reason, usage. Choice 0 only (these APIs have no `n`).
 */
export type Delta =
  | { readonly t: 'text'; readonly text: string }
  | { readonly t: 'reasoning'; readonly text: string }
  | { readonly t: 'tool_start'; readonly index: number; readonly id: string; readonly name: string }
  | { readonly t: 'tool_args'; readonly index: number; readonly args: string }
  | { readonly t: 'finish'; readonly reason: string }
  | { readonly t: 'usage'; readonly input: number; readonly output: number };

export function* deltas(c: ChatCompletionChunk, seen: Set<number>): Generator<Delta> {
  if (c.usage) yield { t: 'usage', input: c.usage.prompt_tokens ?? 0, output: c.usage.completion_tokens ?? 0 };
  const ch = c.choices?.find((x) => (x.index ?? 0) === 0);
  if (!ch) return;
  const d = ch.delta as (typeof ch.delta & { reasoning_content?: unknown; reasoning?: unknown }) | undefined;
  const reasoning = d?.reasoning_content ?? d?.reasoning;
  if (typeof reasoning === 'string' && reasoning) yield { t: 'reasoning', text: reasoning };
  if (typeof d?.content === 'string' && d.content) yield { t: 'text', text: d.content };
  for (const tc of d?.tool_calls ?? []) {
    const index = tc.index ?? 0;
    if (!seen.has(index)) {
      seen.add(index);
      yield { t: 'tool_start', index, id: tc.id || `call_${index}`, name: tc.function?.name ?? '' };
    }
    if (tc.function?.arguments) yield { t: 'tool_args', index, args: tc.function.arguments };
  }
  if (ch.finish_reason) yield { t: 'finish', reason: ch.finish_reason };
}

/** A whole answer as the same deltas (one pass, in order). */
export function* wholeDeltas(r: ChatCompletion): Generator<Delta> {
  const m = r.choices?.[0]?.message as (ChatCompletion['choices'][number]['message'] & { reasoning_content?: unknown }) | undefined;
  if (typeof m?.reasoning_content === 'string' && m.reasoning_content) yield { t: 'reasoning', text: m.reasoning_content };
  if (typeof m?.content === 'string' && m.content) yield { t: 'text', text: m.content };
  let index = 0;
  for (const tc of m?.tool_calls ?? []) {
    const fn = (tc as { id: string; function?: { name?: string; arguments?: string } }).function;
    yield { t: 'tool_start', index, id: tc.id, name: fn?.name ?? '' };
    if (fn?.arguments) yield { t: 'tool_args', index, args: fn.arguments };
    index++;
  }
  yield { t: 'finish', reason: r.choices?.[0]?.finish_reason ?? 'stop' };
  if (r.usage) yield { t: 'usage', input: r.usage.prompt_tokens ?? 0, output: r.usage.completion_tokens ?? 0 };
}
