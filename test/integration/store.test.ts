import { and, asc, count, eq, gt, sql, type SQL } from 'drizzle-orm';
import { afterAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../server/clock.js';
import { createContext } from '../../server/context.js';
import { createLogger } from '../../server/logger.js';
import type { Store } from '../../server/db/store.js';
import { createTenantStore } from '../../server/db/tenant-store.js';
import { closeAll, DIALECTS } from '../helpers/stores.js';

/**
 * The async data layer's contract (server/db/store.ts, server/db/tenant-store.ts), run on
 * SQLite and on a real PostgreSQL: the same code, the same results — types (times, flags,
 * counts), transactions (commit, rollback, nesting, statements of other repositories joining),
 * and on SQLite the gate that keeps other flows out of an open transaction.
 */

afterAll(closeAll);

const T0 = Date.UTC(2026, 11, 3, 12, 0, 0, 123);

async function addTenant(s: Store, id: string, at = T0): Promise<void> {
  await s.run(s.q.insert(s.t.tenants).values({ id, slug: id, name: `Tenant ${id}`, createdAt: at, updatedAt: at }));
}

async function addUser(s: Store, id: string, admin = false): Promise<void> {
  await s.run(s.q.insert(s.t.users).values({ id, email: `${id}@example.com`, name: id, platformAdmin: admin, createdAt: T0, updatedAt: T0 }));
}

/** A tiny deferred: lets a test hold a transaction open at a chosen point. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe.each(DIALECTS)('store on $name', (dialect) => {
  it('reads back what it wrote with the same types: ms times, flags, counts, affected rows', async () => {
    const s = (await dialect.fresh())();
    await addTenant(s, 'ten_a');
    await addTenant(s, 'ten_b', T0 + 1000);
    await addUser(s, 'usr_admin', true);
    await addUser(s, 'usr_plain', false);

    const a = await s.one(s.q.select().from(s.t.tenants).where(eq(s.t.tenants.id, 'ten_a')));
    expect(a).toMatchObject({ id: 'ten_a', status: 'active', defaultClassification: 'internal', createdAt: T0 });
    expect(typeof a!.createdAt).toBe('number');
    expect(await s.one(s.q.select().from(s.t.tenants).where(eq(s.t.tenants.id, 'nope')))).toBeUndefined();

    const later = await s.all(s.q.select({ id: s.t.tenants.id }).from(s.t.tenants).where(gt(s.t.tenants.createdAt, T0)));
    expect(later).toEqual([{ id: 'ten_b' }]);

    const admins = await s.all(s.q.select({ id: s.t.users.id, admin: s.t.users.platformAdmin }).from(s.t.users).orderBy(asc(s.t.users.id)));
    expect(admins).toEqual([
      { id: 'usr_admin', admin: true },
      { id: 'usr_plain', admin: false },
    ]);

    const n = await s.one(s.q.select({ n: count() }).from(s.t.users));
    expect(n).toEqual({ n: 2 });

    expect(await s.run(s.q.update(s.t.users).set({ name: 'renamed' }).where(eq(s.t.users.platformAdmin, false)))).toBe(1);
    expect(await s.run(s.q.delete(s.t.users).where(eq(s.t.users.id, 'nobody')))).toBe(0);
    const back = await s.all(s.q.insert(s.t.tenants).values({ id: 'ten_c', slug: 'c', name: 'C', createdAt: T0, updatedAt: T0 }).returning({ id: s.t.tenants.id }));
    expect(back).toEqual([{ id: 'ten_c' }]);
  });

  it('a transaction commits together; a throw rolls all of it back; nested calls join the outer one', async () => {
    const s = (await dialect.fresh())();
    const out = await s.tx(async () => {
      await addTenant(s, 'ten_1');
      await s.tx(() => addTenant(s, 'ten_2'));
      return 'done';
    });
    expect(out).toBe('done');
    await expect(
      s.tx(async () => {
        await addTenant(s, 'ten_3');
        await s.tx(() => addTenant(s, 'ten_4'));
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    // A unique violation inside the transaction rolls back the statements before it too.
    await expect(
      s.tx(async () => {
        await addTenant(s, 'ten_5');
        await addTenant(s, 'ten_1');
      }),
    ).rejects.toThrow();
    const ids = (await s.all(s.q.select({ id: s.t.tenants.id }).from(s.t.tenants).orderBy(asc(s.t.tenants.id)))).map((r) => r.id);
    expect(ids).toEqual(['ten_1', 'ten_2']);
  });

  it('inside a transaction, statements built by other code from store.q see its rows; another connection does not until commit', async () => {
    const open = await dialect.fresh();
    const s = open();
    const other = open();
    const hold = deferred();
    const seen: { inside?: number; otherDuring?: number } = {};
    // "Another repository" inside the transaction: it only knows the store, not the transaction.
    const countTenants = async (st: Store) => (await st.one(st.q.select({ n: count() }).from(st.t.tenants)))!.n;
    const running = s.tx(async () => {
      await addTenant(s, 'ten_x');
      seen.inside = await countTenants(s);
      await hold.promise;
    });
    await expect.poll(() => seen.inside, { timeout: 10_000 }).toBe(1);
    seen.otherDuring = await Promise.race([countTenants(other), new Promise<number>((r) => setTimeout(() => r(-1), 200))]).then((v) => v);
    hold.resolve();
    await running;
    // SQLite: the other handle is another connection to the file (WAL): it reads the last commit.
    expect(seen.otherDuring).toBe(0);
    expect(await countTenants(other)).toBe(1);
  });

  it('lock() serialises a check-then-write: two transactions that both "insert if absent" insert once', async () => {
    const open = await dialect.fresh();
    const one = open();
    // PostgreSQL: two connections (two replicas). SQLite: one process has one connection; two flows on it.
    const two = dialect.name === 'PostgreSQL' ? open() : one;
    const countOf = async (s: Store) => (await s.one(s.q.select({ n: count() }).from(s.t.tenants).where(eq(s.t.tenants.slug, 'only-once'))))!.n;
    const firstRead = deferred();
    const release = deferred();
    const insertIfAbsent = (s: Store, id: string, hold: boolean) =>
      s.tx(async () => {
        await s.lock('test:only-once');
        const n = await countOf(s);
        if (hold) {
          firstRead.resolve();
          await release.promise; // the other transaction runs now, while this one has read 0
        }
        if (n === 0) await s.run(s.q.insert(s.t.tenants).values({ id, slug: 'only-once', name: id, createdAt: T0, updatedAt: T0 }));
      });
    const a = insertIfAbsent(one, 'ten_first', true);
    await firstRead.promise;
    let bDone = false;
    const b = insertIfAbsent(two, 'ten_second', false).finally(() => (bDone = true));
    if (dialect.name === 'PostgreSQL') {
      // Until b either finished (no lock: it read 0 and inserted — then a's insert fails) or is
      // seen waiting for a lock in pg_stat_activity (the advisory lock: it has not read yet).
      const waiting = async () =>
        Number(((await (one.q as unknown as { execute(q: SQL): PromiseLike<{ rows: { n: string }[] }> }).execute(sql`SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)).rows[0]!.n));
      await expect.poll(async () => bDone || (await waiting()) > 0, { timeout: 10_000 }).toBe(true);
    } else {
      // One connection: b waits at the store's gate until a ends (the gate test shows it does).
      await new Promise((r) => setImmediate(r));
    }
    release.resolve();
    await Promise.all([a, b]);
    expect(await countOf(one)).toBe(1);
    await expect(one.lock('outside')).rejects.toThrow(/outside store.tx/);
  });

  it('tenant-scoped access: reads filter by the context tenant, writes are limited to it, a smuggled tenantId is dropped', async () => {
    const s = (await dialect.fresh())();
    await addTenant(s, 'ten_a');
    await addTenant(s, 'ten_b');
    await addUser(s, 'usr_1');
    const data = createTenantStore(s);
    const log = createLogger('silent');
    const A = createContext({ requestId: 'req_a', log, clock: systemClock, tenant: { id: 'ten_a', slug: 'ten_a' } });
    const B = createContext({ requestId: 'req_b', log, clock: systemClock, tenant: { id: 'ten_b', slug: 'ten_b' } });
    const row = await data.conversations.insert(A, { id: 'cnv_1', userId: 'usr_1', title: 'A only', createdAt: T0, updatedAt: T0, tenantId: 'ten_b' } as never);
    expect(row.tenantId).toBe('ten_a');
    expect(await data.conversations.get(B, (c) => eq(c.id, 'cnv_1'))).toBeUndefined();
    expect(await data.conversations.list(B)).toEqual([]);
    expect(await data.conversations.update(B, (c) => eq(c.id, 'cnv_1'), { title: 'stolen' })).toBe(0);
    expect(await data.conversations.update(A, (c) => eq(c.id, 'cnv_1'), { tenantId: 'ten_b' } as never)).toBe(0);
    expect(await data.conversations.delete(B, (c) => eq(c.id, 'cnv_1'))).toBe(0);
    expect(await data.conversations.count(A)).toBe(1);
    expect(await data.conversations.count(B)).toBe(0);
    expect(await data.conversations.get(A, (c) => and(eq(c.id, 'cnv_1'), eq(c.title, 'A only')))).toMatchObject({ tenantId: 'ten_a' });
    const up = await data.tenantSettings.upsert(A, { key: 'k', value: '"1"', updatedAt: T0 }, (t) => [t.key], { value: '"2"', updatedAt: T0 + 1 });
    expect(up.value).toBe('"1"');
    const up2 = await data.tenantSettings.upsert(A, { key: 'k', value: '"1"', updatedAt: T0 }, (t) => [t.key], { value: '"2"', updatedAt: T0 + 1 });
    expect(up2).toMatchObject({ tenantId: 'ten_a', key: 'k', value: '"2"', updatedAt: T0 + 1 });
    expect(await data.tenantSettings.count(B)).toBe(0);
    expect(await data.conversations.delete(A, (c) => eq(c.id, 'cnv_1'))).toBe(1);
  });
});

describe('store on SQLite: the transaction gate', () => {
  it('a statement from another flow waits while a transaction is open, and survives its rollback', async () => {
    const s = (await DIALECTS[0]!.fresh())();
    const hold = deferred();
    const order: string[] = [];
    const failing = s.tx(async () => {
      await addTenant(s, 'ten_in_tx');
      order.push('tx wrote');
      await hold.promise;
      throw new Error('rolled back');
    });
    // Another request: not inside the transaction; without the gate it would run inside it and
    // be undone by the rollback.
    const outside = addTenant(s, 'ten_outside').then(() => order.push('outside wrote'));
    await expect.poll(() => order.length, { timeout: 10_000 }).toBe(1);
    expect(order).toEqual(['tx wrote']);
    hold.resolve();
    await expect(failing).rejects.toThrow('rolled back');
    await outside;
    expect(order).toEqual(['tx wrote', 'outside wrote']);
    const ids = (await s.all(s.q.select({ id: s.t.tenants.id }).from(s.t.tenants))).map((r) => r.id);
    expect(ids).toEqual(['ten_outside']);
  });

  it('two transactions from two flows run one after the other, never interleaved', async () => {
    const s = (await DIALECTS[0]!.fresh())();
    const hold = deferred();
    const log: string[] = [];
    const first = s.tx(async () => {
      log.push('1 begin');
      await addTenant(s, 'ten_1');
      await hold.promise;
      log.push('1 end');
    });
    const second = s.tx(async () => {
      log.push('2 begin');
      await addTenant(s, 'ten_2');
      log.push('2 end');
    });
    await expect.poll(() => log.length, { timeout: 10_000 }).toBe(1);
    hold.resolve();
    await Promise.all([first, second]);
    expect(log).toEqual(['1 begin', '1 end', '2 begin', '2 end']);
  });
});
