import { and, desc, eq, gt, inArray, lt, lte, sql } from 'drizzle-orm';
import type { RequestContext } from '../../context.js';
import { requireTenant } from '../../context.js';
import type { callContents } from '../schema.js';
import type { Store } from '../store.js';
import type { TenantStore } from '../tenant-store.js';

/**
 * Stored call contents (tenant-owned `call_contents`), written in batches by
 * server/gateway/content-log.ts, on either dialect. Each row carries the tenant id the gateway
 * took from the request context (requireTenant), as the usage writer does. Reads take the
 * context and apply its tenant, and never return a row past its expiry. Statements crossing
 * tenants, named here: insertMany (rows of several tenants' calls, each stamped by the
 * gateway) and purgeExpired (the retention job).
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
  constructor(
    private readonly store: Store,
    private readonly data: TenantStore,
  ) {}

  /** One multi-row INSERT (the writer's batch slice). */
  async insertMany(rows: ContentRow[]): Promise<void> {
    if (rows.length) await this.store.run(this.store.q.insert(this.store.t.callContents).values(rows));
  }

  /** The tenant's stored calls with this request id (normally one), unexpired. */
  byRequest(ctx: RequestContext, requestId: string, now: number): Promise<StoredContent[]> {
    return this.data.callContents.list(ctx, (c) => and(eq(c.requestId, requestId), gt(c.expiresAt, now)));
  }

  /** Newest first, without the content column (a list never decrypts anything). */
  page(ctx: RequestContext, o: { limit: number; beforeId?: string; now: number }): Promise<ContentMeta[]> {
    const c = this.store.t.callContents;
    return this.store.all(
      this.store.q
        .select({ id: c.id, requestId: c.requestId, usageId: c.usageId, endpoint: c.endpoint, createdAt: c.createdAt, expiresAt: c.expiresAt })
        .from(c)
        .where(and(eq(c.tenantId, requireTenant(ctx).id), gt(c.expiresAt, o.now), o.beforeId ? lt(c.id, o.beforeId) : undefined))
        .orderBy(desc(c.id))
        .limit(o.limit),
    );
  }

  /** Deletes every row whose expiry has passed (all tenants), a slice per statement. */
  async purgeExpired(now: number): Promise<number> {
    const { q, t } = this.store;
    const c = t.callContents;
    let n = 0;
    for (;;) {
      const slice = q.select({ id: c.id }).from(c).where(lte(c.expiresAt, now)).limit(PURGE_SLICE);
      const changes = await this.store.run(this.store.q.delete(c).where(inArray(c.id, slice)));
      n += changes;
      if (changes < PURGE_SLICE) return n;
    }
  }

  /** A shorter retention applies to rows already stored too (a longer one only to new rows). */
  shortenRetention(ctx: RequestContext, retentionMs: number): Promise<number> {
    const c = this.store.t.callContents;
    const ms = sql.raw(String(Math.trunc(retentionMs)));
    // created_at + the retention: a number of ms on SQLite, an interval on a timestamptz.
    const cut = this.store.dialect === 'postgres' ? sql`(${c.createdAt} + ${ms}::bigint * interval '1 millisecond')` : sql`(${c.createdAt} + ${ms})`;
    return this.data.callContents.update(ctx, (t) => sql`${t.expiresAt} > ${cut}`, { expiresAt: cut as unknown as number });
  }
}
