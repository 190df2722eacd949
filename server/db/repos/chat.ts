import { and, eq, inArray, lt, or, sql } from 'drizzle-orm';
import type { RequestContext } from '../../context.js';
import type { Db } from '../connection.js';
import { chatMessages, conversations, tenantSettings } from '../schema.js';
import type { TenantData } from '../tenant-scope.js';

/**
 * The SQL for the web UI's conversations and messages. Everything is tenant-scoped
 * (TenantData) and additionally limited to the owning user: a conversation of another user
 * or tenant does not exist for the caller. One lookup crosses tenants, named here:
 *  - retentionSettings: the retention job reads every tenant's `chat.retention_days`.
 */
export const RETENTION_KEY = 'chat.retention_days';
export type ConversationRow = typeof conversations.$inferSelect;
export type ChatMessageRow = typeof chatMessages.$inferSelect;
export type NewChatMessage = Omit<typeof chatMessages.$inferInsert, 'tenantId'>;

export class ChatRepo {
  constructor(
    private readonly db: Db,
    private readonly data: TenantData,
  ) {}

  /** Cross-tenant: every tenant's chat retention (days), for the retention job. */
  retentionSettings(): { tenantId: string; days: number }[] {
    return this.db
      .select({ tenantId: tenantSettings.tenantId, value: tenantSettings.value })
      .from(tenantSettings)
      .where(eq(tenantSettings.key, RETENTION_KEY))
      .all()
      .map((r) => ({ tenantId: r.tenantId, days: Number(JSON.parse(r.value)) }))
      .filter((r) => Number.isInteger(r.days) && r.days > 0);
  }
  retentionDays(ctx: RequestContext): number | null {
    const row = this.data.tenantSettings.get(ctx, eq(tenantSettings.key, RETENTION_KEY));
    const n = row ? Number(JSON.parse(row.value)) : NaN;
    return Number.isInteger(n) && n > 0 ? n : null;
  }
  setRetentionDays(ctx: RequestContext, days: number | null, now: number): void {
    if (days === null) this.data.tenantSettings.delete(ctx, eq(tenantSettings.key, RETENTION_KEY));
    else this.data.tenantSettings.upsert(ctx, { key: RETENTION_KEY, value: JSON.stringify(days), updatedAt: now }, [tenantSettings.key], { value: JSON.stringify(days), updatedAt: now });
  }

  listConversations(ctx: RequestContext, userId: string, opts: { q?: string; limit: number; before?: number }): ConversationRow[] {
    // A search matches the title, or any message's content (the FTS5 index of migration 0011).
    const inContent = opts.q ? this.conversationsMatching(ctx, opts.q) : [];
    const title = opts.q ? sql`${conversations.title} LIKE ${`%${opts.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`} ESCAPE '\\'` : undefined;
    const where = and(
      eq(conversations.userId, userId),
      title && inContent.length ? or(title, inArray(conversations.id, inContent)) : title,
      opts.before !== undefined ? lt(conversations.updatedAt, opts.before) : undefined,
    );
    // tenantScoped.list has no order/limit; sort here (a user's list is small and indexed).
    return this.data.conversations
      .list(ctx, where)
      .sort((a, b) => b.updatedAt - a.updatedAt || (a.id < b.id ? 1 : -1))
      .slice(0, opts.limit);
  }
  /**
   * Conversations of the caller's tenant with a message matching every word of `q` (the last
   * one as a prefix), newest first, at most 500. Words are quoted, so FTS5 operators in user
   * input are plain text.
   */
  conversationsMatching(ctx: RequestContext, q: string): string[] {
    const words = q.match(/[\p{L}\p{N}_]+/gu)?.slice(0, 12) ?? [];
    if (!words.length || !ctx.tenant) return [];
    const match = words.map((w, i) => `"${w}"${i === words.length - 1 ? '*' : ''}`).join(' ');
    const rows = this.db.all<{ id: string }>(sql`
      SELECT m.conversation_id AS id FROM chat_fts f
      JOIN chat_search_ids s ON s.id = f.rowid
      JOIN chat_messages m ON m.id = s.message_id
      WHERE chat_fts MATCH ${match} AND m.tenant_id = ${ctx.tenant.id}
      GROUP BY m.conversation_id ORDER BY max(m.created_at) DESC LIMIT 500`);
    return rows.map((r) => r.id);
  }
  conversation(ctx: RequestContext, userId: string, id: string): ConversationRow | undefined {
    return this.data.conversations.get(ctx, and(eq(conversations.id, id), eq(conversations.userId, userId))!);
  }
  insertConversation(ctx: RequestContext, row: Omit<typeof conversations.$inferInsert, 'tenantId'>): ConversationRow {
    return this.data.conversations.insert(ctx, row);
  }
  updateConversation(ctx: RequestContext, userId: string, id: string, patch: Partial<Omit<ConversationRow, 'id' | 'tenantId' | 'userId'>>): number {
    return this.data.conversations.update(ctx, and(eq(conversations.id, id), eq(conversations.userId, userId))!, patch);
  }
  addUsage(ctx: RequestContext, userId: string, id: string, u: { promptTokens: number; completionTokens: number; costMicros: number }, now: number): number {
    return this.data.conversations.update(ctx, and(eq(conversations.id, id), eq(conversations.userId, userId))!, {
      promptTokens: sql`${conversations.promptTokens} + ${u.promptTokens}` as unknown as number,
      completionTokens: sql`${conversations.completionTokens} + ${u.completionTokens}` as unknown as number,
      costMicros: sql`${conversations.costMicros} + ${u.costMicros}` as unknown as number,
      updatedAt: now,
    });
  }
  deleteConversation(ctx: RequestContext, userId: string, id: string): number {
    return this.data.conversations.delete(ctx, and(eq(conversations.id, id), eq(conversations.userId, userId))!);
  }
  deleteAllConversations(ctx: RequestContext, userId: string): number {
    return this.data.conversations.delete(ctx, eq(conversations.userId, userId));
  }
  /** Retention: conversations of this tenant not updated since `before`. */
  deleteConversationsBefore(ctx: RequestContext, before: number): number {
    return this.data.conversations.delete(ctx, lt(conversations.updatedAt, before));
  }

  messages(ctx: RequestContext, conversationId: string): ChatMessageRow[] {
    return this.data.chatMessages
      .list(ctx, eq(chatMessages.conversationId, conversationId))
      .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
  }
  message(ctx: RequestContext, id: string): ChatMessageRow | undefined {
    return this.data.chatMessages.get(ctx, eq(chatMessages.id, id));
  }
  insertMessage(ctx: RequestContext, row: NewChatMessage): ChatMessageRow {
    return this.data.chatMessages.insert(ctx, row);
  }
  updateMessage(ctx: RequestContext, id: string, patch: Partial<Omit<ChatMessageRow, 'id' | 'tenantId' | 'conversationId'>>): number {
    return this.data.chatMessages.update(ctx, eq(chatMessages.id, id), patch);
  }
  deleteMessages(ctx: RequestContext, ids: string[]): number {
    if (!ids.length) return 0;
    return this.data.chatMessages.delete(ctx, or(...ids.map((id) => eq(chatMessages.id, id)))!);
  }
}

