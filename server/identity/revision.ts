import { eq, sql } from 'drizzle-orm';
import type { Db } from '../db/connection.js';
import { revisions } from '../db/schema.js';

/**
 * A change counter in the database that every process polls. Anything that changes who
 * may authenticate (key revocation, user deactivation, role changes, tenant suspension)
 * bumps it in the same process synchronously and, through the poll, in every other
 * process (API, worker, and changes the CLI makes directly in the database) within
 * `pollMs`. Listeners drop their caches.
 */
export class Revision {
  private last: number;
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners = new Set<() => void>();
  private readonly read: () => number;

  constructor(
    private readonly db: Db,
    private readonly name = 'identity',
  ) {
    const stmt = db.$client.prepare('SELECT value FROM revisions WHERE name = ?').pluck();
    this.read = () => (stmt.get(this.name) as number | undefined) ?? 0;
    this.last = this.read();
  }

  current(): number {
    return this.last;
  }

  bump(): void {
    this.db
      .insert(revisions)
      .values({ name: this.name, value: 1 })
      .onConflictDoUpdate({ target: revisions.name, set: { value: sql`${revisions.value} + 1` } })
      .run();
    this.check();
  }

  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Compares with the stored value; notifies listeners when it moved. */
  check(): void {
    const now = this.read();
    if (now !== this.last) {
      this.last = now;
      for (const fn of this.listeners) fn();
    }
  }

  start(pollMs = 200): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      try {
        this.check();
      } catch {
        // The database is closing; the next tick (if any) retries.
      }
    }, pollMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

export function readRevision(db: Db, name = 'identity'): number {
  return db.select().from(revisions).where(eq(revisions.name, name)).get()?.value ?? 0;
}
