import type { Logger } from 'pino';

/**
 * Rows appended in memory and written to the database off the caller's path, in batches:
 * every `intervalMs`, or on the next turn of the event loop once `maxBatch` rows wait. A
 * backlog is written in slices of `slice` rows, one write (a multi-row INSERT) each, one at a
 * time, yielding to the event loop between them, so it never holds the loop (SQLite) or a
 * pool (PostgreSQL) for more than one slice. `flush()` writes everything pending (shutdown,
 * reports, reads that must see the rows); it starts at once, so on SQLite the rows are in
 * the database before `flush()` returns its promise. A refused write (SQLITE_BUSY, a lost
 * PostgreSQL connection …) keeps the rows and tries again in a second. Used by the usage
 * records and the stored call contents, one row per AI call each.
 */
export interface BatchedWriterOptions<T> {
  /** Writes rows in one statement or transaction (throws or rejects to keep them). */
  readonly insertMany: (rows: T[]) => void | Promise<void>;
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
  /** Writes in progress and their rows. The drain runs one at a time; flush() adds one at once (see flush). */
  private readonly writing = new Map<Promise<boolean>, T[]>();
  /**
   * The commit group of settled(): resolved when the write that takes the rows waiting now
   * (all of them, not a slice) ends. Rows pushed while a write runs join the next group, so
   * under load one statement commits many callers' rows (group commit).
   */
  private group: { promise: Promise<void>; resolve: () => void } | undefined;
  /** The last write failed (cleared by the next that succeeds). */
  private failing = false;
  /** Rows written, and rows dropped over `maxPending`, since start (tests, diagnostics). */
  written = 0;
  dropped = 0;

  constructor(private readonly o: BatchedWriterOptions<T>) {}

  /** The rows not written yet (being written or waiting), oldest first. */
  get pending(): readonly T[] {
    return this.writing.size ? [...this.writing.values()].flat().concat(this.rows) : this.rows;
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
    if (this.draining || this.writing.size) return; // the running drain picks it up
    if (this.rows.length >= this.o.maxBatch) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.draining = setImmediate(this.drainStep);
    } else if (!this.timer) {
      this.timer = setTimeout(this.startDrain, this.o.intervalMs);
      this.timer.unref();
    }
  }

  /**
   * Writes every pending row now and resolves when they (and the writes in progress) are
   * written. The write starts before this returns, without waiting for a write in progress,
   * so on SQLite (whose statements run synchronously) the rows are in the database at once.
   * Never rejects: rows the database refused are kept, logged and retried in a second.
   */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.draining) clearImmediate(this.draining);
    this.draining = undefined;
    const running = [...this.writing.keys()];
    const mine = this.write(this.rows.length);
    await Promise.all([...running, mine]);
  }

  /**
   * Resolves once every row pushed so far has been written (or its write failed: then the rows
   * stay queued for the retry and the caller is not held up by a database that refuses writes).
   * Unlike flush() it does not start a write beside the running one: the rows waiting now are
   * written at once when nothing is being written, else as one write right after the running
   * one ends. Used to answer a call only after its usage record is in the database, so a
   * process killed after answering loses no record of an answered call.
   */
  settled(): Promise<void> {
    // While the database refuses writes the rows wait in memory for the retry (as without
    // settled()); answers are not held up meanwhile.
    if (this.failing) return RESOLVED;
    const running = [...this.writing.keys()];
    if (!this.rows.length) return running.length ? Promise.all(running).then(noop) : RESOLVED;
    if (!this.group) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.group = { promise, resolve };
    }
    if (!running.length && !this.draining) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      // Next turn of the event loop: rows of every call finishing in this turn go in one write.
      this.draining = setImmediate(this.drainStep);
    }
    return running.length ? Promise.all([...running, this.group.promise]).then(noop) : this.group.promise;
  }

  private readonly startDrain = (): void => {
    this.timer = undefined;
    this.drainStep();
  };

  /** One slice, then (when it is written) the next on the next turn of the event loop. */
  private readonly drainStep = (): void => {
    this.draining = undefined;
    if (this.writing.size) return; // the write in progress schedules the next step when it ends
    // write() never rejects (a refused write is logged and retried). A commit group waiting
    // (settled()) takes every waiting row, so it ends with this one write.
    void this.write(this.group ? this.rows.length : Math.min(this.o.slice, this.rows.length));
  };

  /** Writes the oldest `n` rows in one call of insertMany; false (and a retry in 1 s) when the database refused. Never rejects. */
  private write(n: number): Promise<boolean> {
    if (!n) return Promise.resolve(true);
    const rows = n === this.rows.length ? this.rows : this.rows.slice(0, n);
    this.rows = n === this.rows.length ? [] : this.rows.slice(n);
    // Every waiting row is in this write: its commit group ends with it.
    const group = this.rows.length === 0 ? this.group : undefined;
    if (group) this.group = undefined;
    let p!: Promise<boolean>;
    const done = (ok: boolean, e?: unknown): boolean => {
      this.writing.delete(p);
      group?.resolve();
      this.failing = !ok;
      if (ok) {
        this.written += rows.length;
        if (this.group && this.rows.length && !this.draining && !this.writing.size) {
          // A commit group waits for rows pushed during this write: write them now, not at the timer.
          if (this.timer) clearTimeout(this.timer);
          this.timer = undefined;
          this.draining = setImmediate(this.drainStep);
        }
        // Rows pushed meanwhile (or the rest of a backlog): the next slice on the next turn.
        if (this.rows.length && !this.timer && !this.draining && !this.writing.size) this.draining = setImmediate(this.drainStep);
        return true;
      }
      // Kept for the next attempt; the message is the database's (never row content).
      this.rows = rows.concat(this.rows);
      this.o.log.error({ err: (e as Error)?.message, pending: this.rows.length }, `${this.o.what} could not be written; will retry`);
      if (!this.timer) {
        this.timer = setTimeout(this.startDrain, 1000);
        this.timer.unref();
      }
      return false;
    };
    try {
      // Called synchronously: on SQLite the statement runs before this returns.
      const r = this.o.insertMany(rows);
      p = r instanceof Promise ? r.then(() => done(true), (e: unknown) => done(false, e)) : Promise.resolve(true);
      if (r instanceof Promise) this.writing.set(p, rows);
      else done(true);
    } catch (e) {
      done(false, e);
      p = Promise.resolve(false);
    }
    return p;
  }
}

const RESOLVED: Promise<void> = Promise.resolve();
const noop = (): void => undefined;
