import { and, desc, eq, isNull, or, sql } from 'drizzle-orm';
import type { RequestContext } from '../../context.js';
import { requireTenant } from '../../context.js';
import type { Db } from '../connection.js';
import { assistants, messageFeedback, promptVersions, prompts } from '../schema.js';
import type { TenantData } from '../tenant-scope.js';

/**
 * The SQL of the chat's assistants (presets), message feedback and prompt library (issue 21).
 * Every read and write is tenant-scoped (TenantData); nothing here crosses tenants.
 */
export type AssistantRow = typeof assistants.$inferSelect;
export type FeedbackRow = typeof messageFeedback.$inferSelect;
export type PromptRow = typeof prompts.$inferSelect;
export type PromptVersionRow = typeof promptVersions.$inferSelect;

export class ChatFeaturesRepo {
  constructor(
    private readonly db: Db,
    private readonly data: TenantData,
  ) {}

  // ---- assistants ------------------------------------------------------------------------

  /** Shared assistants, plus the private ones of `userId` when given. */
  assistants(ctx: RequestContext, userId: string | null): AssistantRow[] {
    const where = userId ? or(isNull(assistants.ownerUserId), eq(assistants.ownerUserId, userId)) : isNull(assistants.ownerUserId);
    return this.data.assistants.list(ctx, where).sort((a, b) => a.name.localeCompare(b.name) || (a.id < b.id ? -1 : 1));
  }
  assistant(ctx: RequestContext, id: string): AssistantRow | undefined {
    return this.data.assistants.get(ctx, eq(assistants.id, id));
  }
  insertAssistant(ctx: RequestContext, row: Omit<typeof assistants.$inferInsert, 'tenantId'>): AssistantRow {
    return this.data.assistants.insert(ctx, row);
  }
  updateAssistant(ctx: RequestContext, id: string, patch: Partial<Omit<AssistantRow, 'id' | 'tenantId' | 'ownerUserId' | 'createdBy' | 'createdAt'>>): number {
    return this.data.assistants.update(ctx, eq(assistants.id, id), patch);
  }
  deleteAssistant(ctx: RequestContext, id: string): number {
    return this.data.assistants.delete(ctx, eq(assistants.id, id));
  }

  // ---- feedback --------------------------------------------------------------------------

  feedbackOf(ctx: RequestContext, userId: string, messageIds: string[]): FeedbackRow[] {
    if (!messageIds.length) return [];
    return this.data.messageFeedback.list(ctx, and(eq(messageFeedback.userId, userId), or(...messageIds.map((id) => eq(messageFeedback.messageId, id)))));
  }
  upsertFeedback(ctx: RequestContext, row: Omit<typeof messageFeedback.$inferInsert, 'tenantId'>): FeedbackRow {
    return this.data.messageFeedback.upsert(ctx, row, [messageFeedback.messageId, messageFeedback.userId], { rating: row.rating, comment: row.comment ?? null, updatedAt: row.updatedAt });
  }
  deleteFeedback(ctx: RequestContext, userId: string, messageId: string): number {
    return this.data.messageFeedback.delete(ctx, and(eq(messageFeedback.userId, userId), eq(messageFeedback.messageId, messageId))!);
  }
  /** Per model: 👍 and 👎 counts since `since`. */
  feedbackCounts(ctx: RequestContext, since: number): { model: string; up: number; down: number }[] {
    const t = requireTenant(ctx).id;
    return this.db
      .select({
        model: messageFeedback.model,
        up: sql<number>`sum(case when ${messageFeedback.rating} = 'up' then 1 else 0 end)`,
        down: sql<number>`sum(case when ${messageFeedback.rating} = 'down' then 1 else 0 end)`,
      })
      .from(messageFeedback)
      .where(and(eq(messageFeedback.tenantId, t), sql`${messageFeedback.updatedAt} >= ${since}`))
      .groupBy(messageFeedback.model)
      .orderBy(messageFeedback.model)
      .all();
  }
  /** The newest feedback with a comment (any model, or one), newest first. */
  recentComments(ctx: RequestContext, opts: { since: number; model?: string; limit: number }): FeedbackRow[] {
    const t = requireTenant(ctx).id;
    return this.db
      .select()
      .from(messageFeedback)
      .where(
        and(
          eq(messageFeedback.tenantId, t),
          sql`${messageFeedback.updatedAt} >= ${opts.since}`,
          sql`${messageFeedback.comment} IS NOT NULL AND ${messageFeedback.comment} <> ''`,
          opts.model ? eq(messageFeedback.model, opts.model) : undefined,
        ),
      )
      .orderBy(desc(messageFeedback.updatedAt))
      .limit(opts.limit)
      .all();
  }

  // ---- prompt library --------------------------------------------------------------------

  /** Every prompt with its current (newest) version. */
  prompts(ctx: RequestContext): { prompt: PromptRow; current: PromptVersionRow }[] {
    const t = requireTenant(ctx).id;
    return this.db
      .select({ prompt: prompts, current: promptVersions })
      .from(prompts)
      .innerJoin(promptVersions, and(eq(promptVersions.promptId, prompts.id), eq(promptVersions.version, prompts.version), eq(promptVersions.tenantId, t)))
      .where(eq(prompts.tenantId, t))
      .all()
      .sort((a, b) => a.current.title.localeCompare(b.current.title));
  }
  prompt(ctx: RequestContext, id: string): PromptRow | undefined {
    return this.data.prompts.get(ctx, eq(prompts.id, id));
  }
  versions(ctx: RequestContext, promptId: string): PromptVersionRow[] {
    return this.data.promptVersions.list(ctx, eq(promptVersions.promptId, promptId)).sort((a, b) => b.version - a.version);
  }
  /** A new prompt (version 1) or a new version of one, in one transaction. */
  writeVersion(ctx: RequestContext, v: { promptId: string; versionId: string; title: string; body: string; authorId: string; now: number; create: boolean }): number {
    return this.db.transaction(() => {
      let version = 1;
      if (v.create) this.data.prompts.insert(ctx, { id: v.promptId, version: 1, createdAt: v.now, updatedAt: v.now });
      else {
        const p = this.prompt(ctx, v.promptId);
        if (!p) return 0;
        version = p.version + 1;
        this.data.prompts.update(ctx, eq(prompts.id, v.promptId), { version, updatedAt: v.now });
      }
      this.data.promptVersions.insert(ctx, { id: v.versionId, promptId: v.promptId, version, title: v.title, body: v.body, authorId: v.authorId, createdAt: v.now });
      return version;
    });
  }
  deletePrompt(ctx: RequestContext, id: string): number {
    return this.data.prompts.delete(ctx, eq(prompts.id, id));
  }
}
