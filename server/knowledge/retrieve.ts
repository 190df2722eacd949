import type { Classification, RequestContext } from '../context.js';
import { CLASS_ORDER, higher, type KnowledgeService } from './service.js';
import { knowledgeHit, type Citation } from './serialize.js';

/**
 * Retrieval for an answer (chat with collections, the Responses face's file_search tool):
 * search the chosen stores with the user's question, number the passages for the prompt, and
 * say how sensitive they are — the caller raises its call's classification to `classification`
 * BEFORE routing, so a confidential passage never reaches a deployment the tenant's policy
 * keeps from confidential data (the gateway refuses with policy_boundary_denied instead).
 */
export interface Retrieval {
  readonly citations: Citation[];
  /** The highest classification among the passages (undefined when nothing was found). */
  readonly classification: Classification | undefined;
  /** The system message carrying the passages (undefined when nothing was found). */
  readonly message: string | undefined;
}

export const RETRIEVE_DEFAULT = 8;
/** Characters of passages put into one prompt at most. */
const CONTEXT_CHARS = 24_000;

export async function retrieve(k: KnowledgeService, ctx: RequestContext, o: { vectorStoreIds: readonly string[]; query: string; limit?: number; classification?: Classification }): Promise<Retrieval> {
  const { hits } = await k.search(ctx, o.vectorStoreIds, { query: o.query, limit: o.limit ?? RETRIEVE_DEFAULT, ...(o.classification ? { classification: o.classification } : {}) });
  const citations: Citation[] = [];
  let classification: Classification | undefined;
  let used = 0;
  for (const { hit, score } of hits) {
    if (used + hit.text.length > CONTEXT_CHARS && citations.length) break;
    used += hit.text.length;
    citations.push({ n: citations.length + 1, ...knowledgeHit(hit, score) });
    classification = classification ? higher(classification, hit.classification) : hit.classification;
  }
  if (!citations.length) return { citations, classification: undefined, message: undefined };
  const passages = citations.map((c) => `[${c.n}] ${c.filename}${c.page ? `, page ${c.page}` : ''}\n${c.text}`).join('\n\n');
  const message =
    'Answer using the passages below from the user\'s documents. Cite the passages you use with their number in square brackets, like [1]. ' +
    'If the passages do not contain the answer, say so.\n\n' +
    passages;
  return { citations, classification, message };
}

/** The classification to send a call with: the one asked for, raised to what was retrieved. */
export function raised(asked: string | undefined, retrieved: Classification | undefined): string | undefined {
  if (!retrieved) return asked;
  const a = asked?.trim().toLowerCase();
  if (a && a in CLASS_ORDER && CLASS_ORDER[a as Classification] >= CLASS_ORDER[retrieved]) return a;
  return retrieved;
}
