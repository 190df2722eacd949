import type { RequestContext } from '../context.js';
import type { ChatMessageRow, ChatRepo, ConversationRow } from '../db/repos/chat.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';

/**
 * Conversations of the web UI, per user and tenant. Content is customer data: stored so the
 * user has history, never logged (only ids and counts are).
 */
export const CLASSIFICATIONS = ['public', 'internal', 'confidential', 'restricted'] as const;
export type Classification = (typeof CLASSIFICATIONS)[number];
export const NEW_TITLE = 'New chat';
const MAX_TITLE = 120;

export function serializeConversation(c: ConversationRow) {
  return {
    object: 'conversation' as const,
    id: c.id,
    title: c.title,
    model: c.model,
    classification: c.classification,
    usage: { prompt_tokens: c.promptTokens, completion_tokens: c.completionTokens, cost_micros: c.costMicros },
    created_at: c.createdAt,
    updated_at: c.updatedAt,
  };
}

export function serializeMessage(m: ChatMessageRow) {
  return {
    object: 'chat_message' as const,
    id: m.id,
    role: m.role,
    content: m.content,
    model: m.model,
    status: m.status,
    error_code: m.errorCode,
    usage: { prompt_tokens: m.promptTokens, completion_tokens: m.completionTokens, cost_micros: m.costMicros },
    created_at: m.createdAt,
  };
}

export type SendMode = 'send' | 'regenerate' | 'edit';

const DAY = 86_400_000;

export class ChatService {
  constructor(private readonly repo: ChatRepo) {}

  /** The tenant's chat retention in days (null = keep until the user deletes). */
  retention(ctx: RequestContext): { days: number | null } {
    return { days: this.repo.retentionDays(ctx) };
  }
  setRetention(ctx: RequestContext, days: number | null): { days: number | null } {
    this.repo.setRetentionDays(ctx, days, ctx.clock.now());
    return { days };
  }

  /**
   * The retention job: in every tenant with a retention setting, deletes conversations not
   * updated for that many days (messages go with them). `ctx` is a system context; returns
   * the number of conversations deleted. Called by the scheduled maintenance job.
   */
  purgeExpired(ctx: RequestContext, now = ctx.clock.now()): number {
    let n = 0;
    for (const { tenantId, days } of this.repo.retentionSettings()) {
      const tctx = { ...ctx, tenant: { id: tenantId, slug: tenantId } };
      const deleted = this.repo.deleteConversationsBefore(tctx, now - days * DAY);
      if (deleted) ctx.log.info({ tenant: tenantId, deleted, days }, 'chat retention: conversations deleted');
      n += deleted;
    }
    return n;
  }

  private userOf(ctx: RequestContext): string {
    const u = ctx.principal?.userId;
    if (!u || ctx.principal?.kind !== 'user') throw new AppError(401, 'auth_required', 'Sign in to use chat.');
    if (!ctx.tenant) throw new AppError(403, 'tenant_required', 'Choose an organisation first.');
    return u;
  }

  list(ctx: RequestContext, opts: { q?: string; limit: number }) {
    const userId = this.userOf(ctx);
    return this.repo.listConversations(ctx, userId, opts).map(serializeConversation);
  }

  get(ctx: RequestContext, id: string): ConversationRow {
    const c = this.repo.conversation(ctx, this.userOf(ctx), id);
    if (!c) throw new AppError(404, 'not_found', 'Conversation not found.');
    return c;
  }

  withMessages(ctx: RequestContext, id: string) {
    const c = this.get(ctx, id);
    return { ...serializeConversation(c), messages: this.repo.messages(ctx, c.id).map(serializeMessage) };
  }

  create(ctx: RequestContext, input: { title?: string; model?: string | null; classification?: Classification | null }) {
    const userId = this.userOf(ctx);
    const now = ctx.clock.now();
    const c = this.repo.insertConversation(ctx, {
      id: newId('cnv', now),
      userId,
      title: (input.title?.trim() || NEW_TITLE).slice(0, MAX_TITLE),
      model: input.model ?? null,
      classification: input.classification ?? null,
      createdAt: now,
      updatedAt: now,
    });
    ctx.log.info({ conversation: c.id }, 'conversation created');
    return serializeConversation(c);
  }

  update(ctx: RequestContext, id: string, patch: { title?: string; model?: string | null; classification?: Classification | null }) {
    const userId = this.userOf(ctx);
    this.get(ctx, id);
    const clean: Partial<ConversationRow> = {};
    if (patch.title !== undefined) {
      const t = patch.title.trim();
      if (!t) throw new AppError(400, 'invalid_request', 'The title cannot be empty.', { param: 'title' });
      clean.title = t.slice(0, MAX_TITLE);
    }
    if (patch.model !== undefined) clean.model = patch.model;
    if (patch.classification !== undefined) clean.classification = patch.classification;
    if (Object.keys(clean).length) this.repo.updateConversation(ctx, userId, id, { ...clean, updatedAt: ctx.clock.now() });
    return serializeConversation(this.get(ctx, id));
  }

  remove(ctx: RequestContext, id: string): void {
    const userId = this.userOf(ctx);
    if (!this.repo.deleteConversation(ctx, userId, id)) throw new AppError(404, 'not_found', 'Conversation not found.');
  }

  removeAll(ctx: RequestContext): number {
    return this.repo.deleteAllConversations(ctx, this.userOf(ctx));
  }

  /**
   * Applies the user's turn and returns the history to send: `send` appends a user message,
   * `regenerate` drops the last answer (resending the last user message), `edit` replaces the
   * last user message and drops what followed it.
   */
  prepareTurn(ctx: RequestContext, id: string, input: { mode: SendMode; content?: string; model: string; classification?: Classification }) {
    const userId = this.userOf(ctx);
    const conv = this.get(ctx, id);
    const now = ctx.clock.now();
    let msgs = this.repo.messages(ctx, conv.id);
    const lastUserIdx = msgs.map((m) => m.role).lastIndexOf('user');
    if (input.mode === 'send') {
      const content = input.content ?? '';
      if (!content.trim()) throw new AppError(400, 'invalid_request', 'Write a message first.', { param: 'content' });
      const m = this.repo.insertMessage(ctx, { id: newId('msg', now), conversationId: conv.id, role: 'user', content, createdAt: now });
      msgs = [...msgs, m];
    } else {
      if (lastUserIdx < 0) throw new AppError(409, 'nothing_to_resend', 'There is no message to resend yet.');
      const after = msgs.slice(lastUserIdx + 1);
      this.repo.deleteMessages(ctx, after.map((m) => m.id));
      msgs = msgs.slice(0, lastUserIdx + 1);
      if (input.mode === 'edit') {
        const content = input.content ?? '';
        if (!content.trim()) throw new AppError(400, 'invalid_request', 'Write a message first.', { param: 'content' });
        const last = msgs[lastUserIdx]!;
        this.repo.updateMessage(ctx, last.id, { content });
        msgs[lastUserIdx] = { ...last, content };
      }
    }
    const patch: Partial<ConversationRow> = { model: input.model, updatedAt: now };
    if (input.classification) patch.classification = input.classification;
    const firstUser = msgs.find((m) => m.role === 'user');
    if (conv.title === NEW_TITLE && firstUser) patch.title = titleFrom(firstUser.content);
    this.repo.updateConversation(ctx, userId, conv.id, patch);
    return { conversation: conv, history: msgs.filter((m) => m.status !== 'error' || m.role === 'user').map((m) => ({ role: m.role, content: m.content })) };
  }

  /** Stores the (possibly partial) answer and adds its usage to the conversation. */
  saveAnswer(
    ctx: RequestContext,
    id: string,
    a: { content: string; model: string; status: 'complete' | 'stopped' | 'error'; errorCode?: string | null; promptTokens: number; completionTokens: number; costMicros: number },
  ) {
    const userId = this.userOf(ctx);
    const now = ctx.clock.now();
    const m = this.repo.insertMessage(ctx, {
      id: newId('msg', now),
      conversationId: id,
      role: 'assistant',
      content: a.content,
      model: a.model,
      status: a.status,
      errorCode: a.errorCode ?? null,
      promptTokens: a.promptTokens,
      completionTokens: a.completionTokens,
      costMicros: a.costMicros,
      createdAt: now,
    });
    this.repo.addUsage(ctx, userId, id, a, now);
    ctx.log.info({ conversation: id, message: m.id, status: a.status, completion_tokens: a.completionTokens }, 'chat answer stored');
    return { message: serializeMessage(m), conversation: serializeConversation(this.get(ctx, id)) };
  }
}

export function titleFrom(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 60 ? `${line.slice(0, 57)}…` : line || NEW_TITLE;
}
