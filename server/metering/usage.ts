import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { Db } from '../db/connection.js';
import { BatchedWriter } from '../db/batched-writer.js';
import { UsageRepo, type UsageRow } from '../db/repos/usage.js';

/**
 * The usage writer: one record per AI call, queued in a {@link BatchedWriter} so a call never
 * waits for SQLite (written every `intervalMs`, or at once when `maxBatch` wait, in slices of
 * 64 rows; flush() writes everything synchronously at shutdown and for reports, so records
 * are not lost). Also keeps the installation's token count for the current month (licence
 * allowance admission) without reading SQLite per call.
 */
export class UsageWriter {
  private readonly repo: UsageRepo;
  private readonly writer: BatchedWriter<UsageRow>;
  private monthStart = 0;
  private monthTokens = 0;

  constructor(
    db: Db,
    private readonly clock: Clock,
    log: Logger,
    opts: { intervalMs: number; maxBatch: number } = { intervalMs: 50, maxBatch: 500 },
  ) {
    this.repo = new UsageRepo(db);
    this.writer = new BatchedWriter({ insertMany: (rows) => this.repo.insertMany(rows), log, what: 'usage records', intervalMs: opts.intervalMs, maxBatch: opts.maxBatch, slice: 64 });
  }

  /** Records written since start (tests, bench). */
  get written(): number {
    return this.writer.written;
  }

  record(row: UsageRow): void {
    this.writer.push(row);
    this.addTokens(row.createdAt, row.promptTokens + row.completionTokens);
  }

  /** Writes every pending record now, synchronously (shutdown, reports, tests). */
  flush(): void {
    this.writer.flush();
  }

  /** Tokens used this calendar month (UTC), installation-wide. */
  tokensThisMonth(): number {
    const start = monthStart(this.clock.now());
    if (start !== this.monthStart) {
      this.monthStart = start;
      this.monthTokens = this.repo.tokensSince(start) + this.writer.pending.reduce((n, r) => n + (r.createdAt >= start ? r.promptTokens + r.completionTokens : 0), 0);
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
