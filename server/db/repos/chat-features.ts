import { and, desc, eq, gte, isNull, inArray, ne, isNotNull, or, sql } from 'drizzle-orm';
import type { RequestContext } from '../../context.js';
import { requireTenant } from '../../context.js';
import type { assistants, messageFeedback, promptVersions, prompts } from '../schema.js';
import type { Store } from '../store.js';
import type { TenantStore } from '../tenant-store.js';

/**
 * The SQL of the chat's assistants (presets), message feedback and prompt library (issue 21),
 * on either dialect (server/db/store.ts). Every read and write is tenant-scoped (TenantStore,
 * or an explicit tenant condition in the aggregate and join queries); nothing here crosses
 * tenants.
 */
export type AssistantRow = typeof assistants.$inferSelect;
export type FeedbackRow = typeof messageFeedback.$inferSelect;
export type PromptRow = typeof prompts.$inferSelect;
export type PromptVersionRow = typeof promptVersions.$inferSelect;

export class ChatFeaturesRepo {
  constructor(
    private readonly store: Store,
    private readonly data: TenantStore,
  ) {}

  // ---- assistants ------------------------------------------------------------------------

  /** Shared assistants, plus the private ones of `userId` when given. */
  async assistants(ctx: RequestContext, userId: string | null): Promise<AssistantRow[]> {
    const rows = await this.data.assistants.list(ctx, (a) => (userId ? or(isNull(a.ownerUserId), eq(a.ownerUserId, userId)) : isNull(a.ownerUserId)));
    return rows.sort((a, b) => a.name.localeCompare(b.name) || (a.id < b.id ? -1 : 1));
  }
  assistant(ctx: RequestContext, id: string): Promise<AssistantRow | undefined> {
    return this.data.assistants.get(ctx, (a) => eq(a.id, id));
  }
  insertAssistant(ctx: RequestContext, row: Omit<typeof assistants.$inferInsert, 'tenantId'>): Promise<AssistantRow> {
    return this.data.assistants.insert(ctx, row);
  }
  updateAssistant(ctx: RequestContext, id: string, patch: Partial<Omit<AssistantRow, 'id' | 'tenantId' | 'ownerUserId' | 'createdBy' | 'createdAt'>>): Promise<number> {
    return this.data.assistants.update(ctx, (a) => eq(a.id, id), patch);
  }
  deleteAssistant(ctx: RequestContext, id: string): Promise<number> {
    return this.data.assistants.delete(ctx, (a) => eq(a.id, id));
  }

  // ---- feedback --------------------------------------------------------------------------

  async feedbackOf(ctx: RequestContext, userId: string, messageIds: string[]): Promise<FeedbackRow[]> {
    if (!messageIds.length) return [];
    return this.data.messageFeedback.list(ctx, (f) => and(eq(f.userId, userId), inArray(f.messageId, messageIds)));
  }
  /** One statement (INSERT … ON CONFLICT DO UPDATE): two ratings at once leave one row. */
  upsertFeedback(ctx: RequestContext, row: Omit<typeof messageFeedback.$inferInsert, 'tenantId'>): Promise<FeedbackRow> {
    return this.data.messageFeedback.upsert(ctx, row, (f) => [f.messageId, f.userId], { rating: row.rating, comment: row.comment ?? null, updatedAt: row.updatedAt });
  }
  deleteFeedback(ctx: RequestContext, userId: string, messageId: string): Promise<number> {
    return this.data.messageFeedback.delete(ctx, (f) => and(eq(f.userId, userId), eq(f.messageId, messageId)));
  }
  /** Per model: 👍 and 👎 counts since `since`. */
  feedbackCounts(ctx: RequestContext, since: number): Promise<{ model: string; up: number; down: number }[]> {
    const f = this.store.t.messageFeedback;
    return this.store.all(
      this.store.q
        .select({
          model: f.model,
          // mapWith(Number): PostgreSQL's sum of integers is a bigint, which arrives as text.
          up: sql<number>`sum(case when ${f.rating} = 'up' then 1 else 0 end)`.mapWith(Number),
          down: sql<number>`sum(case when ${f.rating} = 'down' then 1 else 0 end)`.mapWith(Number),
        })
        .from(f)
        .where(and(eq(f.tenantId, requireTenant(ctx).id), gte(f.updatedAt, since)))
        .groupBy(f.model)
        .orderBy(f.model),
    );
  }
  /** The newest feedback with a comment (any model, or one), newest first. */
  recentComments(ctx: RequestContext, opts: { since: number; model?: string; limit: number }): Promise<FeedbackRow[]> {
    const f = this.store.t.messageFeedback;
    return this.store.all(
      this.store.q
        .select()
        .from(f)
        .where(and(eq(f.tenantId, requireTenant(ctx).id), gte(f.updatedAt, opts.since), isNotNull(f.comment), ne(f.comment, ''), opts.model ? eq(f.model, opts.model) : undefined))
        .orderBy(desc(f.updatedAt))
        .limit(opts.limit),
    );
  }

  // ---- prompt library --------------------------------------------------------------------

  /** Every prompt with its current (newest) version. */
  async prompts(ctx: RequestContext): Promise<{ prompt: PromptRow; current: PromptVersionRow }[]> {
    const tenant = requireTenant(ctx).id;
    const { prompts: p, promptVersions: v } = this.store.t;
    const rows = await this.store.all(
      this.store.q
        .select({ prompt: p, current: v })
        .from(p)
        .innerJoin(v, and(eq(v.promptId, p.id), eq(v.version, p.version), eq(v.tenantId, tenant)))
        .where(eq(p.tenantId, tenant)),
    );
    return rows.sort((a, b) => a.current.title.localeCompare(b.current.title));
  }
  prompt(ctx: RequestContext, id: string): Promise<PromptRow | undefined> {
    return this.data.prompts.get(ctx, (p) => eq(p.id, id));
  }
  async versions(ctx: RequestContext, promptId: string): Promise<PromptVersionRow[]> {
    const rows = await this.data.promptVersions.list(ctx, (v) => eq(v.promptId, promptId));
    return rows.sort((a, b) => b.version - a.version);
  }
  /**
   * A new prompt (version 1) or a new version of one, in one transaction. The version is
   * taken by a single `UPDATE … SET version = version + 1 RETURNING` (on PostgreSQL it locks
   * the row until commit), so two edits at once get two consecutive versions.
   */
  writeVersion(ctx: RequestContext, v: { promptId: string; versionId: string; title: string; body: string; authorId: string; now: number; create: boolean }): Promise<number> {
    return this.store.tx(async () => {
      let version = 1;
      if (v.create) await this.data.prompts.insert(ctx, { id: v.promptId, version: 1, createdAt: v.now, updatedAt: v.now });
      else {
        const p = this.store.t.prompts;
        const bumped = await this.store.one(
          this.store.q
            .update(p)
            .set({ version: sql`${p.version} + 1`, updatedAt: v.now })
            .where(and(eq(p.tenantId, requireTenant(ctx).id), eq(p.id, v.promptId)))
            .returning({ version: p.version }),
        );
        if (!bumped) return 0;
        version = bumped.version;
      }
      await this.data.promptVersions.insert(ctx, { id: v.versionId, promptId: v.promptId, version, title: v.title, body: v.body, authorId: v.authorId, createdAt: v.now });
      return version;
    });
  }
  deletePrompt(ctx: RequestContext, id: string): Promise<number> {
    return this.data.prompts.delete(ctx, (p) => eq(p.id, id));
  }
}
