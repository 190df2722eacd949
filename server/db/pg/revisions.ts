import { sql } from 'drizzle-orm';
import type pg from 'pg';
import type { PgDb } from './connection.js';

/**
 * Cross-replica cache invalidation on PostgreSQL (issue 22; docs/postgres.md, design item 4).
 * Every process caches what the hot path needs (keys, policies, catalogue) and drops it when a
 * revision counter (`revisions` table) moves. On SQLite each process polls the table. On
 * PostgreSQL a bump also sends `NOTIFY enclave_revisions` (delivered at COMMIT, so a replica
 * never sees the signal before the change), each process LISTENs on one connection, and a poll
 * every `pollMs` (1 s) stays as the fallback: a notification sent while the listening connection
 * was down is lost, the poll finds the change anyway. A revocation so reaches every replica in
 * milliseconds, and within about a second when the listener was reconnecting.
 *
 * Not wired into the server yet: the identity cache switches to it with the repository layer.
 */
export const REVISIONS_CHANNEL = 'enclave_revisions';

/** Increments revision `name` and notifies every listening process at commit; returns the new value. */
export async function bumpRevision(db: PgDb, name: string): Promise<number> {
  return db.transaction(async (tx) => {
    const r = await tx.execute<{ value: number }>(
      sql`INSERT INTO revisions (name, value) VALUES (${name}, 1) ON CONFLICT (name) DO UPDATE SET value = revisions.value + 1 RETURNING value`,
    );
    await tx.execute(sql`SELECT pg_notify(${REVISIONS_CHANNEL}, ${name})`);
    return Number(r.rows[0]!.value);
  });
}

export interface RevisionWatcherOptions {
  /** Fallback poll interval (ms). */
  readonly pollMs?: number;
  /** Wait before reconnecting a lost listening connection (ms). */
  readonly reconnectMs?: number;
  /** Errors of the listening connection or the poll (logged by the caller; the watcher recovers by itself). */
  readonly onError?: (e: Error) => void;
}

/**
 * Calls `onChange(name, value)` once for every revision that moved since the last call (or since
 * start), whether the notification or the poll noticed it first. Holds one connection of the pool
 * for LISTEN (count it in ENCLAVE_DATABASE_POOL_MAX).
 */
export class RevisionWatcher {
  private readonly known = new Map<string, number>();
  private listener: pg.PoolClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reconnecting: NodeJS.Timeout | undefined;
  private stopped = false;
  private reading: Promise<void> | undefined;
  private again = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly onChange: (name: string, value: number) => void,
    private readonly opts: RevisionWatcherOptions = {},
  ) {}

  /** Reads the current values (no onChange for them), starts listening and polling. */
  async start(): Promise<void> {
    const r = await this.pool.query<{ name: string; value: number }>('SELECT name, value FROM revisions');
    for (const row of r.rows) this.known.set(row.name, Number(row.value));
    await this.listen();
    this.timer = setInterval(() => void this.refresh(), this.opts.pollMs ?? 1000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.reconnecting);
    const l = this.listener;
    this.listener = undefined;
    if (l) {
      await l.query(`UNLISTEN ${REVISIONS_CHANNEL}`).catch(() => undefined);
      l.release(true); // never back to the pool with a listener attached
    }
    await this.reading;
  }

  private async listen(): Promise<void> {
    const client = await this.pool.connect();
    const lost = (e?: Error) => {
      if (this.listener !== client) return;
      this.listener = undefined;
      client.removeAllListeners('notification');
      client.release(true);
      if (e) this.opts.onError?.(e);
      this.scheduleReconnect();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    client.on('notification', () => void this.refresh());
    this.listener = client;
    try {
      await client.query(`LISTEN ${REVISIONS_CHANNEL}`);
    } catch (e) {
      this.listener = undefined;
      client.release(true);
      throw e;
    }
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    this.reconnecting = setTimeout(() => {
      this.listen()
        .then(() => this.refresh()) // whatever moved while it was down
        .catch((e: Error) => {
          this.opts.onError?.(e);
          this.scheduleReconnect();
        });
    }, this.opts.reconnectMs ?? 200);
    this.reconnecting.unref();
  }

  /** Re-reads every revision (a tiny table) and reports the ones that moved; coalesces overlapping calls. */
  private refresh(): Promise<void> {
    if (this.reading !== undefined) {
      this.again = true;
      return this.reading;
    }
    this.reading = (async () => {
      do {
        this.again = false;
        try {
          const r = await this.pool.query<{ name: string; value: number }>('SELECT name, value FROM revisions');
          for (const row of r.rows) {
            const value = Number(row.value);
            if ((this.known.get(row.name) ?? 0) < value) {
              this.known.set(row.name, value);
              this.onChange(row.name, value);
            }
          }
        } catch (e) {
          this.opts.onError?.(e as Error);
        }
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }
}
