import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { Db } from '../db/connection.js';
import { UsageRepo, type UsageRow } from '../db/repos/usage.js';

/**
 * The usage writer: one record per AI call, appended to an in-memory batch and written in
 * one transaction per batch (every `intervalMs`, or at once when the batch is full), so a
 * call never waits for SQLite. flush() runs on shutdown (Services.close), so records are
 * not lost. Also keeps the installation's token count for the current month (licence
 * allowance admission) without reading SQLite per call.
 */
export class UsageWriter {
  private readonly repo: UsageRepo;
  private batch: UsageRow[] = [];
  private timer: NodeJS.Timeout | undefined;
  private monthStart = 0;
  private monthTokens = 0;
  /** Records written since start (tests, bench). */
  written = 0;

  constructor(
    db: Db,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly opts: { intervalMs: number; maxBatch: number } = { intervalMs: 50, maxBatch: 500 },
  ) {
    this.repo = new UsageRepo(db);
  }

  record(row: UsageRow): void {
    this.batch.push(row);
    this.addTokens(row.createdAt, row.promptTokens + row.completionTokens);
    if (this.batch.length >= this.opts.maxBatch) this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.opts.intervalMs);
      this.timer.unref();
    }
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.batch.length) return;
    const rows = this.batch;
    this.batch = [];
    try {
      this.repo.insertMany(rows);
      this.written += rows.length;
    } catch (e) {
      // Keep them for the next flush (e.g. SQLITE_BUSY); never lose records silently.
      this.batch = rows.concat(this.batch);
      this.log.error({ err: (e as Error).message, pending: this.batch.length }, 'usage records could not be written; will retry');
      if (!this.timer) {
        this.timer = setTimeout(() => this.flush(), 1000);
        this.timer.unref();
      }
    }
  }

  /** Tokens used this calendar month (UTC), installation-wide. */
  tokensThisMonth(): number {
    const start = monthStart(this.clock.now());
    if (start !== this.monthStart) {
      this.monthStart = start;
      this.monthTokens = this.repo.tokensSince(start) + this.batch.reduce((n, r) => n + (r.createdAt >= start ? r.promptTokens + r.completionTokens : 0), 0);
    }
    return this.monthTokens;
  }

  /** A record written elsewhere in its own transaction (batch lines, server/batch): count its tokens too. */
  noteWritten(row: Pick<UsageRow, 'createdAt' | 'promptTokens' | 'completionTokens'>): void {
    this.addTokens(row.createdAt, row.promptTokens + row.completionTokens);
  }

  private addTokens(at: number, n: number): void {
    if (this.monthStart && at >= this.monthStart) this.monthTokens += n;
  }
}

export function monthStart(now: number): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}
