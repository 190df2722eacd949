import { and, desc, eq, gte, inArray, lt, lte, notInArray, type SQL } from 'drizzle-orm';
import type { RequestContext } from '../../context.js';
import { requireTenant } from '../../context.js';
import type { callTraces } from '../schema.js';
import type { Store } from '../store.js';
import type { TenantStore } from '../tenant-store.js';

/**
 * Call traces (tenant-owned `call_traces`, issue 25): one decision record per AI call, written
 * in batches by server/traces/service.ts, on either dialect. Each row carries the tenant id the
 * gateway took from the request context (requireTenant), as the usage writer does. Reads take
 * the context and apply its tenant. Statements crossing tenants, named here: insertMany (rows
 * of several tenants' calls, each stamped by the gateway) and the purges (the retention job).
 */
export type TraceRow = typeof callTraces.$inferSelect;

export interface TraceFilter {
  readonly from?: number;
  readonly to?: number;
  readonly userId?: string;
  readonly keyId?: string;
  readonly teamId?: string;
  readonly model?: string;
  readonly deployment?: string;
  readonly status?: string;
  readonly errorCode?: string;
  readonly workflow?: string;
  readonly requestId?: string;
  /** Ids below this one (the cursor: newest first). */
  readonly beforeId?: string;
}

/** Rows per INSERT: 20 columns × 500 rows stays under both dialects' parameter limits. */
const ROWS_PER_STATEMENT = 500;
/** Rows deleted per statement by the purges, so no write transaction holds the lock for long. */
const PURGE_SLICE = 1000;

export class CallTraceRepo {
  constructor(
    private readonly store: Store,
    private readonly data: TenantStore,
  ) {}

  async insertMany(rows: readonly TraceRow[]): Promise<void> {
    if (!rows.length) return;
    const { q, t } = this.store;
    if (rows.length <= ROWS_PER_STATEMENT) {
      await this.store.run(q.insert(t.callTraces).values([...rows]));
      return;
    }
    await this.store.tx(async () => {
      for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) await this.store.run(this.store.q.insert(t.callTraces).values(rows.slice(i, i + ROWS_PER_STATEMENT)));
    });
  }

  /** The context tenant's traces matching every given filter, newest first, without the document. */
  search(ctx: RequestContext, f: TraceFilter, limit: number): Promise<Omit<TraceRow, 'trace'>[]> {
    const c = this.store.t.callTraces;
    const where: (SQL | undefined)[] = [eq(c.tenantId, requireTenant(ctx).id)];
    if (f.from !== undefined) where.push(gte(c.createdAt, f.from));
    if (f.to !== undefined) where.push(lte(c.createdAt, f.to));
    if (f.userId) where.push(eq(c.userId, f.userId));
    if (f.keyId) where.push(eq(c.keyId, f.keyId));
    if (f.teamId) where.push(eq(c.teamId, f.teamId));
    if (f.model) where.push(eq(c.model, f.model));
    if (f.deployment) where.push(eq(c.deployment, f.deployment));
    if (f.status) where.push(eq(c.status, f.status));
    if (f.errorCode) where.push(eq(c.errorCode, f.errorCode));
    if (f.workflow) where.push(eq(c.workflow, f.workflow));
    if (f.requestId) where.push(eq(c.requestId, f.requestId));
    if (f.beforeId) where.push(lt(c.id, f.beforeId));
    const { trace: _doc, ...cols } = this.store.t.callTraces;
    void _doc;
    return this.store.all(
      this.store.q
        .select({
          id: cols.id,
          tenantId: cols.tenantId,
          requestId: cols.requestId,
          usageId: cols.usageId,
          createdAt: cols.createdAt,
          api: cols.api,
          endpoint: cols.endpoint,
          model: cols.model,
          deployment: cols.deployment,
          userId: cols.userId,
          keyId: cols.keyId,
          teamId: cols.teamId,
          workflow: cols.workflow,
          classification: cols.classification,
          status: cols.status,
          httpStatus: cols.httpStatus,
          errorCode: cols.errorCode,
          latencyMs: cols.latencyMs,
          promptTokens: cols.promptTokens,
          completionTokens: cols.completionTokens,
          costMicros: cols.costMicros,
        })
        .from(c)
        .where(and(...where))
        .orderBy(desc(c.id))
        .limit(limit),
    );
  }

  /** The context tenant's traces of one request id (normally one), with their documents. */
  byRequest(ctx: RequestContext, requestId: string): Promise<TraceRow[]> {
    return this.data.callTraces.list(ctx, (c) => eq(c.requestId, requestId));
  }

  /** Deletes one tenant's traces created before `before`, a slice per statement (the retention job). */
  purgeTenant(tenantId: string, before: number): Promise<number> {
    const c = this.store.t.callTraces;
    return this.purge(and(eq(c.tenantId, tenantId), lt(c.createdAt, before))!);
  }

  /** Deletes every other tenant's traces created before `before` (the default retention). */
  purgeOthers(before: number, except: readonly string[]): Promise<number> {
    const c = this.store.t.callTraces;
    return this.purge(and(lt(c.createdAt, before), except.length ? notInArray(c.tenantId, [...except]) : undefined)!);
  }

  private async purge(where: SQL): Promise<number> {
    const { q, t } = this.store;
    const c = t.callTraces;
    let n = 0;
    for (;;) {
      const slice = q.select({ id: c.id }).from(c).where(where).limit(PURGE_SLICE);
      const changes = await this.store.run(this.store.q.delete(c).where(inArray(c.id, slice)));
      n += changes;
      if (changes < PURGE_SLICE) return n;
    }
  }
}
