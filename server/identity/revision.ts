import { eq, sql } from 'drizzle-orm';
import type { Store } from '../db/store.js';

/**
 * A change counter in the database that every process polls. Anything that changes who
 * may authenticate (key revocation, user deactivation, role changes, tenant suspension)
 * bumps it; the bumping process's listeners have run when bump() resolves, and every other
 * process (API replicas, workers, and changes the CLI makes directly in the database) sees
 * it through the poll within `pollMs`. Listeners drop or reload their caches (they may be
 * async: the catalogue reloads its deployments from the database).
 *
 * Before the first check() the revision is -1, which matches no stored value: caches keyed
 * by the revision miss, and the first check() (start-up) notifies every listener once.
 */
export class Revision {
  private last = -1;
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  private readonly listeners = new Set<() => void | Promise<void>>();

  constructor(
    private readonly store: Store,
    readonly name = 'identity',
  ) {}

  current(): number {
    return this.last;
  }

  private async read(): Promise<number> {
    const { q, t } = this.store;
    return (await this.store.one(q.select({ value: t.revisions.value }).from(t.revisions).where(eq(t.revisions.name, this.name))))?.value ?? 0;
  }

  async bump(): Promise<void> {
    const { q, t } = this.store;
    await this.store.run(
      q
        .insert(t.revisions)
        .values({ name: this.name, value: 1 })
        .onConflictDoUpdate({ target: t.revisions.name, set: { value: sql`${t.revisions.value} + 1` } }),
    );
    await this.check();
  }

  onChange(fn: () => void | Promise<void>): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Compares with the stored value; notifies listeners (and waits for them) when it moved. */
  async check(): Promise<void> {
    // One check at a time per process: a bump during a poll waits for it, then reads again.
    while (this.checking !== undefined) await this.checking;
    this.checking = (async () => {
      const now = await this.read();
      if (now !== this.last) {
        this.last = now;
        for (const fn of this.listeners) await fn();
      }
    })();
    try {
      await this.checking;
    } finally {
      this.checking = undefined;
    }
  }

  start(pollMs = 200): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      // A slow database must not pile polls up: skip a tick while one is running.
      if (this.checking !== undefined) return;
      this.check().catch(() => {
        // The database is closing or unreachable; the next tick retries.
      });
    }, pollMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

export async function readRevision(store: Store, name = 'identity'): Promise<number> {
  const { q, t } = store;
  return (await store.one(q.select({ value: t.revisions.value }).from(t.revisions).where(eq(t.revisions.name, name))))?.value ?? 0;
}
