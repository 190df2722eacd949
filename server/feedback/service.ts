import type { RequestContext } from '../context.js';
import type { FeedbackSummaryView, FeedbackView } from '../contract.js';
import type { ChatRepo } from '../db/repos/chat.js';
import type { ChatFeaturesRepo, FeedbackRow } from '../db/repos/chat-features.js';
import { AppError } from '../errors.js';
import type { Identity } from '../identity/index.js';
import { newId } from '../ids.js';

/**
 * 👍/👎 with an optional comment on an assistant's answer: one per user per message (a new
 * rating replaces the old one), stored per tenant. Admins see counts per model and the newest
 * comments, without who wrote them (feedback is more honest when it is not a performance
 * review; the audit log is not involved). Comments can quote customer data: never logged.
 */
export const serializeFeedback = (f: FeedbackRow): FeedbackView => ({ rating: f.rating, comment: f.comment, updated_at: f.updatedAt });

const DAY = 86_400_000;

export class FeedbackService {
  constructor(
    private readonly repo: ChatFeaturesRepo,
    private readonly chat: ChatRepo,
    private readonly identity: Identity,
  ) {}

  private userOf(ctx: RequestContext): string {
    const u = ctx.principal?.userId;
    if (!u || ctx.principal?.kind !== 'user') throw new AppError(401, 'auth_required', 'Sign in to give feedback.');
    if (!ctx.tenant) throw new AppError(403, 'tenant_required', 'Choose an organisation first.');
    return u;
  }

  /** The caller's answer message (an assistant message of one of their conversations), or 404. */
  private async answer(ctx: RequestContext, userId: string, messageId: string) {
    const m = await this.chat.message(ctx, messageId);
    if (!m || !(await this.chat.conversation(ctx, userId, m.conversationId))) throw new AppError(404, 'not_found', 'Message not found.');
    if (m.role !== 'assistant') throw new AppError(400, 'invalid_request', 'Feedback is for answers, not for your own messages.', { param: 'message_id' });
    return m;
  }

  async set(ctx: RequestContext, messageId: string, input: { rating: 'up' | 'down'; comment?: string | null | undefined }): Promise<FeedbackView> {
    const userId = this.userOf(ctx);
    const m = await this.answer(ctx, userId, messageId);
    const now = ctx.clock.now();
    const comment = input.comment?.trim() || null;
    const row = await this.repo.upsertFeedback(ctx, { id: newId('fbk', now), messageId: m.id, userId, model: m.model ?? 'unknown', rating: input.rating, comment, createdAt: now, updatedAt: now });
    ctx.log.info({ message: m.id, rating: row.rating, has_comment: !!comment }, 'chat feedback stored');
    return serializeFeedback(row);
  }

  async clear(ctx: RequestContext, messageId: string): Promise<void> {
    const userId = this.userOf(ctx);
    await this.answer(ctx, userId, messageId);
    await this.repo.deleteFeedback(ctx, userId, messageId);
  }

  /** The caller's own feedback on these messages, by message id (shown in the chat). */
  async mine(ctx: RequestContext, messageIds: string[]): Promise<Map<string, FeedbackView>> {
    const userId = ctx.principal?.userId;
    if (!userId) return new Map();
    return new Map((await this.repo.feedbackOf(ctx, userId, messageIds)).map((f) => [f.messageId, serializeFeedback(f)]));
  }

  /** Per model: counts and the newest comments of the last `days` days (tenant admins). */
  async summary(ctx: RequestContext, opts: { days: number; comments: number }): Promise<FeedbackSummaryView> {
    await this.identity.access.require(ctx, 'usage:read', {}, { type: 'feedback' });
    const since = ctx.clock.now() - opts.days * DAY;
    const comments = await this.repo.recentComments(ctx, { since, limit: opts.comments * 20 });
    const models = (await this.repo.feedbackCounts(ctx, since)).map((c) => ({
      model: c.model,
      up: Number(c.up),
      down: Number(c.down),
      recent_comments: comments
        .filter((f) => f.model === c.model)
        .slice(0, opts.comments)
        .map((f) => ({ rating: f.rating, comment: f.comment ?? '', updated_at: f.updatedAt })),
    }));
    return { object: 'feedback_summary', days: opts.days, models };
  }
}
