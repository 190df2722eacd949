import type { ChatCompletionChunk } from './types.js';

/** One choice of a streamed answer, folded from its deltas. */
export interface FoldedChoice {
  readonly index: number;
  role: string;
  content: string;
  toolCalls: { id: string; type: string; function: { name: string; arguments: string } }[] | undefined;
  finishReason: string | null;
}

/**
 * Folds OpenAI `chat.completion.chunk` deltas into whole choices: content concatenated, tool
 * calls assembled by their index (id, name and argument pieces), the last finish reason.
 * Used where a stream must become one answer: a non-streaming client of a streaming upstream
 * (Ollama's collectCompletion) and the stored content of a streamed call (content logging).
 */
export class ChunkFold {
  /** By choice index; holes are choices that never appeared. */
  readonly choices: FoldedChoice[] = [];

  add(c: ChatCompletionChunk): void {
    for (const ch of c.choices ?? []) {
      const index = ch.index ?? 0;
      const acc = (this.choices[index] ??= { index, role: 'assistant', content: '', toolCalls: undefined, finishReason: null });
      const d = ch.delta;
      if (d) {
        if (d.role) acc.role = d.role;
        if (typeof d.content === 'string') acc.content += d.content;
        for (const tc of d.tool_calls ?? []) {
          const t = ((acc.toolCalls ??= [])[tc.index ?? 0] ??= { id: '', type: 'function', function: { name: '', arguments: '' } });
          if (tc.id) t.id = tc.id;
          if (tc.type) t.type = tc.type;
          if (tc.function?.name) t.function.name += tc.function.name;
          if (tc.function?.arguments) t.function.arguments += tc.function.arguments;
        }
      }
      if (ch.finish_reason) acc.finishReason = ch.finish_reason;
    }
  }
}
