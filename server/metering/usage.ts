import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { BatchedWriter } from '../db/batched-writer.js';
import { UsageRepo, type UsageRow } from '../db/repos/usage.js';
import type { Store } from '../db/store.js';

/**
 * The usage writer: one record per AI call, queued in a {@link BatchedWriter} so a call never
 * waits for the database (written every `intervalMs`, or at once when `maxBatch` wait, in
 * slices of 64 rows, one multi-row INSERT each; flush() writes everything at shutdown and for
 * reports, so records are not lost). Also keeps the installation's token count for the current
 * month (licence allowance admission) without reading the database per call: the month's
 * ledger is read once (`loadMonth`, at start and when the month turns) and counted up from
 * the records this process writes.
 */
export class UsageWriter {
  private readonly repo: UsageRepo;
  private readonly writer: BatchedWriter<UsageRow>;
  private monthStart = 0;
  private monthTokens = 0;

  constructor(
    store: Store,
    private readonly clock: Clock,
    private readonly log: Logger,
    opts: { intervalMs: number; maxBatch: number } = { intervalMs: 50, maxBatch: 500 },
  ) {
    this.repo = new UsageRepo(store);
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

  /**
   * Resolves when every record made so far is in the database (group commit: one write for the
   * records of all calls finishing together). The gateway awaits it before a call's answer
   * ends, so a replica killed (SIGKILL, OOM) after a client got its answer has written that
   * answer's record; without it the last ≤ intervalMs of records would die with the process.
   * Resolves at once while the database refuses writes (records then wait in memory for the retry).
   */
  settled(): Promise<void> {
    return this.writer.settled();
  }

  /** Writes every pending record now (shutdown, reports, tests); on SQLite they are written before this returns. */
  flush(): Promise<void> {
    return this.writer.flush();
  }

  /**
   * Reads this month's installation-wide tokens from the ledger, plus the records not written
   * yet (the server awaits it at start; tokensThisMonth() calls it when the month turns and
   * counts this process's calls from 0 until it has read).
   */
  async loadMonth(): Promise<void> {
    const start = monthStart(this.clock.now());
    const ledger = await this.repo.tokensSince(start);
    if (monthStart(this.clock.now()) !== start) return; // the month turned meanwhile; the next call reads again
    const pending = this.writer.pending.reduce((n, r) => n + (r.createdAt >= start ? r.promptTokens + r.completionTokens : 0), 0);
    this.monthStart = start;
    this.monthTokens = ledger + pending;
  }

  /** Tokens used this calendar month (UTC), installation-wide (synchronous: the licence check runs it per AI call). */
  tokensThisMonth(): number {
    const start = monthStart(this.clock.now());
    if (start !== this.monthStart) {
      this.monthStart = start;
      this.monthTokens = 0;
      // One query off the call path; a failure keeps counting this process's calls.
      void this.loadMonth().catch((e: Error) => this.log.warn({ err: e.message }, "could not read this month's token ledger"));
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
