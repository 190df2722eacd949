import type { RequestContext } from '../context.js';
import type { ChatMessageRow, ChatRepo, ConversationRow } from '../db/repos/chat.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import { defaultTip, parents, pathTo } from './thread.js';
import type { ChatMessageStatus, Classification, ConversationView, ChatMessageView, FeedbackView } from '../contract.js';
import { stricter, type AssistantService } from '../assistants/service.js';
import { serializeAttachment, type ChatAttachmentRow, type ChatAttachments } from './attachments.js';

/**
 * Conversations of the web UI, per user and tenant. Content is customer data: stored so the
 * user has history, never logged (only ids and counts are).
 */
export { CLASSIFICATIONS, type Classification } from '../contract.js';
export const NEW_TITLE = 'New chat';
const MAX_TITLE = 120;

export function serializeConversation(c: ConversationRow): ConversationView {
  return {
    object: 'conversation' as const,
    id: c.id,
    title: c.title,
    model: c.model,
    classification: c.classification,
    assistant_id: c.assistantId,
    usage: { prompt_tokens: c.promptTokens, completion_tokens: c.completionTokens, cost_micros: c.costMicros },
    created_at: c.createdAt,
    updated_at: c.updatedAt,
  };
}

export function serializeMessage(m: ChatMessageRow, feedback?: FeedbackView | null): ChatMessageView {
  return {
    ...(feedback !== undefined ? { feedback } : {}),
    object: 'chat_message' as const,
    id: m.id,
    role: m.role,
    parent_id: m.parentId,
    content: m.content,
    model: m.model,
    status: m.status as ChatMessageStatus,
    error_code: m.errorCode,
    usage: { prompt_tokens: m.promptTokens, completion_tokens: m.completionTokens, cost_micros: m.costMicros },
    created_at: m.createdAt,
  };
}

export type SendMode = 'send' | 'regenerate' | 'edit';
const NOT_SENT: ChatMessageStatus = 'not_sent';
const SUPERSEDED: ChatMessageStatus = 'superseded';

export interface TurnPlan {
  conversation: ConversationRow;
  mode: SendMode;
  content: string;
  model: string;
  classification?: Classification;
  /** A not_sent user message this send replaces. */
  retryOf?: string;
  /** Earlier answers a regenerate supersedes (kept as versions). */
  drop: string[];
  /** The user message a send or an edit writes (its id chosen now), or null for a regenerate. */
  userMessage: { id: string; parentId: string | null } | null;
  /** The message the answer follows: the new user message, or the regenerated turn. */
  answerParent: string;
  /** The path sent to the model; `id`: the stored message (its attachments go with it; the route drops the id). */
  history: { role: ChatMessageRow['role']; content: string; id?: string }[];
  /** Images sent with the new user message (bound to it when the turn is written). */
  attachments: ChatAttachmentRow[];
}

const turn = (m: ChatMessageRow) => ({ role: m.role, content: m.content, id: m.id });

const DAY = 86_400_000;

/** What the chat uses of the assistants and feedback modules (optional: tests may build a bare chat). */
export interface ChatExtras {
  assistants?: AssistantService;
  /** The caller's feedback on these messages, by message id. */
  feedbackOf?: (ctx: RequestContext, messageIds: string[]) => Promise<Map<string, FeedbackView>>;
  /** Images attached to messages (./attachments.ts). */
  attachments?: ChatAttachments;
}

export class ChatService {
  constructor(
    private readonly repo: ChatRepo,
    private readonly extras: ChatExtras = {},
  ) {}

  /** The tenant's chat retention in days (null = keep until the user deletes). */
  async retention(ctx: RequestContext): Promise<{ days: number | null }> {
    return { days: await this.repo.retentionDays(ctx) };
  }
  async setRetention(ctx: RequestContext, days: number | null): Promise<{ days: number | null }> {
    await this.repo.setRetentionDays(ctx, days, ctx.clock.now());
    return { days };
  }

  /**
   * The retention job: in every tenant with a retention setting, deletes conversations not
   * updated for that many days (messages go with them). `ctx` is a system context; returns
   * the number of conversations deleted. Called by the scheduled maintenance job.
   */
  async purgeExpired(ctx: RequestContext, now = ctx.clock.now()): Promise<number> {
    let n = 0;
    for (const { tenantId, days } of await this.repo.retentionSettings()) {
      const tctx = { ...ctx, tenant: { id: tenantId, slug: tenantId } };
      const deleted = await this.repo.deleteConversationsBefore(tctx, now - days * DAY);
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

  async list(ctx: RequestContext, opts: { q?: string; limit: number }) {
    const userId = this.userOf(ctx);
    return (await this.repo.listConversations(ctx, userId, opts)).map(serializeConversation);
  }

  async get(ctx: RequestContext, id: string): Promise<ConversationRow> {
    const c = await this.repo.conversation(ctx, this.userOf(ctx), id);
    if (!c) throw new AppError(404, 'not_found', 'Conversation not found.');
    return c;
  }

  async withMessages(ctx: RequestContext, id: string) {
    const c = await this.get(ctx, id);
    const messages = await this.repo.messages(ctx, c.id);
    const fb = await this.extras.feedbackOf?.(ctx, messages.filter((m) => m.role === 'assistant').map((m) => m.id));
    const parent = parents(messages);
    const files = await this.extras.attachments?.byMessage(ctx, c.id);
    return {
      ...serializeConversation(c),
      messages: messages.map((m) => {
        const v = serializeMessage({ ...m, parentId: parent.get(m.id) ?? null }, m.role === 'assistant' && fb ? (fb.get(m.id) ?? null) : undefined);
        const a = files?.get(m.id);
        return a ? { ...v, attachments: a.map(serializeAttachment) } : v;
      }),
    };
  }

  /**
   * A new conversation. With an assistant (one the caller may use), its instructions become
   * the conversation's first message (role system, sent with every turn) — a copy, so a
   * later edit of the assistant does not rewrite what this conversation was told.
   */
  async create(ctx: RequestContext, input: { title?: string; model?: string | null; classification?: Classification | null; assistantId?: string }) {
    const userId = this.userOf(ctx);
    const now = ctx.clock.now();
    const assistant = input.assistantId ? await this.assistants().visible(ctx, input.assistantId) : undefined;
    // The conversation and its system message together (one transaction).
    const c = await this.repo.tx(async () => {
      const c = await this.repo.insertConversation(ctx, {
        ...(assistant ? { assistantId: assistant.id } : {}),
        id: newId('cnv', now),
        userId,
        title: (input.title?.trim() || NEW_TITLE).slice(0, MAX_TITLE),
        model: input.model ?? null,
        classification: input.classification ?? null,
        createdAt: now,
        updatedAt: now,
      });
      if (assistant) await this.repo.insertMessage(ctx, { id: newId('msg', now), conversationId: c.id, role: 'system', content: assistant.instructions, parentId: null, createdAt: now });
      return c;
    });
    ctx.log.info({ conversation: c.id, assistant: assistant?.id }, 'conversation created');
    return serializeConversation(c);
  }

  async update(ctx: RequestContext, id: string, patch: { title?: string; model?: string | null; classification?: Classification | null }) {
    const userId = this.userOf(ctx);
    await this.get(ctx, id);
    const clean: Partial<ConversationRow> = {};
    if (patch.title !== undefined) {
      const t = patch.title.trim();
      if (!t) throw new AppError(400, 'invalid_request', 'The title cannot be empty.', { param: 'title' });
      clean.title = t.slice(0, MAX_TITLE);
    }
    if (patch.model !== undefined) clean.model = patch.model;
    if (patch.classification !== undefined) clean.classification = patch.classification;
    if (Object.keys(clean).length) await this.repo.updateConversation(ctx, userId, id, { ...clean, updatedAt: ctx.clock.now() });
    return serializeConversation(await this.get(ctx, id));
  }

  private assistants(): AssistantService {
    if (!this.extras.assistants) throw new AppError(404, 'not_found', 'Assistant not found.', { param: 'assistant_id' });
    return this.extras.assistants;
  }

  /**
   * The classification a turn is sent with: the one asked for, raised to the assistant's own
   * classification when the conversation has an assistant that sets one (the assistant's
   * author said its data is at least that sensitive; the gateway then applies the tenant's
   * floor and policy as for any call, so a preset can only make a call stricter).
   */
  async classificationFor(ctx: RequestContext, conv: ConversationRow, asked: Classification | undefined): Promise<Classification | undefined> {
    if (!conv.assistantId || !this.extras.assistants) return asked;
    let floor: Classification | undefined;
    try {
      floor = ((await this.extras.assistants.visible(ctx, conv.assistantId)).classification as Classification | null) ?? undefined;
    } catch {
      return asked; // the assistant was deleted (or is no longer shared): its instructions stay in the conversation
    }
    if (!floor) return asked;
    return asked ? stricter(asked, floor) : floor;
  }

  async remove(ctx: RequestContext, id: string): Promise<void> {
    const userId = this.userOf(ctx);
    if (!(await this.repo.deleteConversation(ctx, userId, id))) throw new AppError(404, 'not_found', 'Conversation not found.');
  }

  removeAll(ctx: RequestContext): Promise<number> {
    return this.repo.deleteAllConversations(ctx, this.userOf(ctx));
  }

  /**
   * Plans the user's turn without writing anything. A conversation is a tree (./thread.ts):
   *  - `send` adds a user message after `parentId` (default: the end of the newest path), or,
   *    with `retryOf`, resends a `not_sent` one in its place;
   *  - `regenerate` answers the user message `parentId` again (default: the last one sent on
   *    the newest path); the earlier answers stay as versions (superseded);
   *  - `edit` writes a new version of the user message `editOf` (default: the last one sent)
   *    beside it — a branch: the old message and everything after it stay, reachable.
   * The model is sent the path to the turn, without unsent turns, failed or superseded answers.
   * The plan is written by commitTurn once the gateway starts answering, or recorded as not
   * sent by refuseTurn: a refused or failed call changes neither the history nor the
   * conversation's model and classification.
   */
  async planTurn(
    ctx: RequestContext,
    id: string,
    input: { mode: SendMode; content?: string; model: string; classification?: Classification; retryOf?: string; parentId?: string; editOf?: string; attachments?: string[] },
  ): Promise<TurnPlan> {
    const userId = this.userOf(ctx);
    const conv = await this.get(ctx, id);
    const all = await this.repo.messages(ctx, conv.id);
    const byId = new Map(all.map((m) => [m.id, m]));
    const parent = parents(all);
    const notFound = (param: string) => new AppError(404, 'not_found', 'Message not found.', { param });
    let retry: ChatMessageRow | undefined;
    if (input.retryOf !== undefined) {
      retry = byId.get(input.retryOf);
      if (!retry || input.mode !== 'send') throw notFound('retry_of');
      if (retry.role !== 'user' || retry.status !== NOT_SENT) throw new AppError(409, 'nothing_to_resend', 'Only a message that was not sent can be retried.', { param: 'retry_of' });
    }
    const sendable = (m: ChatMessageRow) => m.status !== NOT_SENT && m.status !== SUPERSEDED && !(m.role === 'assistant' && m.status === 'error');
    const history = (tip: string | null) => pathTo(all, tip).filter(sendable).map(turn);
    const content = input.content ?? retry?.content ?? '';
    // Images named with the turn; a resend without new ones keeps the not-sent message's own.
    const files = this.extras.attachments;
    let attachments: ChatAttachmentRow[] = [];
    if (input.attachments?.length && input.mode !== 'regenerate') {
      if (!files) throw new AppError(404, 'not_found', 'Attachment not found.', { param: 'attachments' });
      attachments = await files.forTurn(ctx, conv.id, userId, input.attachments, retry?.id);
    } else if (retry && files) attachments = (await files.byMessage(ctx, conv.id)).get(retry.id) ?? [];
    if ((input.mode === 'send' || input.mode === 'edit') && !content.trim() && !attachments.length) throw new AppError(400, 'invalid_request', 'Write a message first.', { param: 'content' });
    const now = ctx.clock.now();
    const newUser = (parentId: string | null) => ({ id: newId('msg', now), parentId });
    /** The last user message sent on the newest path (what regenerate and edit act on by default). */
    const lastSentUser = () => {
      const u = pathTo(all, defaultTip(all))
        .filter((m) => m.role === 'user' && m.status !== NOT_SENT)
        .at(-1);
      if (!u) throw new AppError(409, 'nothing_to_resend', 'There is no message to resend yet.');
      return u;
    };
    const userTurn = (mid: string | undefined, param: string) => {
      if (mid === undefined) return lastSentUser();
      const u = byId.get(mid);
      if (!u || u.role !== 'user') throw notFound(param);
      if (u.status === NOT_SENT) throw new AppError(409, 'nothing_to_resend', 'A message that was not sent is retried, not edited or regenerated.', { param });
      return u;
    };
    const classification = await this.classificationFor(ctx, conv, input.classification);
    const base = { conversation: conv, mode: input.mode, content, model: input.model, attachments, ...(classification ? { classification } : {}) };

    if (input.mode === 'send') {
      let after: string | null;
      if (retry) after = parent.get(retry.id) ?? null;
      else if (input.parentId !== undefined) {
        if (!byId.has(input.parentId)) throw notFound('parent_id');
        after = input.parentId;
      } else after = defaultTip(all);
      const user = newUser(after);
      return { ...base, ...(retry ? { retryOf: retry.id } : {}), drop: [], userMessage: user, answerParent: user.id, history: [...history(after), { role: 'user', content, id: user.id }] };
    }
    if (input.mode === 'regenerate') {
      const u = userTurn(input.parentId, 'parent_id');
      const drop = all.filter((m) => m.role === 'assistant' && parent.get(m.id) === u.id && m.status !== SUPERSEDED).map((m) => m.id);
      return { ...base, attachments: [], drop, userMessage: null, answerParent: u.id, history: history(u.id) };
    }
    const u = userTurn(input.editOf, 'edit_of');
    const after = parent.get(u.id) ?? null;
    const user = newUser(after);
    return { ...base, drop: [], userMessage: user, answerParent: user.id, history: [...history(after), { role: 'user', content, id: user.id }] };
  }

  /** Writes a planned turn: the gateway accepted it and is answering. */
  async commitTurn(ctx: RequestContext, plan: TurnPlan): Promise<void> {
    const userId = this.userOf(ctx);
    const now = ctx.clock.now();
    const patch: Partial<ConversationRow> = { model: plan.model, updatedAt: now };
    if (plan.classification) patch.classification = plan.classification;
    const firstUser = plan.history.find((m) => m.role === 'user');
    if (plan.conversation.title === NEW_TITLE && firstUser) patch.title = titleFrom(firstUser.content);
    // One transaction: the turn is written whole or not at all.
    await this.repo.tx(async () => {
      if (plan.retryOf) await this.repo.deleteMessages(ctx, [plan.retryOf]);
      if (plan.userMessage) await this.repo.insertMessage(ctx, { id: plan.userMessage.id, conversationId: plan.conversation.id, role: 'user', content: plan.content, parentId: plan.userMessage.parentId, createdAt: now });
      if (plan.userMessage) await this.extras.attachments?.bind(ctx, plan.attachments.map((a) => a.id), plan.userMessage.id);
      // The earlier answers stay as versions of this turn (the UI pages through them).
      for (const id of plan.drop) await this.repo.updateMessage(ctx, id, { status: SUPERSEDED });
      await this.repo.updateConversation(ctx, userId, plan.conversation.id, patch);
    });
  }

  /**
   * Records a turn the gateway refused or could not deliver: a `send` is kept as a
   * `not_sent` user message with the refusal code (the user sees it, can retry or edit it);
   * a regenerate or edit changes nothing. The conversation keeps its model and classification.
   */
  async refuseTurn(ctx: RequestContext, plan: TurnPlan, code: string): Promise<void> {
    const userId = this.userOf(ctx);
    const user = plan.userMessage;
    if (plan.mode !== 'send' || !user) return;
    const now = ctx.clock.now();
    const patch: Partial<ConversationRow> = { updatedAt: now };
    if (plan.conversation.title === NEW_TITLE) patch.title = titleFrom(plan.content);
    await this.repo.tx(async () => {
      if (plan.retryOf) await this.repo.updateMessage(ctx, plan.retryOf, { content: plan.content, errorCode: code });
      else await this.repo.insertMessage(ctx, { id: user.id, conversationId: plan.conversation.id, role: 'user', content: plan.content, status: NOT_SENT, errorCode: code, parentId: user.parentId, createdAt: now });
      // The images stay with the not-sent message (shown with it, resent with a retry).
      await this.extras.attachments?.bind(ctx, plan.attachments.map((a) => a.id), plan.retryOf ?? user.id);
      await this.repo.updateConversation(ctx, userId, plan.conversation.id, patch);
    });
  }

  /** Stores the (possibly partial) answer and adds its usage to the conversation. */
  async saveAnswer(
    ctx: RequestContext,
    id: string,
    a: { content: string; model: string; status: 'complete' | 'stopped' | 'error'; errorCode?: string | null; promptTokens: number; completionTokens: number; costMicros: number; parentId?: string | null },
  ) {
    const userId = this.userOf(ctx);
    const now = ctx.clock.now();
    const m = await this.repo.tx(async () => {
      const m = await this.repo.insertMessage(ctx, {
        id: newId('msg', now),
        conversationId: id,
        role: 'assistant',
        parentId: a.parentId ?? null,
        content: a.content,
        model: a.model,
        status: a.status,
        errorCode: a.errorCode ?? null,
        promptTokens: a.promptTokens,
        completionTokens: a.completionTokens,
        costMicros: a.costMicros,
        createdAt: now,
      });
      await this.repo.addUsage(ctx, userId, id, a, now);
      return m;
    });
    ctx.log.info({ conversation: id, message: m.id, status: a.status, completion_tokens: a.completionTokens }, 'chat answer stored');
    return { message: serializeMessage(m), conversation: serializeConversation(await this.get(ctx, id)) };
  }
}

export function titleFrom(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 60 ? `${line.slice(0, 57)}…` : line || NEW_TITLE;
}
