import type { Logger } from 'pino';

/**
 * Rows appended in memory and written to SQLite off the caller's path, in batches: every
 * `intervalMs`, or on the next turn of the event loop once `maxBatch` rows wait. A backlog is
 * written in slices of `slice` rows, one transaction each and a setImmediate between them,
 * so it never holds the event loop for more than one slice. `flush()` writes everything at
 * once, synchronously (shutdown, reports, reads that must see the rows). A refused write
 * (SQLITE_BUSY …) keeps the rows and tries again in a second. Used by the usage records and
 * the stored call contents, one row per AI call each.
 */
export interface BatchedWriterOptions<T> {
  /** Writes rows in one transaction (throws to keep them). */
  readonly insertMany: (rows: T[]) => void;
  readonly log: Logger;
  /** What the rows are, for the log lines ("usage records"). */
  readonly what: string;
  readonly intervalMs: number;
  readonly maxBatch: number;
  readonly slice: number;
  /** Rows kept while writes are refused; beyond it the oldest are dropped and counted. Unbounded when absent. */
  readonly maxPending?: number;
}

export class BatchedWriter<T> {
  private rows: T[] = [];
  private timer: NodeJS.Timeout | undefined;
  private draining: NodeJS.Immediate | undefined;
  /** Rows written, and rows dropped over `maxPending`, since start (tests, diagnostics). */
  written = 0;
  dropped = 0;

  constructor(private readonly o: BatchedWriterOptions<T>) {}

  /** The rows not written yet, oldest first. */
  get pending(): readonly T[] {
    return this.rows;
  }

  push(row: T): void {
    this.rows.push(row);
    const max = this.o.maxPending;
    if (max !== undefined && this.rows.length > max) {
      const n = this.rows.length - max;
      this.rows.splice(0, n);
      this.dropped += n;
      this.o.log.error({ dropped: n }, `${this.o.what} dropped: the database has refused writes for too long`);
    }
    if (this.draining) return; // the running drain picks it up
    if (this.rows.length >= this.o.maxBatch) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.draining = setImmediate(this.drainStep);
    } else if (!this.timer) {
      this.timer = setTimeout(this.startDrain, this.o.intervalMs);
      this.timer.unref();
    }
  }

  /** Writes every pending row now, synchronously. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.draining) clearImmediate(this.draining);
    this.draining = undefined;
    this.write(this.rows.length);
  }

  private readonly startDrain = (): void => {
    this.timer = undefined;
    this.drainStep();
  };

  /** One slice, then yield to the event loop while rows are pending. */
  private readonly drainStep = (): void => {
    this.draining = undefined;
    if (!this.write(Math.min(this.o.slice, this.rows.length))) return;
    if (this.rows.length) this.draining = setImmediate(this.drainStep);
  };

  /** Writes the oldest `n` rows in one transaction; false (and a retry in 1 s) when SQLite refused. */
  private write(n: number): boolean {
    if (!n) return true;
    const rows = n === this.rows.length ? this.rows : this.rows.slice(0, n);
    this.rows = n === this.rows.length ? [] : this.rows.slice(n);
    try {
      this.o.insertMany(rows);
      this.written += rows.length;
      return true;
    } catch (e) {
      // Kept for the next attempt; the message is SQLite's (never row content).
      this.rows = rows.concat(this.rows);
      this.o.log.error({ err: (e as Error).message, pending: this.rows.length }, `${this.o.what} could not be written; will retry`);
      if (!this.timer) {
        this.timer = setTimeout(this.startDrain, 1000);
        this.timer.unref();
      }
      return false;
    }
  }
}
