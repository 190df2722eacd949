import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { Db } from '../db/connection.js';
import { UsageRepo, type UsageRow } from '../db/repos/usage.js';

/**
 * The usage writer: one record per AI call, appended to an in-memory batch, so a call never
 * waits for SQLite. Every `intervalMs` (or on the next turn of the event loop once the batch
 * is full) the pending records are written in slices of at most `SLICE` rows, one
 * transaction per slice and a setImmediate between slices, so a large backlog never holds
 * the event loop for more than one slice. flush() writes everything at once, synchronously
 * (shutdown in Services.close, reports), so records are not lost. Also keeps the
 * installation's token count for the current month (licence allowance admission) without
 * reading SQLite per call.
 */
const SLICE = 64;

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
    if (this.draining) return; // the running drain picks it up
    if (this.batch.length >= this.opts.maxBatch) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.draining = setImmediate(this.drainStep);
    } else if (!this.timer) {
      this.timer = setTimeout(this.startDrain, this.opts.intervalMs);
      this.timer.unref();
    }
  }

  /** Writes every pending record now, synchronously (shutdown, reports, tests). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.draining) clearImmediate(this.draining);
    this.draining = undefined;
    this.write(this.batch.length);
  }

  private draining: NodeJS.Immediate | undefined;

  private readonly startDrain = (): void => {
    this.timer = undefined;
    this.drainStep();
  };

  /** One slice, then yield to the event loop while records are pending. */
  private readonly drainStep = (): void => {
    this.draining = undefined;
    if (!this.write(Math.min(SLICE, this.batch.length))) return;
    if (this.batch.length) this.draining = setImmediate(this.drainStep);
  };

  /** Writes the oldest `n` pending records in one transaction; false (and a retry in 1 s) when SQLite refused. */
  private write(n: number): boolean {
    if (!n) return true;
    const rows = n === this.batch.length ? this.batch : this.batch.slice(0, n);
    this.batch = n === this.batch.length ? [] : this.batch.slice(n);
    try {
      this.repo.insertMany(rows);
      this.written += rows.length;
      return true;
    } catch (e) {
      // Keep them for the next flush (e.g. SQLITE_BUSY); never lose records silently.
      this.batch = rows.concat(this.batch);
      this.log.error({ err: (e as Error).message, pending: this.batch.length }, 'usage records could not be written; will retry');
      if (!this.timer) {
        this.timer = setTimeout(this.startDrain, 1000);
        this.timer.unref();
      }
      return false;
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
