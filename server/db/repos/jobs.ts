import { and, asc, desc, eq, gt, inArray, isNotNull, lt, or, sql } from 'drizzle-orm';
import type { RequestContext } from '../../context.js';
import type { Db } from '../connection.js';
import { batches, batchLines, files, sessions, tenants } from '../schema.js';
import type { TenantData } from '../tenant-scope.js';

/**
 * The SQL for files, batches and batch lines (tenant-owned; through TenantData) and for the
 * maintenance schedules. Cross-tenant reads, each with its reason:
 *  - batchTenant: the worker learns a batch's tenant from the job (ids only in Redis);
 *  - openBatches: the reconciler repairs batches whose jobs were lost or failed as stalled;
 *  - expiredFiles / purgeSessions: retention runs platform-wide.
 */
export type FileRow = typeof files.$inferSelect;
export type NewFile = Omit<typeof files.$inferInsert, 'tenantId'>;
export type BatchRow = typeof batches.$inferSelect;
export type NewBatch = Omit<typeof batches.$inferInsert, 'tenantId'>;
export type BatchPatch = Partial<NewBatch>;
export type BatchLineRow = typeof batchLines.$inferSelect;

export const OPEN_BATCH_STATES = ['validating', 'in_progress', 'finalizing', 'cancelling'] as const;

export class JobsRepo {
  constructor(
    private readonly db: Db,
    private readonly data: TenantData,
  ) {}

  // ---- files ----
  insertFile(ctx: RequestContext, row: NewFile): FileRow {
    return this.data.files.insert(ctx, row);
  }
  file(ctx: RequestContext, id: string): FileRow | undefined {
    return this.data.files.get(ctx, eq(files.id, id));
  }
  listFiles(ctx: RequestContext, o: { after?: string; limit: number; purpose?: string }): FileRow[] {
    return this.db
      .select()
      .from(files)
      .where(
        and(
          eq(files.tenantId, ctx.tenant!.id),
          o.after ? lt(files.id, o.after) : undefined,
          o.purpose ? eq(files.purpose, o.purpose as FileRow['purpose']) : undefined,
        ),
      )
      .orderBy(desc(files.id))
      .limit(o.limit)
      .all();
  }
  deleteFile(ctx: RequestContext, id: string): number {
    return this.data.files.delete(ctx, eq(files.id, id));
  }
  fileInUse(ctx: RequestContext, id: string): boolean {
    return this.data.batches.count(ctx, and(eq(batches.inputFileId, id), inArray(batches.status, [...OPEN_BATCH_STATES]))) > 0;
  }

  // ---- batches ----
  insertBatch(ctx: RequestContext, row: NewBatch): BatchRow {
    return this.data.batches.insert(ctx, row);
  }
  batch(ctx: RequestContext, id: string): BatchRow | undefined {
    return this.data.batches.get(ctx, eq(batches.id, id));
  }
  listBatches(ctx: RequestContext, o: { after?: string; limit: number }): BatchRow[] {
    return this.db
      .select()
      .from(batches)
      .where(and(eq(batches.tenantId, ctx.tenant!.id), o.after ? lt(batches.id, o.after) : undefined))
      .orderBy(desc(batches.id))
      .limit(o.limit)
      .all();
  }
  updateBatch(ctx: RequestContext, id: string, patch: BatchPatch, onlyIn?: readonly string[]): number {
    return this.data.batches.update(ctx, and(eq(batches.id, id), onlyIn ? inArray(batches.status, [...onlyIn]) : undefined)!, patch);
  }
  /** Cross-tenant (worker): the tenant of a batch named by a job. */
  batchTenant(id: string): { id: string; slug: string } | undefined {
    return this.db
      .select({ id: tenants.id, slug: tenants.slug })
      .from(batches)
      .innerJoin(tenants, eq(tenants.id, batches.tenantId))
      .where(eq(batches.id, id))
      .get();
  }
  /** Cross-tenant (reconciler): batches not yet in a final state. */
  openBatches(): { id: string; tenantId: string; status: string; enqueues: number; expiresAt: number }[] {
    return this.db
      .select({ id: batches.id, tenantId: batches.tenantId, status: batches.status, enqueues: batches.enqueues, expiresAt: batches.expiresAt })
      .from(batches)
      .where(inArray(batches.status, [...OPEN_BATCH_STATES]))
      .all();
  }

  /** Cross-tenant (reconciler): counts a re-enqueue. */
  bumpEnqueues(id: string): void {
    this.db.update(batches).set({ enqueues: sql`${batches.enqueues} + 1` }).where(eq(batches.id, id)).run();
  }

  // ---- batch lines (exactly-once bookkeeping) ----
  /** Line numbers already started (running, completed or failed). */
  startedLines(ctx: RequestContext, batchId: string): Map<number, string> {
    const rows = this.data.batchLines.list(ctx, eq(batchLines.batchId, batchId));
    return new Map(rows.map((r) => [r.line, r.status]));
  }
  /** Written before the upstream call; a crash after this never re-runs the line. */
  startLine(ctx: RequestContext, batchId: string, line: number, customId: string, requestId: string, now: number): void {
    this.data.batchLines.insert(ctx, { batchId, line, customId, status: 'running', requestId, startedAt: now });
  }
  /**
   * The line's result, its usage record and the batch counters in one transaction: a
   * crash leaves either all of them or none.
   */
  finishLine(
    ctx: RequestContext,
    batchId: string,
    line: number,
    r: { status: 'completed' | 'failed'; statusCode: number | null; body: string | null; error: string | null; now: number },
    usage: Parameters<TenantData['usageRecords']['insert']>[1] | undefined,
  ): void {
    this.db.transaction(() => {
      if (usage) this.data.usageRecords.insert(ctx, usage);
      this.data.batchLines.update(ctx, and(eq(batchLines.batchId, batchId), eq(batchLines.line, line))!, {
        status: r.status,
        statusCode: r.statusCode,
        body: r.body,
        error: r.error,
        usageId: usage?.id ?? null,
        finishedAt: r.now,
      });
      this.db
        .update(batches)
        .set(r.status === 'completed' ? { completed: sql`${batches.completed} + 1` } : { failed: sql`${batches.failed} + 1` })
        .where(and(eq(batches.id, batchId), eq(batches.tenantId, ctx.tenant!.id)))
        .run();
    });
  }
  /** Lines left `running` by a crashed worker: failed, never re-run (they may have reached the upstream). */
  interruptRunning(ctx: RequestContext, batchId: string, error: string, now: number): number {
    return this.db.transaction(() => {
      const n = this.data.batchLines.update(ctx, and(eq(batchLines.batchId, batchId), eq(batchLines.status, 'running'))!, {
        status: 'failed',
        error,
        finishedAt: now,
      });
      if (n) {
        this.db
          .update(batches)
          .set({ failed: sql`${batches.failed} + ${n}` })
          .where(and(eq(batches.id, batchId), eq(batches.tenantId, ctx.tenant!.id)))
          .run();
      }
      return n;
    });
  }
  /** Lines with results, in input order (for the output and error files). */
  finishedLines(ctx: RequestContext, batchId: string): BatchLineRow[] {
    return this.db
      .select()
      .from(batchLines)
      .where(and(eq(batchLines.batchId, batchId), eq(batchLines.tenantId, ctx.tenant!.id), isNotNull(batchLines.finishedAt)))
      .orderBy(asc(batchLines.line))
      .all();
  }
  /** After the output files are written: the bodies live there now. */
  clearLineBodies(ctx: RequestContext, batchId: string): void {
    this.data.batchLines.update(ctx, eq(batchLines.batchId, batchId), { body: null });
  }

  // ---- retention ----
  /** Cross-tenant: files past their expiry (retention). */
  expiredFiles(now: number, limit = 500): { id: string; tenantId: string; path: string }[] {
    return this.db
      .select({ id: files.id, tenantId: files.tenantId, path: files.path })
      .from(files)
      .where(and(isNotNull(files.expiresAt), lt(files.expiresAt, now)))
      .limit(limit)
      .all();
  }
  deleteFileById(id: string): void {
    this.db.delete(files).where(eq(files.id, id)).run();
  }
  /** Ended sessions (expired, idle-expired or revoked) older than `keepMs`. */
  purgeSessions(now: number, idleMs: number, keepMs: number): number {
    const before = now - keepMs;
    return this.db
      .delete(sessions)
      .where(or(lt(sessions.expiresAt, before), lt(sessions.lastSeenAt, before - idleMs), and(isNotNull(sessions.revokedAt), lt(sessions.revokedAt, before))))
      .run().changes;
  }
  /** Finished batch rows older than `before` lose their per-line rows (counts stay on the batch). */
  purgeBatchLines(before: number): number {
    return this.db
      .delete(batchLines)
      .where(
        inArray(
          batchLines.batchId,
          this.db
            .select({ id: batches.id })
            .from(batches)
            .where(and(gt(batches.createdAt, 0), lt(batches.createdAt, before), inArray(batches.status, ['completed', 'failed', 'expired', 'cancelled']))),
        ),
      )
      .run().changes;
  }
}
