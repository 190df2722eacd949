import { and, eq, inArray, lt, or, type SQL, sql } from 'drizzle-orm';
import type { RequestContext } from '../../context.js';
import type { chatMessages, conversations } from '../schema.js';
import type { Store } from '../store.js';
import type { TenantStore } from '../tenant-store.js';

/**
 * The SQL for the web UI's conversations and messages, on either dialect (server/db/store.ts).
 * Everything is tenant-scoped (TenantStore) and additionally limited to the owning user: a
 * conversation of another user or tenant does not exist for the caller. One lookup crosses
 * tenants, named here:
 *  - retentionSettings: the retention job reads every tenant's `chat.retention_days`.
 * Search over message contents is dialect-specific: FTS5 on SQLite (migration 0011), a GIN
 * index on `to_tsvector('simple', left(content, SEARCH_PREFIX))` on PostgreSQL
 * (migrations-pg chat_search).
 */
export const RETENTION_KEY = 'chat.retention_days';
export type ConversationRow = typeof conversations.$inferSelect;
export type ChatMessageRow = typeof chatMessages.$inferSelect;
export type NewChatMessage = Omit<typeof chatMessages.$inferInsert, 'tenantId'>;

/**
 * Characters of a message indexed for search on PostgreSQL. A tsvector holds at most 1 MB;
 * 100 000 characters stay below it for any text (lexemes are at most the text's bytes, ≤ 4
 * per character, plus a few bytes each), so indexing never fails on a long answer. The
 * expression must be the index's (migrations-pg chat_search) for the index to be used.
 */
export const SEARCH_PREFIX = 100_000;

export class ChatRepo {
  constructor(
    private readonly store: Store,
    private readonly data: TenantStore,
  ) {}

  /** Runs `fn` in one transaction (sequences that must not interleave with other requests). */
  tx<T>(fn: () => Promise<T>): Promise<T> {
    return this.store.tx(fn);
  }

  /** Cross-tenant: every tenant's chat retention (days), for the retention job. */
  async retentionSettings(): Promise<{ tenantId: string; days: number }[]> {
    const { q, t } = this.store;
    const rows = await this.store.all(q.select({ tenantId: t.tenantSettings.tenantId, value: t.tenantSettings.value }).from(t.tenantSettings).where(eq(t.tenantSettings.key, RETENTION_KEY)));
    return rows.map((r) => ({ tenantId: r.tenantId, days: Number(JSON.parse(r.value)) })).filter((r) => Number.isInteger(r.days) && r.days > 0);
  }
  async retentionDays(ctx: RequestContext): Promise<number | null> {
    const row = await this.data.tenantSettings.get(ctx, (s) => eq(s.key, RETENTION_KEY));
    const n = row ? Number(JSON.parse(row.value)) : Number.NaN;
    return Number.isInteger(n) && n > 0 ? n : null;
  }
  async setRetentionDays(ctx: RequestContext, days: number | null, now: number): Promise<void> {
    if (days === null) await this.data.tenantSettings.delete(ctx, (s) => eq(s.key, RETENTION_KEY));
    else await this.data.tenantSettings.upsert(ctx, { key: RETENTION_KEY, value: JSON.stringify(days), updatedAt: now }, (s) => [s.key], { value: JSON.stringify(days), updatedAt: now });
  }

  async listConversations(ctx: RequestContext, userId: string, opts: { q?: string; limit: number; before?: number }): Promise<ConversationRow[]> {
    // A search matches the title, or any message's content (the full-text index).
    const inContent = opts.q ? await this.conversationsMatching(ctx, opts.q) : [];
    const rows = await this.data.conversations.list(ctx, (c) => {
      let title: SQL | undefined;
      if (opts.q) {
        const pattern = `%${opts.q.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
        // SQLite's LIKE ignores ASCII case; PostgreSQL's does not (ILIKE does).
        title = this.store.dialect === 'postgres' ? sql`${c.title} ILIKE ${pattern} ESCAPE '\\'` : sql`${c.title} LIKE ${pattern} ESCAPE '\\'`;
      }
      return and(eq(c.userId, userId), title && inContent.length ? or(title, inArray(c.id, inContent)) : title, opts.before !== undefined ? lt(c.updatedAt, opts.before) : undefined);
    });
    // The tenant store has no order/limit; sort here (a user's list is small and indexed).
    return rows.sort((a, b) => b.updatedAt - a.updatedAt || (a.id < b.id ? 1 : -1)).slice(0, opts.limit);
  }

  /**
   * Conversations of the caller's tenant with a message matching every word of `q` (the last
   * one as a prefix), newest first, at most 500. Only letters, digits and `_` make words, so
   * search operators in user input (FTS5's or tsquery's) are plain text.
   */
  async conversationsMatching(ctx: RequestContext, q: string): Promise<string[]> {
    const words = q.match(/[\p{L}\p{N}_]+/gu)?.slice(0, 12) ?? [];
    if (!words.length || !ctx.tenant) return [];
    const m = this.store.t.chatMessages;
    let matches: SQL;
    if (this.store.dialect === 'postgres') {
      // The full words through websearch_to_tsquery (AND of words), the last one as a prefix
      // (`:*`, which websearch syntax cannot say); a word is [\p{L}\p{N}_]+, so it carries no
      // tsquery operators. The tsvector expression is the GIN index's (migrations-pg chat_search).
      const prefix = sql`to_tsquery('simple', ${`${words.at(-1)}:*`})`;
      // Each word quoted: `or` and a leading `-` are websearch operators, and a word here is only ever a word.
      const full = words
        .slice(0, -1)
        .map((w) => `"${w}"`)
        .join(' ');
      const query = full ? sql`(websearch_to_tsquery('simple', ${full}) && ${prefix})` : prefix;
      matches = sql`to_tsvector('simple', left(${m.content}, ${sql.raw(String(SEARCH_PREFIX))})) @@ ${query}`;
    } else {
      // FTS5 (migration 0011): quoted words, the last one a prefix.
      const match = words.map((w, i) => `"${w}"${i === words.length - 1 ? '*' : ''}`).join(' ');
      matches = sql`${m.id} IN (SELECT s.message_id FROM chat_fts f JOIN chat_search_ids s ON s.id = f.rowid WHERE chat_fts MATCH ${match})`;
    }
    const rows = await this.store.all(
      this.store.q
        .select({ id: m.conversationId })
        .from(m)
        .where(and(eq(m.tenantId, ctx.tenant.id), matches))
        .groupBy(m.conversationId)
        .orderBy(sql`max(${m.createdAt}) DESC`)
        .limit(500),
    );
    return rows.map((r) => r.id);
  }
  conversation(ctx: RequestContext, userId: string, id: string): Promise<ConversationRow | undefined> {
    return this.data.conversations.get(ctx, (c) => and(eq(c.id, id), eq(c.userId, userId)));
  }
  insertConversation(ctx: RequestContext, row: Omit<typeof conversations.$inferInsert, 'tenantId'>): Promise<ConversationRow> {
    return this.data.conversations.insert(ctx, row);
  }
  updateConversation(ctx: RequestContext, userId: string, id: string, patch: Partial<Omit<ConversationRow, 'id' | 'tenantId' | 'userId'>>): Promise<number> {
    return this.data.conversations.update(ctx, (c) => and(eq(c.id, id), eq(c.userId, userId)), patch);
  }
  /** Adds an answer's usage in one statement (no read-modify-write race between two answers). */
  addUsage(ctx: RequestContext, userId: string, id: string, u: { promptTokens: number; completionTokens: number; costMicros: number }, now: number): Promise<number> {
    const c = this.data.conversations.table;
    return this.data.conversations.update(ctx, (t) => and(eq(t.id, id), eq(t.userId, userId)), {
      promptTokens: sql`${c.promptTokens} + ${u.promptTokens}` as unknown as number,
      completionTokens: sql`${c.completionTokens} + ${u.completionTokens}` as unknown as number,
      costMicros: sql`${c.costMicros} + ${u.costMicros}` as unknown as number,
      updatedAt: now,
    });
  }
  deleteConversation(ctx: RequestContext, userId: string, id: string): Promise<number> {
    return this.data.conversations.delete(ctx, (c) => and(eq(c.id, id), eq(c.userId, userId)));
  }
  deleteAllConversations(ctx: RequestContext, userId: string): Promise<number> {
    return this.data.conversations.delete(ctx, (c) => eq(c.userId, userId));
  }
  /** Retention: conversations of this tenant not updated since `before`. */
  deleteConversationsBefore(ctx: RequestContext, before: number): Promise<number> {
    return this.data.conversations.delete(ctx, (c) => lt(c.updatedAt, before));
  }

  async messages(ctx: RequestContext, conversationId: string): Promise<ChatMessageRow[]> {
    const rows = await this.data.chatMessages.list(ctx, (m) => eq(m.conversationId, conversationId));
    return rows.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
  }
  message(ctx: RequestContext, id: string): Promise<ChatMessageRow | undefined> {
    return this.data.chatMessages.get(ctx, (m) => eq(m.id, id));
  }
  insertMessage(ctx: RequestContext, row: NewChatMessage): Promise<ChatMessageRow> {
    return this.data.chatMessages.insert(ctx, row);
  }
  updateMessage(ctx: RequestContext, id: string, patch: Partial<Omit<ChatMessageRow, 'id' | 'tenantId' | 'conversationId'>>): Promise<number> {
    return this.data.chatMessages.update(ctx, (m) => eq(m.id, id), patch);
  }
  async deleteMessages(ctx: RequestContext, ids: string[]): Promise<number> {
    if (!ids.length) return 0;
    return this.data.chatMessages.delete(ctx, (m) => inArray(m.id, ids));
  }
}
