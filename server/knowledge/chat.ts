import type { Classification, RequestContext } from '../context.js';
import { raised, retrieve } from './retrieve.js';
import type { Citation } from './serialize.js';
import type { KnowledgeService } from './service.js';

/**
 * Knowledge for the web chat (server/chat/routes.ts `opts.knowledge`, issue 20): retrieval over
 * the collections the user picked, and the answer's citations stored with it. The
 * classification handed back is already the turn's: the one asked for, raised to the highest
 * retrieved — never lowered (a chat asked at confidential stays confidential when only internal
 * passages were found).
 */
export interface ChatKnowledgeAdapter {
  retrieve(ctx: RequestContext, o: { collections: readonly string[]; query: string; classification: Classification | undefined }): Promise<{ message: string | undefined; citations: readonly Citation[]; classification: Classification | undefined }>;
  saveCitations(ctx: RequestContext, messageId: string, conversationId: string, citations: readonly unknown[]): Promise<void>;
}

export function chatKnowledge(k: KnowledgeService): ChatKnowledgeAdapter {
  return {
    async retrieve(ctx, o) {
      const r = await retrieve(k, ctx, { vectorStoreIds: o.collections, query: o.query, ...(o.classification ? { classification: o.classification } : {}) });
      return { message: r.message, citations: r.citations, classification: raised(o.classification, r.classification) as Classification | undefined };
    },
    saveCitations: (ctx, messageId, conversationId, citations) => k.saveCitations(ctx, messageId, conversationId, citations as Citation[]),
  };
}
