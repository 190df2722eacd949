import { and, desc, eq, gt, lt } from 'drizzle-orm';
import type { RequestContext } from '../../context.js';
import { requireTenant } from '../../context.js';
import type { Db } from '../connection.js';
import { callContents } from '../schema.js';
import type { TenantData } from '../tenant-scope.js';

/**
 * Stored call contents (tenant-owned `call_contents`), written in batches by
 * server/gateway/content-log.ts. Each row carries the tenant id the gateway took from the
 * request context (requireTenant), as the usage writer does. Reads take the context and
 * apply its tenant, and never return a row past its expiry. One statement crosses tenants,
 * named here: purgeExpired (the retention job).
 */
export interface ContentRow {
  id: string;
  tenantId: string;
  requestId: string;
  usageId: string | null;
  endpoint: string;
  /** SecretBox ciphertext (AAD `call_contents.content:<id>`). */
  content: string;
  createdAt: number;
  expiresAt: number;
}

/** Rows deleted per statement by the purge, so no write transaction holds the lock for long. */
const PURGE_SLICE = 500;

export type StoredContent = typeof callContents.$inferSelect;
export type ContentMeta = Omit<StoredContent, 'content' | 'tenantId'>;

export class ContentLogRepo {
  private readonly insert;
  private readonly many;
  private readonly purgeSlice;
  private readonly shorten;

  constructor(
    private readonly db: Db,
    private readonly data: TenantData,
  ) {
    const c = db.$client;
    this.insert = c.prepare(
      `INSERT INTO call_contents (id, tenant_id, request_id, usage_id, endpoint, content, created_at, expires_at)
       VALUES (@id, @tenantId, @requestId, @usageId, @endpoint, @content, @createdAt, @expiresAt)`,
    );
    this.many = c.transaction((rows: ContentRow[]) => {
      for (const r of rows) this.insert.run(r);
    });
    this.purgeSlice = c.prepare(`DELETE FROM call_contents WHERE rowid IN (SELECT rowid FROM call_contents WHERE expires_at <= ? LIMIT ${PURGE_SLICE})`);
    this.shorten = c.prepare('UPDATE call_contents SET expires_at = created_at + @ms WHERE tenant_id = @tenantId AND expires_at > created_at + @ms');
  }

  insertMany(rows: ContentRow[]): void {
    if (rows.length) this.many(rows);
  }

  /** The tenant's stored calls with this request id (normally one), unexpired. */
  byRequest(ctx: RequestContext, requestId: string, now: number): StoredContent[] {
    return this.data.callContents.list(ctx, and(eq(callContents.requestId, requestId), gt(callContents.expiresAt, now)));
  }

  /** Newest first, without the content column (a list never decrypts anything). */
  page(ctx: RequestContext, o: { limit: number; beforeId?: string; now: number }): ContentMeta[] {
    const c = callContents;
    return this.db
      .select({ id: c.id, requestId: c.requestId, usageId: c.usageId, endpoint: c.endpoint, createdAt: c.createdAt, expiresAt: c.expiresAt })
      .from(c)
      .where(and(eq(c.tenantId, requireTenant(ctx).id), gt(c.expiresAt, o.now), o.beforeId ? lt(c.id, o.beforeId) : undefined))
      .orderBy(desc(c.id))
      .limit(o.limit)
      .all();
  }

  /** Deletes every row whose expiry has passed (all tenants), a slice per statement. */
  purgeExpired(now: number): number {
    let n = 0;
    for (;;) {
      const changes = this.purgeSlice.run(now).changes;
      n += changes;
      if (changes < PURGE_SLICE) return n;
    }
  }

  /** A shorter retention applies to rows already stored too (a longer one only to new rows). */
  shortenRetention(ctx: RequestContext, retentionMs: number): number {
    return this.shorten.run({ tenantId: requireTenant(ctx).id, ms: retentionMs }).changes;
  }
}
