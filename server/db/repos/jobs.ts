import { and, asc, desc, eq, gt, inArray, isNotNull, lt, or, sql } from 'drizzle-orm';
import type { RequestContext } from '../../context.js';
import { requireTenant } from '../../context.js';
import type { batches, batchLines, files } from '../schema.js';
import type { Store } from '../store.js';
import type { TenantStore } from '../tenant-store.js';
import type { UsageRow } from './usage.js';

/**
 * The SQL for files, batches and batch lines (tenant-owned; through the tenant store) and for
 * the maintenance schedules, on the async store (SQLite or PostgreSQL). Cross-tenant reads,
 * each with its reason:
 *  - batchTenant: the worker learns a batch's tenant from the job (ids only in Redis);
 *  - openBatches / bumpEnqueues: the reconciler repairs batches whose jobs were lost or failed as stalled;
 *  - expiredFiles / deleteFileById / purgeSessions / purgeBatchLines: retention runs platform-wide.
 */
export type FileRow = typeof files.$inferSelect;
export type NewFile = Omit<typeof files.$inferInsert, 'tenantId'>;
export type BatchRow = typeof batches.$inferSelect;
export type NewBatch = Omit<typeof batches.$inferInsert, 'tenantId'>;
export type BatchPatch = Partial<NewBatch>;
export type BatchLineRow = typeof batchLines.$inferSelect;
/** A batch line's usage record (the tenant comes from the context). */
export type LineUsage = Omit<UsageRow, 'tenantId'>;

export const OPEN_BATCH_STATES = ['validating', 'in_progress', 'finalizing', 'cancelling'] as const;

export class JobsRepo {
  constructor(
    private readonly store: Store,
    private readonly data: TenantStore,
  ) {}

  // ---- files ----
  insertFile(ctx: RequestContext, row: NewFile): Promise<FileRow> {
    return this.data.files.insert(ctx, row);
  }
  file(ctx: RequestContext, id: string): Promise<FileRow | undefined> {
    return this.data.files.get(ctx, (f) => eq(f.id, id));
  }
  listFiles(ctx: RequestContext, o: { after?: string; limit: number; purpose?: string }): Promise<FileRow[]> {
    const f = this.store.t.files;
    return this.store.all(
      this.store.q
        .select()
        .from(f)
        .where(and(eq(f.tenantId, requireTenant(ctx).id), o.after ? lt(f.id, o.after) : undefined, o.purpose ? eq(f.purpose, o.purpose as FileRow['purpose']) : undefined))
        .orderBy(desc(f.id))
        .limit(o.limit),
    );
  }
  deleteFile(ctx: RequestContext, id: string): Promise<number> {
    return this.data.files.delete(ctx, (f) => eq(f.id, id));
  }
  async fileInUse(ctx: RequestContext, id: string): Promise<boolean> {
    return (await this.data.batches.count(ctx, (b) => and(eq(b.inputFileId, id), inArray(b.status, [...OPEN_BATCH_STATES])))) > 0;
  }
  /**
   * Deletes the file unless an open batch reads it (false = in use). One transaction, so a
   * batch created from the file meanwhile is either seen or created after the delete (and
   * then fails with file_not_found).
   */
  deleteFileIfUnused(ctx: RequestContext, id: string): Promise<boolean> {
    return this.store.tx(async () => {
      if (await this.fileInUse(ctx, id)) return false;
      await this.deleteFile(ctx, id);
      return true;
    });
  }

  // ---- batches ----
  insertBatch(ctx: RequestContext, row: NewBatch): Promise<BatchRow> {
    return this.data.batches.insert(ctx, row);
  }
  batch(ctx: RequestContext, id: string): Promise<BatchRow | undefined> {
    return this.data.batches.get(ctx, (b) => eq(b.id, id));
  }
  listBatches(ctx: RequestContext, o: { after?: string; limit: number }): Promise<BatchRow[]> {
    const b = this.store.t.batches;
    return this.store.all(
      this.store.q
        .select()
        .from(b)
        .where(and(eq(b.tenantId, requireTenant(ctx).id), o.after ? lt(b.id, o.after) : undefined))
        .orderBy(desc(b.id))
        .limit(o.limit),
    );
  }
  /** One statement: the state check (`onlyIn`) and the change cannot be separated by another writer. */
  updateBatch(ctx: RequestContext, id: string, patch: BatchPatch, onlyIn?: readonly string[]): Promise<number> {
    return this.data.batches.update(ctx, (b) => and(eq(b.id, id), onlyIn ? inArray(b.status, [...onlyIn] as BatchRow['status'][]) : undefined), patch);
  }
  /** Cross-tenant (worker): the tenant of a batch named by a job. */
  batchTenant(id: string): Promise<{ id: string; slug: string } | undefined> {
    const { batches: b, tenants: t } = this.store.t;
    return this.store.one(this.store.q.select({ id: t.id, slug: t.slug }).from(b).innerJoin(t, eq(t.id, b.tenantId)).where(eq(b.id, id)));
  }
  /** Cross-tenant (reconciler): batches not yet in a final state. */
  openBatches(): Promise<{ id: string; tenantId: string; status: string; enqueues: number; expiresAt: number }[]> {
    const b = this.store.t.batches;
    return this.store.all(
      this.store.q
        .select({ id: b.id, tenantId: b.tenantId, status: b.status, enqueues: b.enqueues, expiresAt: b.expiresAt })
        .from(b)
        .where(inArray(b.status, [...OPEN_BATCH_STATES])),
    );
  }

  /** Cross-tenant (reconciler): counts a re-enqueue (one statement: concurrent bumps both count). */
  async bumpEnqueues(id: string): Promise<void> {
    const b = this.store.t.batches;
    await this.store.run(this.store.q.update(b).set({ enqueues: sql`${b.enqueues} + 1` }).where(eq(b.id, id)));
  }

  // ---- batch lines (exactly-once bookkeeping) ----
  /** Line numbers already started (running, completed or failed). */
  async startedLines(ctx: RequestContext, batchId: string): Promise<Map<number, string>> {
    const rows = await this.data.batchLines.list(ctx, (l) => eq(l.batchId, batchId));
    return new Map(rows.map((r) => [r.line, r.status]));
  }
  /** Written before the upstream call; a crash after this never re-runs the line. */
  async startLine(ctx: RequestContext, batchId: string, line: number, customId: string, requestId: string, now: number): Promise<void> {
    await this.data.batchLines.insert(ctx, { batchId, line, customId, status: 'running', requestId, startedAt: now });
  }
  /**
   * The line's result, its usage record and the batch counters in one transaction: a
   * crash leaves either all of them or none. The counters are incremented in the statement
   * (`completed + 1`), so lines finishing at once on several workers all count.
   */
  async finishLine(
    ctx: RequestContext,
    batchId: string,
    line: number,
    r: { status: 'completed' | 'failed'; statusCode: number | null; body: string | null; error: string | null; now: number },
    usage: LineUsage | undefined,
  ): Promise<void> {
    const tenantId = requireTenant(ctx).id;
    await this.store.tx(async () => {
      if (usage) await this.data.usageRecords.insert(ctx, { ...usage, api: usage.api ?? 'chat', priceVersion: usage.priceVersion ?? null });
      await this.data.batchLines.update(ctx, (l) => and(eq(l.batchId, batchId), eq(l.line, line)), {
        status: r.status,
        statusCode: r.statusCode,
        body: r.body,
        error: r.error,
        usageId: usage?.id ?? null,
        finishedAt: r.now,
      });
      const b = this.store.t.batches;
      await this.store.run(
        this.store.q
          .update(b)
          .set(r.status === 'completed' ? { completed: sql`${b.completed} + 1` } : { failed: sql`${b.failed} + 1` })
          .where(and(eq(b.id, batchId), eq(b.tenantId, tenantId))),
      );
    });
  }
  /** Lines left `running` by a crashed worker: failed, never re-run (they may have reached the upstream). */
  async interruptRunning(ctx: RequestContext, batchId: string, error: string, now: number): Promise<number> {
    const tenantId = requireTenant(ctx).id;
    return this.store.tx(async () => {
      const n = await this.data.batchLines.update(ctx, (l) => and(eq(l.batchId, batchId), eq(l.status, 'running')), { status: 'failed', error, finishedAt: now });
      if (n) {
        const b = this.store.t.batches;
        await this.store.run(this.store.q.update(b).set({ failed: sql`${b.failed} + ${n}` }).where(and(eq(b.id, batchId), eq(b.tenantId, tenantId))));
      }
      return n;
    });
  }
  /** Lines with results, in input order (for the output and error files). */
  finishedLines(ctx: RequestContext, batchId: string): Promise<BatchLineRow[]> {
    const l = this.store.t.batchLines;
    return this.store.all(
      this.store.q
        .select()
        .from(l)
        .where(and(eq(l.batchId, batchId), eq(l.tenantId, requireTenant(ctx).id), isNotNull(l.finishedAt)))
        .orderBy(asc(l.line)),
    );
  }
  /** After the output files are written: the bodies live there now. */
  async clearLineBodies(ctx: RequestContext, batchId: string): Promise<void> {
    await this.data.batchLines.update(ctx, (l) => eq(l.batchId, batchId), { body: null });
  }
  /** The number of a batch's lines (tests, diagnostics). */
  async lineCount(ctx: RequestContext, batchId: string): Promise<number> {
    return this.data.batchLines.count(ctx, (l) => eq(l.batchId, batchId));
  }

  // ---- retention ----
  /** Cross-tenant: files past their expiry (retention). */
  expiredFiles(now: number, limit = 500): Promise<{ id: string; tenantId: string; path: string }[]> {
    const f = this.store.t.files;
    return this.store.all(
      this.store.q
        .select({ id: f.id, tenantId: f.tenantId, path: f.path })
        .from(f)
        .where(and(isNotNull(f.expiresAt), lt(f.expiresAt, now)))
        .limit(limit),
    );
  }
  async deleteFileById(id: string): Promise<void> {
    const f = this.store.t.files;
    await this.store.run(this.store.q.delete(f).where(eq(f.id, id)));
  }
  /** Ended sessions (expired, idle-expired or revoked) older than `keepMs`. */
  purgeSessions(now: number, idleMs: number, keepMs: number): Promise<number> {
    const before = now - keepMs;
    const x = this.store.t.sessions;
    return this.store.run(this.store.q.delete(x).where(or(lt(x.expiresAt, before), lt(x.lastSeenAt, before - idleMs), and(isNotNull(x.revokedAt), lt(x.revokedAt, before)))));
  }
  /** Finished batch rows older than `before` lose their per-line rows (counts stay on the batch). */
  purgeBatchLines(before: number): Promise<number> {
    const { batchLines: l, batches: b } = this.store.t;
    return this.store.run(
      this.store.q
        .delete(l)
        .where(
          inArray(
            l.batchId,
            this.store.q
              .select({ id: b.id })
              .from(b)
              .where(and(gt(b.createdAt, 0), lt(b.createdAt, before), inArray(b.status, ['completed', 'failed', 'expired', 'cancelled']))),
          ),
        ),
    );
  }
}
