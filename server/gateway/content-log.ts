import type { Logger } from 'pino';
import { z } from 'zod';
import type { AuditLog } from '../audit/log.js';
import type { Clock } from '../clock.js';
import type { SecretBox } from '../config/secret-box.js';
import { requireTenant, type RequestContext } from '../context.js';
import { BatchedWriter } from '../db/batched-writer.js';
import { ContentLogRepo, type ContentMeta, type ContentRow } from '../db/repos/content-log.js';
import type { UsageRow } from '../db/repos/usage.js';
import { secretAad } from '../db/secret-columns.js';
import type { Store } from '../db/store.js';
import type { TenantStore } from '../db/tenant-store.js';
import { page, type Page } from '../identity/deps.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import { ChunkFold } from '../providers/chunk-fold.js';
import type { ChatCompletionChunk } from '../providers/index.js';
import type { ContentLoggingOn } from '../routing/policy.js';
import type { PolicyCache } from './policy-cache.js';

/**
 * Opt-in content logging: what a call sent and what it received, for tenants that turned
 * it on (tenant setting `gateway.content_logging`, off by default) while their plan has the
 * `content_logging` capability. Prompts and completions are customer data: they go only to
 * `call_contents`, encrypted with the master key (SecretBox, AAD bound to the row), never to
 * pino logs, the audit log or metrics.
 *
 * The call path (service.ts) pays nothing when it is off: one property read on the cached
 * tenant policy. When on, `begin()` returns a ContentCapture that collects the answer (the
 * streamed deltas as they are relayed, or the unary result) and `end()` encrypts the
 * document and queues the row; rows are written in batches off the call path, like usage
 * records (server/metering/usage.ts): one multi-row INSERT per slice, asynchronously (the
 * call never waits for it), and flushed on close.
 */
export const CONTENT_LOGGING_SETTING = 'gateway.content_logging';
export const DEFAULT_RETENTION_DAYS = 30;
const DAY = 86_400_000;
const TABLE = 'call_contents';
const COLUMN = 'content';

const retentionDays = z.number().int().min(1).max(3650);
const storedSchema = z.object({ enabled: z.boolean(), retention_days: retentionDays });
/** PUT body: either field may be left out (it keeps its value). */
export const contentLoggingInput = z.object({ enabled: z.boolean().optional(), retention_days: retentionDays.optional() }).strict();

export interface ContentLogging {
  readonly enabled: boolean;
  readonly retentionDays: number;
}
export const CONTENT_LOGGING_OFF: ContentLogging = { enabled: false, retentionDays: DEFAULT_RETENTION_DAYS };

export function parseContentLogging(json: string | undefined): ContentLogging {
  if (!json) return CONTENT_LOGGING_OFF;
  try {
    const v = storedSchema.parse(JSON.parse(json));
    return { enabled: v.enabled, retentionDays: v.retention_days };
  } catch {
    // A setting that does not parse stores nothing: off is the safe reading for customer data.
    return CONTENT_LOGGING_OFF;
  }
}

export function contentLoggingJson(c: ContentLogging) {
  return { enabled: c.enabled, retention_days: c.retentionDays };
}

// ---- capture (one per call, only when enabled) ------------------------------------------

/** What one call sent and received, collected while the call runs. */
export class ContentCapture {
  private streamed: ChunkFold | undefined;
  private response: unknown = null;

  constructor(
    private readonly sink: ContentLog,
    readonly keepMs: number,
    /** The client's request as sent (messages/tools, or embedding input), before any redaction for the upstream. */
    readonly request: unknown,
  ) {}

  /** A streamed chunk, as relayed to the client: deltas are concatenated per choice. */
  chunk(c: ChatCompletionChunk): void {
    (this.streamed ??= new ChunkFold()).add(c);
  }

  /** A unary answer, as returned to the client. Embeddings keep only their shape, never the vectors. */
  result(endpoint: 'chat' | 'embeddings', r: unknown): void {
    const body = (r ?? {}) as { choices?: unknown; data?: unknown };
    if (endpoint === 'embeddings') {
      const data = Array.isArray(body.data) ? (body.data as { embedding?: unknown }[]) : [];
      const first = data[0]?.embedding;
      this.response = { embeddings: data.length, dimensions: Array.isArray(first) ? first.length : null };
      return;
    }
    const choices = Array.isArray(body.choices) ? (body.choices as { index?: number; message?: Record<string, unknown>; finish_reason?: string | null }[]) : [];
    this.response = {
      choices: choices.map((c, i) => ({
        index: c.index ?? i,
        message: {
          role: c.message?.role ?? 'assistant',
          content: c.message?.content ?? null,
          ...(c.message?.tool_calls ? { tool_calls: c.message.tool_calls } : {}),
          ...(c.message?.refusal ? { refusal: c.message.refusal } : {}),
        },
        finish_reason: c.finish_reason ?? null,
      })),
    };
  }

  /** The call is over (usage record made): queue the encrypted row. Never throws. */
  end(row: UsageRow): void {
    this.sink.store(this, row);
  }

  responseDoc(): unknown {
    if (!this.streamed) return this.response;
    return {
      choices: this.streamed.choices.filter(Boolean).map((a) => ({
        index: a.index,
        message: { role: a.role, content: a.content, ...(a.toolCalls ? { tool_calls: a.toolCalls.filter(Boolean) } : {}) },
        finish_reason: a.finishReason,
      })),
    };
  }
}

// ---- the log: capture, batched writes, settings, reads, retention ------------------------

/** One stored call as the admin API returns it. */
export interface ContentEntry {
  readonly id: string;
  readonly request_id: string;
  readonly usage_id: string | null;
  readonly endpoint: string;
  readonly created_at: string;
  readonly expires_at: string;
  readonly model: string | null;
  readonly stream: boolean;
  readonly status: string;
  readonly error_code: string | null;
  readonly request: unknown;
  readonly response: unknown;
}

/** Rows per write (one multi-row INSERT; documents are larger than usage rows). */
const SLICE = 32;
/** Pending rows kept while SQLite refuses writes; beyond this the oldest are dropped (and counted). */
const MAX_PENDING = 5000;

export interface ContentLogDeps {
  readonly store: Store;
  readonly tenantStore: TenantStore;
  readonly secrets: SecretBox;
  readonly clock: Clock;
  readonly log: Logger;
  readonly policies: PolicyCache;
  readonly audit: AuditLog;
  /** Plan capability `content_logging` of the tenant (metering's plan cache). */
  readonly capable: (tenantId: string) => boolean;
  readonly flushMs?: number;
  readonly maxBatch?: number;
}

export class ContentLog {
  private readonly repo: ContentLogRepo;
  private readonly writer: BatchedWriter<ContentRow>;

  constructor(private readonly d: ContentLogDeps) {
    this.repo = new ContentLogRepo(d.store, d.tenantStore);
    this.writer = new BatchedWriter({
      insertMany: (rows) => this.repo.insertMany(rows),
      log: d.log,
      what: 'call contents',
      intervalMs: d.flushMs ?? 200,
      maxBatch: d.maxBatch ?? 100,
      slice: SLICE,
      maxPending: MAX_PENDING,
    });
  }

  /** Rows written since start, and rows lost (tests, diagnostics). */
  get written(): number {
    return this.writer.written;
  }
  get dropped(): number {
    return this.writer.dropped;
  }

  /**
   * Called by the gateway only when the tenant's cached policy has content logging on.
   * Returns undefined (nothing is captured) when the plan no longer has the capability.
   */
  begin(ctx: RequestContext, on: ContentLoggingOn, endpoint: 'chat' | 'embeddings', body: Record<string, unknown>): ContentCapture | undefined {
    const tenantId = ctx.tenant?.id;
    if (!tenantId || !this.d.capable(tenantId)) return undefined;
    const request = endpoint === 'chat' ? { messages: body.messages, ...(body.tools !== undefined ? { tools: body.tools } : {}) } : { input: body.input };
    return new ContentCapture(this, on.retentionDays * DAY, request);
  }

  /** Encrypts the call's document and queues its row (ContentCapture.end). */
  store(c: ContentCapture, row: UsageRow): void {
    let content: string;
    const id = newId('cnt', row.createdAt);
    try {
      const doc = JSON.stringify({
        model: row.alias,
        request_id: row.requestId,
        endpoint: row.endpoint,
        stream: row.stream,
        status: row.status,
        error_code: row.errorCode,
        request: c.request,
        response: c.responseDoc(),
      });
      content = this.d.secrets.encrypt(doc, secretAad(TABLE, COLUMN, id));
    } catch (e) {
      // Only the error's name: a serialisation message could quote the content.
      this.d.log.error({ err: (e as Error)?.name, requestId: row.requestId }, 'call content could not be stored');
      return;
    }
    this.writer.push({ id, tenantId: row.tenantId, requestId: row.requestId, usageId: row.id, endpoint: row.endpoint, content, createdAt: row.createdAt, expiresAt: row.createdAt + c.keepMs });
  }

  /** Writes every pending row now (shutdown, reads, tests). Never rejects (refused rows are kept and retried). */
  async flush(): Promise<void> {
    await this.writer.flush();
  }

  // ---- settings ----------------------------------------------------------------------

  async settings(ctx: RequestContext): Promise<{ setting: ContentLogging; planAllows: boolean }> {
    return { setting: await this.d.policies.contentLogging(ctx), planAllows: this.d.capable(requireTenant(ctx).id) };
  }

  /**
   * Changes the tenant's setting (audited, both ways). `enabled: true` needs the plan's
   * `content_logging` capability. A shorter retention also applies to rows already stored.
   */
  async update(ctx: RequestContext, input: z.infer<typeof contentLoggingInput>): Promise<ContentLogging> {
    const tenantId = requireTenant(ctx).id;
    const before = await this.d.policies.contentLogging(ctx);
    if (input.enabled === true && !this.d.capable(tenantId)) {
      await this.d.audit.record(ctx, { action: 'tenant.content_logging', outcome: 'denied', reason: 'plan_forbidden', target: { type: 'tenant', id: tenantId }, details: { requested: input } });
      throw new AppError(403, 'plan_forbidden', "The tenant's plan does not include content_logging, so content logging cannot be turned on. A platform administrator can assign a plan that includes it.");
    }
    const after: ContentLogging = { enabled: input.enabled ?? before.enabled, retentionDays: input.retention_days ?? before.retentionDays };
    await this.d.policies.writeContentLogging(ctx, after, ctx.clock.now());
    let shortened = 0;
    if (after.retentionDays < before.retentionDays) {
      await this.flush();
      shortened = await this.repo.shortenRetention(ctx, after.retentionDays * DAY);
    }
    await this.d.audit.record(ctx, {
      action: 'tenant.content_logging',
      target: { type: 'tenant', id: tenantId },
      details: { before: contentLoggingJson(before), after: contentLoggingJson(after), ...(shortened ? { expiry_shortened: shortened } : {}) },
    });
    return after;
  }

  // ---- reads (admin API; every read audited) --------------------------------------------

  /** The stored calls of one request id in the context's tenant. Unknown, expired or another tenant's: 404 (audited). */
  async read(ctx: RequestContext, requestId: string): Promise<ContentEntry[]> {
    await this.flush(); // a call that just finished in this process is readable at once
    const rows = await this.repo.byRequest(ctx, requestId, ctx.clock.now());
    const target = { type: 'call_content', id: requestId };
    if (!rows.length) {
      await this.d.audit.record(ctx, { action: 'content.read', outcome: 'denied', reason: 'not_found', target });
      throw new AppError(404, 'not_found', 'No stored content for that request id (unknown, expired, or content logging was off).');
    }
    const out = rows.map((r): ContentEntry => {
      const doc = JSON.parse(this.d.secrets.decrypt(r.content, secretAad(TABLE, COLUMN, r.id))) as Record<string, unknown>;
      return {
        ...metaJson(r),
        model: (doc.model as string | null) ?? null,
        stream: doc.stream === true,
        status: String(doc.status ?? ''),
        error_code: (doc.error_code as string | null) ?? null,
        request: doc.request ?? null,
        response: doc.response ?? null,
      };
    });
    await this.d.audit.record(ctx, { action: 'content.read', target, details: { entries: out.length } });
    return out;
  }

  /** Which calls have stored content (newest first): ids and times only, nothing decrypted. */
  async list(ctx: RequestContext, o: { limit: number; cursor?: string }): Promise<Page<ReturnType<typeof metaJson>>> {
    await this.flush();
    const rows = await this.repo.page(ctx, { limit: o.limit + 1, now: ctx.clock.now(), ...(o.cursor ? { beforeId: o.cursor } : {}) });
    await this.d.audit.record(ctx, { action: 'content.list', target: { type: 'tenant', id: requireTenant(ctx).id }, details: { entries: Math.min(rows.length, o.limit) } });
    return page(rows, o.limit, (r) => r.id, metaJson);
  }

  // ---- retention -----------------------------------------------------------------------

  /** Deletes every stored call past its expiry (all tenants; the retention schedule). */
  async purgeExpired(): Promise<number> {
    await this.flush();
    const n = await this.repo.purgeExpired(this.d.clock.now());
    if (n) this.d.log.info({ deleted: n }, 'purged stored call contents past their retention');
    return n;
  }

  close(): Promise<void> {
    return this.flush();
  }
}

function metaJson(r: ContentMeta) {
  return {
    id: r.id,
    request_id: r.requestId,
    usage_id: r.usageId,
    endpoint: r.endpoint,
    created_at: new Date(r.createdAt).toISOString(),
    expires_at: new Date(r.expiresAt).toISOString(),
  };
}
