import { randomBytes } from 'node:crypto';
import type { RequestContext } from '../context.js';
import { AppError } from '../errors.js';
import { raised, retrieve } from './retrieve.js';
import type { Citation } from './serialize.js';
import type { KnowledgeService } from './service.js';

/**
 * The Responses face's `file_search` tool (issue 20): `tools: [{type: "file_search",
 * vector_store_ids: [...], max_num_results?}]`. Enclave runs the search itself before the
 * model call (the model is not asked to call the tool): the question (the last user input) is
 * searched in the stores, the passages go into the prompt as a system message, the call's
 * classification is raised to the highest retrieved BEFORE routing, and the answer gets a
 * `file_search_call` output item and `file_citation` annotations on its text — at the
 * position of each `[n]` marker the model wrote, else at the end for every passage used.
 */
// Client JSON: checked where it is read.
type Json = Record<string, any>;

export interface FileSearchPlan {
  /** The classification to send the call with (the header's, raised to what was retrieved). */
  readonly classification: string | undefined;
  /** The `file_search_call` output item (first in the response's output). */
  readonly item: Json;
  /** The file_citation annotations of the answer's text. */
  annotate(text: string): Json[];
}

export type FileSearchHook = (ctx: RequestContext, body: Json, chat: Json, askedClassification: string | undefined) => Promise<FileSearchPlan | undefined>;

function lastUserText(messages: Json[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (m?.role !== 'user') continue;
    if (typeof m.content === 'string') return m.content;
    if (Array.isArray(m.content)) return m.content.map((p: Json) => (p?.type === 'text' ? String(p.text ?? '') : '')).join(' ');
  }
  return '';
}

export function fileSearchHook(k: KnowledgeService): FileSearchHook {
  return async (ctx, body, chat, asked) => {
    const tools: Json[] = Array.isArray(body.tools) ? body.tools : [];
    const fs = tools.filter((t) => t?.type === 'file_search');
    if (!fs.length) return undefined;
    const ids = [...new Set(fs.flatMap((t) => (Array.isArray(t.vector_store_ids) ? t.vector_store_ids : [])))];
    if (!ids.length || !ids.every((i) => typeof i === 'string')) {
      throw new AppError(400, 'invalid_request', 'file_search needs vector_store_ids (a list of vector store ids).', { param: 'tools' });
    }
    const limitRaw = fs.find((t) => typeof t.max_num_results === 'number')?.max_num_results;
    const limit = typeof limitRaw === 'number' && limitRaw >= 1 && limitRaw <= 50 ? Math.floor(limitRaw) : undefined;
    const query = lastUserText(chat.messages ?? []);
    const askedCls = asked?.trim().toLowerCase();
    const r = await retrieve(k, ctx, {
      vectorStoreIds: ids as string[],
      query,
      ...(limit ? { limit } : {}),
      ...(askedCls === 'public' || askedCls === 'internal' || askedCls === 'confidential' || askedCls === 'restricted' ? { classification: askedCls } : {}),
    });
    if (r.message) {
      // After the instructions (if any), before the conversation.
      const at = chat.messages?.[0]?.role === 'system' ? 1 : 0;
      chat.messages.splice(at, 0, { role: 'system', content: r.message });
    }
    const include = Array.isArray(body.include) && body.include.includes('file_search_call.results');
    const item: Json = {
      id: `fs_${randomBytes(12).toString('hex')}`,
      type: 'file_search_call',
      status: 'completed',
      queries: [query],
      results: include ? r.citations.map((c) => ({ file_id: c.file_id, filename: c.filename, score: c.score, text: c.text, attributes: {} })) : null,
    };
    return { classification: raised(asked, r.classification), item, annotate: (text) => annotations(text, r.citations) };
  };
}

/** file_citation annotations: one per `[n]` marker in the text (at its position), else one per cited file at the end. */
export function annotations(text: string, citations: readonly Citation[]): Json[] {
  const byN = new Map(citations.map((c) => [c.n, c]));
  const out: Json[] = [];
  for (const m of text.matchAll(/\[(\d{1,3})\]/g)) {
    const c = byN.get(Number(m[1]));
    if (c) out.push({ type: 'file_citation', index: m.index! + m[0].length, file_id: c.file_id, filename: c.filename });
  }
  if (out.length || !citations.length) return out;
  const seen = new Set<string>();
  for (const c of citations) {
    if (seen.has(c.file_id)) continue;
    seen.add(c.file_id);
    out.push({ type: 'file_citation', index: text.length, file_id: c.file_id, filename: c.filename });
  }
  return out;
}
