import express, { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import type { RequestContext } from '../context.js';
import type { ChatModelsView, Classification } from '../contract.js';
import { AppError } from '../errors.js';
import { parseInput } from '../http/parse-input.js';
import { authenticate } from '../identity/http.js';
import type { Identity } from '../identity/index.js';
import { stricter } from '../assistants/service.js';
import { IMAGE_LIMITS, withImages, type ChatAttachments } from './attachments.js';
import { CLASSIFICATIONS, type ChatService } from './service.js';

/**
 * The gateway pipeline the chat calls (server/gateway GatewayService, structurally): the
 * same authorize → policy → limits → route → call → meter path as /v1/chat/completions.
 */
export interface ChatPipeline {
  listModels(ctx: RequestContext): Promise<{ id: string; type?: string; boundaries: readonly string[] }[]>;
  beginCall(): void;
  /** `onUsage` receives the call's usage record after metering priced it, before the promise resolves. */
  chat(ctx: RequestContext, body: Record<string, unknown>, req: Request, res: Response, opts?: { onUsage?: (row: PricedUsage) => void }): Promise<void>;
}

const CLASSIFICATION = z.enum(CLASSIFICATIONS);

/**
 * Knowledge in the chat (issue 20; server/knowledge implements it, structurally): search the
 * collections the user picked with the turn's text, give the passages to the model as a system
 * message numbered [1], [2]…, and raise the turn's classification to the highest retrieved
 * BEFORE the gateway routes it; the answer's citations are stored with it. An unreadable
 * collection is a 404 before anything is stored.
 */
export interface ChatKnowledge {
  retrieve(ctx: RequestContext, o: { collections: readonly string[]; query: string; classification: Classification | undefined }): Promise<{ message: string | undefined; citations: readonly unknown[]; classification: Classification | undefined }>;
  saveCitations(ctx: RequestContext, messageId: string, conversationId: string, citations: readonly unknown[]): Promise<void>;
}

/** What the chat needs of the gateway's usage record, once metering priced it (structurally UsageRow). */
export interface PricedUsage {
  readonly requestId: string;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly costMicros: number;
}

/**
 * Watches what the gateway writes to an SSE response: accumulates the answer text and the
 * usage from the OpenAI-shaped chunks and notices an error event. The gateway's final
 * `res.end(…)` is held back (not written) until the call has finished — the usage record is
 * priced by then — so the route can put its own `event: enclave` (stored message with its
 * cost + conversation totals) before `[DONE]`. /v1 is not involved: only this route taps.
 */
function tapSse(res: Response, onStart: () => void) {
  const tap: Tap = { content: '', promptTokens: 0, completionTokens: 0, errorCode: null, done: false, sse: false, json: '' };
  let buf = '';
  let held: { chunk: unknown; rest: unknown[] } | undefined;
  const origWrite = res.write.bind(res) as (chunk: unknown, ...rest: unknown[]) => boolean;
  const origEnd = res.end.bind(res) as (chunk?: unknown, ...rest: unknown[]) => Response;
  const consume = (chunk: unknown) => {
    if (chunk === undefined || chunk === null || typeof chunk === 'function') return;
    if (!tap.sse) {
      tap.sse = String(res.getHeader('content-type') ?? '').startsWith('text/event-stream');
      // The gateway accepted the call and is answering: the turn becomes part of the history.
      if (tap.sse) onStart();
    }
    if (!tap.sse) {
      // A JSON answer is the gateway's refusal or failure: keep its start for the error code.
      if (tap.json.length < 4096) tap.json += typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8');
      return;
    }
    buf += typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8');
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      for (const line of block.split('\n')) {
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') {
          tap.done = true;
          continue;
        }
        try {
          const j = JSON.parse(data) as { choices?: { delta?: { content?: string } }[]; usage?: { prompt_tokens?: number; completion_tokens?: number } | null; error?: { code?: string } };
          if (j.error) tap.errorCode = j.error.code ?? 'stream_error';
          const d = j.choices?.[0]?.delta?.content;
          if (typeof d === 'string') tap.content += d;
          if (j.usage) {
            tap.promptTokens = j.usage.prompt_tokens ?? tap.promptTokens;
            tap.completionTokens = j.usage.completion_tokens ?? tap.completionTokens;
          }
        } catch {
          /* not JSON: ignore */
        }
      }
    }
  };
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    consume(chunk);
    return origWrite(chunk, ...rest);
  }) as Response['write'];
  res.end = ((chunk?: unknown, ...rest: unknown[]) => {
    consume(chunk);
    if (tap.sse && !held && !res.writableEnded && !res.destroyed) {
      held = { chunk, rest };
      return res;
    }
    return origEnd(chunk, ...rest);
  }) as Response['end'];
  return {
    tap,
    /** Whether the gateway ended the stream (answered in full or with an error event) before the client went away. */
    ended: () => held !== undefined,
    /** Writes `extra` before the held `[DONE]` (or before the held last chunk) and ends the response. */
    finish(extra: string | undefined): void {
      if (res.writableEnded || res.destroyed) return;
      const h = held ?? { chunk: undefined, rest: [] };
      held = h;
      if (extra && typeof h.chunk === 'string' && h.chunk.includes('data: [DONE]')) {
        origEnd(h.chunk.replace('data: [DONE]', `${extra}data: [DONE]`), ...h.rest);
        return;
      }
      if (extra) origWrite(extra);
      origEnd(h.chunk, ...h.rest);
    },
  };
}

interface Tap {
  content: string;
  promptTokens: number;
  completionTokens: number;
  errorCode: string | null;
  done: boolean;
  sse: boolean;
  /** The start of a non-SSE (error) body. */
  json: string;
}

/** The `code` of a JSON error envelope, or a fallback when there is none. */
function errorCodeOf(json: string, status: number): string {
  try {
    const code = (JSON.parse(json) as { error?: { code?: unknown } }).error?.code;
    if (typeof code === 'string') return code;
  } catch {
    /* not JSON (or cut off) */
  }
  return status >= 500 ? 'provider_error' : 'invalid_request';
}

/**
 * /api/chat: the employee chat (session cookie + X-CSRF-Token; API keys are refused here —
 * they have /v1). Conversations are the caller's own in the active tenant.
 *   GET    /api/chat/models                          allowed models with boundaries + tenant default classification
 *   GET    /api/chat/conversations?q=&limit=         list (search: titles and message contents, FTS5)
 *   POST   /api/chat/conversations                   create ({assistant_id?}: the assistant's instructions become the system message)
 *   DELETE /api/chat/conversations                   delete all of mine
 *   GET    /api/chat/conversations/:id               with messages
 *   PATCH  /api/chat/conversations/:id               rename / model / classification
 *   DELETE /api/chat/conversations/:id
 *   POST   /api/chat/conversations/:id/completions   {mode, content?, model, classification?, retry_of?, parent_id?, edit_of?} → SSE
 *     (the gateway's OpenAI chunks, then `event: enclave` with the stored answer), or the
 *     gateway's JSON error (e.g. 403 policy_boundary_denied) before anything is sent upstream;
 *     a refused or failed `send` is then stored as a `not_sent` user message (retry_of resends it).
 * Starting conversations and sending need models:invoke (viewers only read their history).
 */
/** The tenant's data-boundary policy as the gateway sees it (server/gateway PolicyCache, structurally). */
export type PolicyView = (ctx: RequestContext) => Promise<{
  policy: { boundaries: Readonly<Record<string, ReadonlySet<string>>>; defaultClassification?: string | undefined };
  tenantDefault: string;
}>;

export function chatRouter(
  identity: Identity,
  chat: ChatService,
  opts: {
    pipeline: () => ChatPipeline | undefined;
    policy?: PolicyView;
    /** Images in chat: where they are stored, and whether a model accepts them (the catalogue's `vision`). */
    images?: { attachments: ChatAttachments; acceptsImages: (ctx: RequestContext, model: string) => boolean };
    knowledge?: () => ChatKnowledge | undefined;
  },
): Router {
  const pipeline = opts.pipeline;
  const r = Router();
  const auth = authenticate(identity, { accept: ['session'] });
  r.use('/api/chat', auth);

  /** Chatting is invoking models: a role without models:invoke (viewer) reads its history only. */
  const mayChat = async (ctx: RequestContext): Promise<void> => {
    await identity.access.require(ctx, 'models:invoke', {}, { type: 'chat' });
  };
  const canChat = (ctx: RequestContext): boolean => identity.access.authorize(ctx, 'models:invoke', {}).allow;

  const gateway = (): ChatPipeline => {
    const p = pipeline();
    if (!p) throw new AppError(503, 'gateway_unavailable', 'The AI gateway is not available on this server yet.');
    return p;
  };

  r.get('/api/chat/models', async (req, res) => {
    const ctx = req.ctx;
    if (!ctx.tenant) throw new AppError(403, 'tenant_required', 'Choose an organisation first.');
    const t = await identity.tenants.byId(ctx.tenant.id);
    const p = pipeline();
    const models = p ? (await p.listModels(ctx)).filter((m) => !m.type || m.type === 'chat') : [];
    const view = await opts.policy?.(ctx);
    res.json({
      object: 'list',
      data: models.map((m) => ({ id: m.id, boundaries: [...m.boundaries], vision: opts.images?.acceptsImages(ctx, m.id) ?? false })),
      default_classification: (view ? (view.policy.defaultClassification ?? view.tenantDefault) : (t?.defaultClassification ?? 'internal')) as Classification,
      // Which boundaries each classification may use: the UI explains refusals before and after sending.
      policy: view ? (Object.fromEntries(CLASSIFICATIONS.map((c) => [c, [...(view.policy.boundaries[c] ?? [])]])) as Record<Classification, string[]>) : null,
      gateway: p ? 'ready' : 'unavailable',
      can_chat: canChat(ctx),
    } satisfies ChatModelsView);
  });

  // Per-tenant retention (tenant owners/admins): conversations not updated for `days` are deleted by the retention job.
  r.get('/api/chat/retention', async (req, res) => {
    await identity.access.require(req.ctx, 'settings:read', {}, { type: 'chat_retention' });
    res.json({ object: 'chat_retention', ...(await chat.retention(req.ctx)) });
  });
  r.put('/api/chat/retention', async (req, res) => {
    await identity.access.require(req.ctx, 'settings:write', {}, { type: 'chat_retention' });
    const b = parseInput(z.object({ days: z.number().int().min(1).max(3650).nullable() }), req.body);
    const out = await chat.setRetention(req.ctx, b.days);
    await identity.audit.record(req.ctx, { action: 'chat.retention.update', target: { type: 'chat_retention', id: req.ctx.tenant?.id ?? null }, details: { days: b.days } });
    res.json({ object: 'chat_retention', ...out });
  });

  r.get('/api/chat/conversations', async (req, res) => {
    const q = parseInput(z.object({ q: z.string().max(200).optional(), limit: z.coerce.number().int().min(1).max(500).default(200) }), req.query);
    res.json({ object: 'list', data: await chat.list(req.ctx, { limit: q.limit, ...(q.q ? { q: q.q } : {}) }) });
  });
  r.post('/api/chat/conversations', async (req, res) => {
    await mayChat(req.ctx);
    const b = parseInput(z.object({ title: z.string().max(500).optional(), model: z.string().max(200).nullable().optional(), classification: CLASSIFICATION.nullable().optional(), assistant_id: z.string().min(1).max(100).optional() }), req.body);
    const { assistant_id, ...rest } = b;
    res.status(201).json(await chat.create(req.ctx, { ...rest, ...(assistant_id ? { assistantId: assistant_id } : {}) }));
  });
  r.delete('/api/chat/conversations', async (req, res) => {
    res.json({ object: 'list', deleted: await chat.removeAll(req.ctx) });
  });
  r.get('/api/chat/conversations/:id', async (req, res) => {
    res.json(await chat.withMessages(req.ctx, String(req.params.id)));
  });
  r.patch('/api/chat/conversations/:id', async (req, res) => {
    const b = parseInput(z.object({ title: z.string().max(500).optional(), model: z.string().max(200).nullable().optional(), classification: CLASSIFICATION.nullable().optional() }).strict(), req.body);
    res.json(await chat.update(req.ctx, String(req.params.id), b));
  });
  r.delete('/api/chat/conversations/:id', async (req, res) => {
    await chat.remove(req.ctx, String(req.params.id));
    res.json({ object: 'conversation', id: req.params.id, deleted: true });
  });

  // Images (issue 20): the raw file as the body (its type is read from its bytes), the name in
  // x-file-name (URI-encoded). The turn then names the returned ids in `attachments`.
  const rawImage = express.raw({ type: () => true, limit: IMAGE_LIMITS.maxBytes + 1 });
  const images = () => {
    if (!opts.images) throw new AppError(404, 'not_found', 'Attachments are not available on this server.');
    return opts.images;
  };
  r.post('/api/chat/conversations/:id/attachments', async (req, res, next) => {
    // Who and which conversation before reading a byte of the body.
    try {
      await mayChat(req.ctx);
      await chat.get(req.ctx, String(req.params.id));
    } catch (e) {
      next(e);
      return;
    }
    rawImage(req, res, (err?: unknown) => {
      if (err) {
        const tooBig = (err as { type?: string }).type === 'entity.too.large';
        next(tooBig ? new AppError(413, 'file_too_large', `Images can be at most ${IMAGE_LIMITS.maxBytes / 1024 / 1024} MB.`, { param: 'file' }) : err);
        return;
      }
      const name = req.get('x-file-name');
      let decoded: string | null = null;
      try {
        decoded = name ? decodeURIComponent(name) : null;
      } catch {
        decoded = null;
      }
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      images()
        .attachments.upload(req.ctx, String(req.params.id), req.ctx.principal!.userId!, { body, name: decoded })
        .then((v) => res.status(201).json(v), next);
    });
  });
  r.get('/api/chat/conversations/:id/attachments/:attachmentId', async (req, res) => {
    const a = await images().attachments.get(req.ctx, String(req.params.id), req.ctx.principal?.userId ?? '', String(req.params.attachmentId));
    res.set({ 'content-type': a.mime, 'x-content-type-options': 'nosniff', 'cache-control': 'private, max-age=3600', 'content-disposition': 'inline' });
    res.send(Buffer.from(a.data, 'base64'));
  });

  r.post('/api/chat/conversations/:id/completions', async (req, res) => {
    const b = parseInput(
      z.object({
        mode: z.enum(['send', 'regenerate', 'edit']).default('send'),
        content: z.string().max(200_000).optional(),
        model: z.string().min(1).max(200),
        classification: CLASSIFICATION.optional(),
        /** Resend a message that was not sent (refused or failed), optionally with new content. */
        retry_of: z.string().min(1).max(100).optional(),
        /** send: the message to answer after (default: the end of the newest path); regenerate: the user turn to answer again. */
        parent_id: z.string().min(1).max(100).optional(),
        /** edit: the user message to branch from (default: the last one sent). */
        edit_of: z.string().min(1).max(100).optional(),
        /** Uploaded images (POST …/attachments) sent with the new user message. */
        attachments: z.array(z.string().min(1).max(100)).max(IMAGE_LIMITS.perMessage).optional(),
        /** Knowledge collections to answer from (ids the user may read). */
        knowledge: z.array(z.string().min(1).max(100)).max(10).optional(),
      }),
      req.body,
    );
    const ctx = req.ctx;
    // Before anything is stored: a role that may not chat (viewer) stores no messages.
    await mayChat(ctx);
    const p = gateway();
    const id = String(req.params.id);
    const plan = await chat.planTurn(ctx, id, {
      mode: b.mode,
      model: b.model,
      ...(b.content !== undefined ? { content: b.content } : {}),
      ...(b.classification ? { classification: b.classification } : {}),
      ...(b.retry_of ? { retryOf: b.retry_of } : {}),
      ...(b.parent_id ? { parentId: b.parent_id } : {}),
      ...(b.edit_of ? { editOf: b.edit_of } : {}),
      ...(b.attachments?.length ? { attachments: b.attachments } : {}),
    });
    // The path as OpenAI messages: images of earlier turns and of this one as image_url parts.
    const earlier = plan.history.length && opts.images ? await opts.images.attachments.byMessage(ctx, id) : new Map<string, never[]>();
    let hasImages = plan.attachments.length > 0;
    const history = plan.history.map(({ id: mid, ...m }) => {
      const files = mid && plan.userMessage?.id === mid ? plan.attachments : mid ? (earlier.get(mid) ?? []) : [];
      if (files.length) hasImages = true;
      return withImages(m, files);
    });
    // A model that does not take images refuses here, before anything is stored or sent.
    if (hasImages && !opts.images?.acceptsImages(ctx, b.model)) {
      throw new AppError(400, 'vision_unsupported', `The model ${b.model} does not accept images. Choose a model marked “images”, or remove the images.`, { param: 'model' });
    }
    // Knowledge: the passages go in before the conversation, and the classification is raised
    // to what was retrieved before the gateway routes the call (and stored with the turn).
    let citations: readonly unknown[] = [];
    // What raised the turn above the classification asked for (the call trace names it).
    let raisedBy: 'knowledge' | 'assistant' | undefined = plan.classification && plan.classification !== b.classification ? 'assistant' : undefined;
    if (b.knowledge?.length) {
      const k = opts.knowledge?.();
      if (!k) throw new AppError(404, 'not_found', 'Knowledge is not available on this server.', { param: 'knowledge' });
      const query = plan.content || [...plan.history].reverse().find((m) => m.role === 'user')?.content || '';
      const r = await k.retrieve(ctx, { collections: b.knowledge, query, classification: plan.classification });
      citations = r.citations;
      // Only ever raised: from the one asked for (or the tenant's default when none was).
      if (r.classification) {
        const view = plan.classification ? undefined : await opts.policy?.(ctx);
        const base = plan.classification ?? ((view?.policy.defaultClassification ?? view?.tenantDefault) as Classification | undefined);
        plan.classification = base ? stricter(base, r.classification) : r.classification;
        if (plan.classification !== base) raisedBy = 'knowledge';
      }
      if (r.message) {
        const at = history[0] && (history[0] as { role?: unknown }).role === 'system' ? 1 : 0;
        history.splice(at, 0, { role: 'system', content: r.message });
      }
    }
    // The gateway reads the classification and workflow from headers, as for /v1 callers.
    // (plan.classification: the one asked for, raised to the conversation's assistant's.)
    if (raisedBy && plan.classification) req.ctx.classificationRaised = { by: raisedBy, to: plan.classification };
    if (plan.classification) req.headers['x-enclave-classification'] = plan.classification;
    else delete req.headers['x-enclave-classification'];
    req.headers['x-enclave-workflow'] = 'chat';

    // Started (not awaited) by the tap when the gateway begins answering; the answer is
    // stored after it (its parent is the turn's user message). Never rejects.
    let committed: Promise<void> | undefined;
    const commit = () => {
      committed ??= chat.commitTurn(ctx, plan).catch((e: unknown) => {
        ctx.log.warn({ conversation: id, err: (e as Error).message }, 'chat turn not stored');
      });
    };
    const t = tapSse(res, commit);
    let usage: PricedUsage | undefined;
    res.setHeader('x-enclave-conversation', id);
    p.beginCall();
    try {
      await p.chat(ctx, { model: b.model, messages: history, stream: true, stream_options: { include_usage: true } }, req, res, { onUsage: (row) => (usage = row) });
    } finally {
      // A refusal or failure before streaming (JSON error) keeps the turn as not sent. A
      // client that went away before the first token stopped a sent turn. Otherwise store the answer —
      // partial with status `stopped` when the browser went away first (Stop) — with the
      // tokens and cost of the gateway's usage record (priced by metering), so the chat's
      // figures are the metered ones.
      if (!t.tap.sse && res.statusCode >= 400 && t.tap.json) {
        try {
          await chat.refuseTurn(ctx, plan, errorCodeOf(t.tap.json, res.statusCode));
        } catch (e) {
          ctx.log.warn({ conversation: id, err: (e as Error).message }, 'chat refusal not stored');
        }
      } else if (!t.tap.sse) {
        commit();
        t.tap.sse = true; // stored below as a stopped, empty answer
      }
      if (t.tap.sse) {
        const tap = t.tap;
        const status = tap.errorCode ? 'error' : t.ended() ? 'complete' : 'stopped';
        let extra: string | undefined;
        try {
          await committed;
          const out = await chat.saveAnswer(ctx, id, {
            content: tap.content,
            model: b.model,
            status,
            errorCode: tap.errorCode,
            promptTokens: usage?.promptTokens ?? tap.promptTokens,
            completionTokens: usage?.completionTokens ?? tap.completionTokens,
            costMicros: usage?.costMicros ?? 0,
            parentId: plan.answerParent,
          });
          if (citations.length) await opts.knowledge?.()?.saveCitations(ctx, out.message.id, id, citations);
          extra = `event: enclave\ndata: ${JSON.stringify({ ...out, citations, request_id: usage?.requestId ?? ctx.requestId })}\n\n`;
        } catch (e) {
          // E.g. the conversation was deleted meanwhile: the stream still ends properly.
          ctx.log.warn({ conversation: id, err: (e as Error).message }, 'chat answer not stored');
        }
        t.finish(extra);
      }
    }
  });
  return r;
}
