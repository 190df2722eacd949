import { afterAll, describe, expect, it } from 'vitest';
import { openPostgres, type PgDb } from '../../server/db/pg/connection.js';
import { migratePostgres } from '../../server/db/pg/migrator.js';
import { bumpRevision, RevisionWatcher } from '../../server/db/pg/revisions.js';
import { freshDatabase } from '../helpers/postgres.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Cross-replica invalidation on a real PostgreSQL (server/db/pg/revisions.ts): a bump on one
 * replica reaches another's watcher through NOTIFY; with the listening connection killed, the
 * change made meanwhile is found when it reconnects, and NOTIFY works again; the poll alone
 * finds a change that sent no notification.
 */
const closers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of closers.reverse()) await c();
});

function pool(url: string, name: string): PgDb {
  const d = openPostgres({ url, poolMax: 3, applicationName: name });
  closers.push(() => d.$client.end());
  return d;
}

describe('revisions across replicas (LISTEN/NOTIFY with a poll fallback)', () => {
  it('a bump on replica A reaches replica B within 1 s; with its listener killed, B re-reads on reconnect and hears the next bump by NOTIFY again', async () => {
    const url = await freshDatabase('rev');
    const a = pool(url, 'rev-replica-a');
    const b = pool(url, 'rev-replica-b');
    await migratePostgres(a.$client);
    await bumpRevision(a, 'identity'); // exists before B starts: not reported as a change
    const seen: { name: string; value: number; at: number }[] = [];
    const errors: Error[] = [];
    // A long poll, so the first delivery can only have come through NOTIFY.
    const watcher = new RevisionWatcher(b.$client, (name, value) => seen.push({ name, value, at: performance.now() }), { pollMs: 60_000, reconnectMs: 50, onError: (e) => errors.push(e) });
    await watcher.start();
    closers.push(() => watcher.stop());

    const t0 = performance.now();
    expect(await bumpRevision(a, 'identity')).toBe(2);
    const first = await waitFor(() => seen.find((s) => s.value === 2), { what: 'replica B hearing identity = 2' });
    if (!first) throw new Error('unreachable: waitFor returns a found value');
    expect(first.name).toBe('identity');
    expect(first.at - t0).toBeLessThan(1000); // the promise: revocation reaches every replica within 1 s
    expect(seen.map((s) => s.value)).toEqual([2]); // the pre-existing value 1 was not reported

    // Kill B's listening connection (a failover, a network cut); bump while it is down.
    const killed = await a.$client.query("SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE application_name = 'rev-replica-b' AND query LIKE 'LISTEN%'");
    expect(killed.rows).toEqual([{ done: true }]);
    await bumpRevision(a, 'identity');
    await waitFor(() => seen.find((s) => s.value === 3), { what: 'replica B catching identity = 3 after its listener was killed' });
    // …and the listener is back: the next bump arrives by NOTIFY again (the poll is a minute away).
    await waitFor(
      () => b.$client.query("SELECT 1 FROM pg_stat_activity WHERE application_name = 'rev-replica-b' AND query LIKE 'LISTEN%'").then((r) => r.rowCount === 1),
      { what: 'replica B listening again' },
    );
    const t1 = performance.now();
    await bumpRevision(a, 'policy');
    const policy = await waitFor(() => seen.find((s) => s.name === 'policy'), { what: 'replica B hearing policy = 1' });
    if (!policy) throw new Error('unreachable: waitFor returns a found value');
    expect(policy.at - t1).toBeLessThan(1000);
    expect(errors.length).toBeGreaterThanOrEqual(1); // the killed connection was reported, not thrown
  });

  it('the poll alone delivers when notifications never arrive', async () => {
    const url = await freshDatabase('revpoll');
    const a = pool(url, 'writer');
    const b = pool(url, 'poller');
    await migratePostgres(a.$client);
    const seen: string[] = [];
    const watcher = new RevisionWatcher(b.$client, (name, value) => seen.push(`${name}=${value}`), { pollMs: 100 });
    await watcher.start();
    closers.push(() => watcher.stop());
    // A change made without NOTIFY (e.g. by SQL from an older tool): only the poll can see it.
    await a.$client.query("INSERT INTO revisions (name, value) VALUES ('catalogue', 7)");
    await waitFor(() => seen.includes('catalogue=7'), { what: 'the poll finding catalogue = 7' });
  });
});
