import { and, eq, inArray } from 'drizzle-orm';
import type { ChatAttachmentView } from '../contract.js';
import type { RequestContext } from '../context.js';
import type { TenantStore } from '../db/tenant-store.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';

/**
 * Images attached to chat messages (issue 20). The browser uploads each file to its
 * conversation first (message_id null), then names the ids with the turn; the chat binds them
 * to the user message in the turn's transaction and sends them to the model as OpenAI
 * `image_url` content parts — only to a model whose deployments accept images (the catalogue's
 * `vision`), otherwise the turn is refused before anything is stored or sent.
 *
 * The type is read from the file's first bytes, never from the browser's content-type, and
 * only raster formats are accepted (no SVG: it can carry script), so serving them back on our
 * origin (with nosniff) cannot run anything. Content is customer data: never logged.
 */
export const IMAGE_LIMITS = { maxBytes: 5 * 1024 * 1024, perMessage: 4 } as const;

/** A stored attachment (typed through the tenant store: code outside server/db never names the table). */
export type ChatAttachmentRow = Awaited<ReturnType<TenantStore['chatAttachments']['list']>>[number];

/** The image type from the magic bytes (PNG, JPEG, GIF, WebP), or null. */
export function sniffImage(b: Buffer): string | null {
  if (b.length >= 8 && b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'image/png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'image/jpeg';
  if (b.length >= 6 && (b.subarray(0, 6).toString('latin1') === 'GIF87a' || b.subarray(0, 6).toString('latin1') === 'GIF89a')) return 'image/gif';
  if (b.length >= 12 && b.subarray(0, 4).toString('latin1') === 'RIFF' && b.subarray(8, 12).toString('latin1') === 'WEBP') return 'image/webp';
  return null;
}

export function serializeAttachment(r: ChatAttachmentRow): ChatAttachmentView {
  return { object: 'chat_attachment', id: r.id, mime: r.mime, name: r.name, bytes: r.bytes, message_id: r.messageId, created_at: r.createdAt };
}

/** An OpenAI chat message with the images as `image_url` parts (data URLs) after the text. */
export function withImages(m: { role: string; content: string }, images: readonly ChatAttachmentRow[]): Record<string, unknown> {
  if (!images.length) return m;
  return {
    role: m.role,
    content: [...(m.content ? [{ type: 'text', text: m.content }] : []), ...images.map((i) => ({ type: 'image_url', image_url: { url: `data:${i.mime};base64,${i.data}` } }))],
  };
}

export class ChatAttachments {
  constructor(private readonly data: TenantStore) {}

  /** Stores an uploaded image in the caller's conversation (checked by the caller) until a turn names it. */
  async upload(ctx: RequestContext, conversationId: string, userId: string, file: { body: Buffer; name: string | null }): Promise<ChatAttachmentView> {
    if (!file.body.length) throw new AppError(400, 'invalid_file', 'The file is empty.', { param: 'file' });
    if (file.body.length > IMAGE_LIMITS.maxBytes) throw new AppError(413, 'file_too_large', `Images can be at most ${IMAGE_LIMITS.maxBytes / 1024 / 1024} MB.`, { param: 'file' });
    const mime = sniffImage(file.body);
    if (!mime) throw new AppError(415, 'invalid_file', 'Only PNG, JPEG, GIF and WebP images can be attached.', { param: 'file' });
    const now = ctx.clock.now();
    const row = await this.data.chatAttachments.insert(ctx, {
      id: newId('att', now),
      conversationId,
      messageId: null,
      userId,
      mime,
      name: file.name ? file.name.slice(0, 200) : null,
      bytes: file.body.length,
      data: file.body.toString('base64'),
      createdAt: now,
    });
    ctx.log.info({ conversation: conversationId, attachment: row.id, bytes: row.bytes, mime }, 'chat attachment stored');
    return serializeAttachment(row);
  }

  /**
   * The uploaded, not yet sent attachments a turn names, in the order named: each must be the
   * caller's, in this conversation, and unsent (or belong to `retryOf`, the not-sent message
   * being resent). Anything else is "not found" (another tenant's, user's or conversation's).
   */
  async forTurn(ctx: RequestContext, conversationId: string, userId: string, ids: readonly string[], retryOf?: string): Promise<ChatAttachmentRow[]> {
    if (!ids.length) return [];
    if (ids.length > IMAGE_LIMITS.perMessage) throw new AppError(400, 'invalid_request', `At most ${IMAGE_LIMITS.perMessage} images per message.`, { param: 'attachments' });
    const rows = await this.data.chatAttachments.list(ctx, (a) => and(eq(a.conversationId, conversationId), eq(a.userId, userId), inArray(a.id, [...ids])));
    const byId = new Map(rows.map((r) => [r.id, r]));
    return ids.map((id) => {
      const r = byId.get(id);
      if (!r || (r.messageId !== null && r.messageId !== retryOf)) throw new AppError(404, 'not_found', 'Attachment not found.', { param: 'attachments' });
      return r;
    });
  }

  /** The conversation's sent attachments by message id (history and the conversation view). */
  async byMessage(ctx: RequestContext, conversationId: string): Promise<Map<string, ChatAttachmentRow[]>> {
    const rows = await this.data.chatAttachments.list(ctx, (a) => eq(a.conversationId, conversationId));
    const out = new Map<string, ChatAttachmentRow[]>();
    for (const r of rows.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1))) {
      if (!r.messageId) continue;
      out.set(r.messageId, [...(out.get(r.messageId) ?? []), r]);
    }
    return out;
  }

  /** Binds attachments to the message they were sent with (inside the turn's transaction). */
  async bind(ctx: RequestContext, ids: readonly string[], messageId: string): Promise<void> {
    if (ids.length) await this.data.chatAttachments.update(ctx, (a) => inArray(a.id, [...ids]), { messageId });
  }

  /** One attachment of the caller's conversation (the bytes for the browser). */
  async get(ctx: RequestContext, conversationId: string, userId: string, id: string): Promise<ChatAttachmentRow> {
    const r = await this.data.chatAttachments.get(ctx, (a) => and(eq(a.id, id), eq(a.conversationId, conversationId), eq(a.userId, userId)));
    if (!r) throw new AppError(404, 'not_found', 'Attachment not found.');
    return r;
  }
}
