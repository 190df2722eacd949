import { randomBytes } from 'node:crypto';
import { eq } from 'drizzle-orm';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { LicenseError } from '../../license/errors.js';
import { defaultUsage, LicenseService } from '../../license/service.js';
import { K } from '../../license/store.js';
import type { Clock } from '../../server/clock.js';
import { RuntimeSettings } from '../../server/config/runtime-settings.js';
import { SecretBox } from '../../server/config/secret-box.js';
import type { Store } from '../../server/db/store.js';
import { DAY, testLicense } from '../helpers/license.js';
import { closeAll, DIALECTS } from '../helpers/stores.js';

/**
 * The licence's data access over the async Store (issue 22), run on SQLite and on a real
 * PostgreSQL: runtime settings and secrets, install seen by another connection (another process
 * or replica), the sequence checks — also under two installs at once, which on PostgreSQL only
 * the install transaction's lock keeps apart — the installation identity created once, the
 * trusted time persisted and sealed, the audit-log floor and the usage counts.
 */

afterAll(closeAll);

const silent = pino({ level: 'silent' });
const wall: Clock = { now: () => Date.now() };

function service(store: Store, box: SecretBox, clock: Clock = wall): LicenseService {
  return new LicenseService({ store, settings: new RuntimeSettings(store, box, clock), clock, log: silent, mode: 'test', environment: 'production', pollMs: 0 });
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof LicenseError) return e.code;
    throw e;
  }
  return 'ok';
}

describe.each(DIALECTS)('licence store on $name', (dialect) => {
  it('runtime settings: JSON values, encrypted secrets, the master-key self-test', async () => {
    const s = (await dialect.fresh())();
    const box = new SecretBox(randomBytes(32));
    const settings = new RuntimeSettings(s, box, wall);
    expect(await settings.get('nothing')).toBeUndefined();
    await settings.set('a.b', { n: 1, list: ['x'] });
    await settings.set('a.b', { n: 2 });
    expect(await settings.get('a.b')).toEqual({ n: 2 });
    await settings.setSecret('x.secret', 'hunter2');
    expect(await settings.getSecret('x.secret')).toBe('hunter2');
    await expect(settings.get('x.secret')).rejects.toThrow(/secret/);
    const row = await s.one(s.q.select().from(s.t.settings).where(eq(s.t.settings.key, 'x.secret')));
    expect(row?.secret).toBe(true);
    expect(row?.value).not.toContain('hunter2');

    expect(await settings.checkSelfTest()).toMatchObject({ ok: false });
    await settings.ensureSelfTest();
    await settings.ensureSelfTest();
    expect(await settings.checkSelfTest()).toEqual({ ok: true });
    const other = new RuntimeSettings(s, new SecretBox(randomBytes(32)), wall);
    expect(await other.checkSelfTest()).toMatchObject({ ok: false });
    // A second start with another key never overwrites the stored self-test value.
    await other.ensureSelfTest();
    expect(await settings.checkSelfTest()).toEqual({ ok: true });
  });

  it('an install is seen by another connection after its refresh; a lower sequence is refused; the same licence is unchanged', async () => {
    const open = await dialect.fresh();
    const box = new SecretBox(randomBytes(32));
    const a = await service(open(), box).start();
    const b = await service(open(), box).start();
    try {
      expect(b.installationId).toBe(a.installationId);
      expect(b.evaluation().state).toBe('unlicensed');
      const text = testLicense({ seq: 5, limits: { seats: { max: 33, tolerance_pct: 0 } } });
      expect((await a.install(text)).result).toBe('installed');
      await b.refresh();
      expect(b.evaluation()).toMatchObject({ state: 'valid', limits: { seats: 33 } });
      const st = await b.status();
      expect(st.licence?.seq).toBe(5);
      expect(await code(b.install(testLicense({ seq: 4 })))).toBe('sequence_downgrade');
      expect((await b.install(text)).result).toBe('unchanged');
      expect((await a.events()).filter((e) => e.type === 'installed')).toHaveLength(1);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it('two installs at once of different licences with the same sequence: one wins, the other is refused (sequence_conflict)', async () => {
    const open = await dialect.fresh();
    const box = new SecretBox(randomBytes(32));
    // SQLite: one connection per process (two handles in one process would block each other's
    // event loop on the file lock), so the two "processes" share it and the store's gate orders
    // them; PostgreSQL: two pools, two transactions really at once.
    const first = open();
    const a = await service(first, box).start();
    const b = await service(dialect.name === 'SQLite' ? first : open(), box).start();
    try {
      for (const customer of ['c1', 'c2', 'c3', 'c4']) {
        const one = testLicense({ seq: 3, sub: { customer_id: customer, name: customer }, limits: { seats: { max: 11, tolerance_pct: 0 } } });
        const two = testLicense({ seq: 3, sub: { customer_id: customer, name: customer }, limits: { seats: { max: 22, tolerance_pct: 0 } } });
        const results = await Promise.all([code(a.install(one)), code(b.install(two))]);
        expect(results.sort(), customer).toEqual(['ok', 'sequence_conflict']);
        await a.refresh();
        await b.refresh();
        // Both processes agree on the winner.
        expect(a.evaluation().limits.seats).toBe(b.evaluation().limits.seats);
      }
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it('events recorded by two processes at once both land (the stored list is a locked read-modify-write)', async () => {
    const open = await dialect.fresh();
    const box = new SecretBox(randomBytes(32));
    const first = open();
    const a = await service(first, box).start();
    const b = await service(dialect.name === 'SQLite' ? first : open(), box).start();
    try {
      for (let round = 1; round <= 3; round++) {
        await Promise.all([a.confirmClock(), b.confirmClock()]);
        expect((await a.events()).filter((e) => e.type === 'clock_confirmed'), `round ${round}`).toHaveLength(2 * round);
      }
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it('the installation identity is created once when two processes start at once', async () => {
    const open = await dialect.fresh();
    const box = new SecretBox(randomBytes(32));
    const first = open();
    const [a, b] = await Promise.all([service(first, box).start(), service(dialect.name === 'SQLite' ? first : open(), box).start()]);
    try {
      expect(a.installationId).toMatch(/^inst_[a-z2-7]{26}$/);
      expect(b.installationId).toBe(a.installationId);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it('trusted time: persisted sealed, trusted by a restart, an edited mark ignored; the newest audit entry is a floor', async () => {
    const open = await dialect.fresh();
    const s = open();
    const box = new SecretBox(randomBytes(32));
    const T = Date.now();
    let now = T + 20 * DAY;
    const clock: Clock = { now: () => now };
    const a = await service(s, box, clock).start();
    await a.install(testLicense({ term: { expires_at: new Date(T + 10 * DAY).toISOString(), grace_days: 0 } }, T));
    expect(a.evaluation().state).toBe('lapsed');
    await a.stop();
    const row = await s.one(s.q.select().from(s.t.settings).where(eq(s.t.settings.key, K.time)));
    const sealed = JSON.parse(row!.value) as { hwm: number; sig?: string };
    expect(sealed.hwm).toBeGreaterThanOrEqual(T + 20 * DAY);
    expect(typeof sealed.sig).toBe('string');

    // The clock set back: a restart on another connection keeps the mark (lapsed stays lapsed).
    now = T + DAY;
    const b = await service(open(), box, clock).start();
    expect(b.evaluation().state).toBe('lapsed');
    expect((await b.status()).banners.some((x) => /changed outside Enclave/.test(x.message))).toBe(false);
    await b.stop();

    // The mark lowered by hand: ignored (tampered), the licence stays lapsed by the audit floor.
    await s.run(
      s.q
        .insert(s.t.auditLog)
        .values({ seq: 1, id: 'aud_floor', at: T + 20 * DAY, actorType: 'system', action: 'test.activity', outcome: 'allowed', prevHash: '0', hash: 'h1' }),
    );
    await s.run(s.q.update(s.t.settings).set({ value: JSON.stringify({ ...sealed, hwm: T + DAY }), updatedAt: T + DAY }).where(eq(s.t.settings.key, K.time)));
    const c = await service(open(), box, clock).start();
    try {
      expect(c.evaluation().state).toBe('lapsed');
      expect(c.now()).toBeGreaterThanOrEqual(T + 20 * DAY);
      const st = await c.status();
      expect(st.time.clockSuspect).toBe(true);
      expect((await c.events()).some((e) => e.type === 'clock_tampered')).toBe(true);
    } finally {
      await c.stop();
    }
    // The next persist rewrote a signed mark, not the edited one.
    const again = JSON.parse((await s.one(s.q.select().from(s.t.settings).where(eq(s.t.settings.key, K.time))))!.value) as { hwm: number; sig: string };
    expect(again.hwm).toBeGreaterThanOrEqual(T + 20 * DAY);
    expect(again.sig).not.toBe(sealed.sig);
  });

  it('refreshes never overlap: while a slow one runs, the poll skips its ticks', async () => {
    const s = (await dialect.fresh())();
    let running = 0;
    let most = 0;
    let calls = 0;
    let release: (() => void) | undefined;
    const svc = await new LicenseService({
      store: s,
      settings: new RuntimeSettings(s, new SecretBox(randomBytes(32)), wall),
      clock: wall,
      log: silent,
      mode: 'test',
      environment: 'production',
      pollMs: 5,
      // The usage read stands for a slow database: it waits until the test lets it go.
      usage: async () => {
        calls++;
        running++;
        most = Math.max(most, running);
        if (calls > 1) await new Promise<void>((r) => (release = r));
        running--;
        return { seats: calls, tenants: 0, keys: 0 };
      },
    }).start();
    try {
      await expect.poll(() => release !== undefined, { timeout: 10_000 }).toBe(true);
      // Many poll ticks pass while the refresh is held.
      await new Promise((r) => setTimeout(r, 100));
      expect(calls).toBe(2);
      const held = release!;
      release = undefined;
      held();
      await expect.poll(() => calls, { timeout: 10_000 }).toBeGreaterThan(2);
      expect(most).toBe(1);
    } finally {
      release?.();
      await svc.stop();
    }
  });

  it('default usage counts active users, tenants and unrevoked keys', async () => {
    const s = (await dialect.fresh())();
    const at = Date.now();
    for (const id of ['ten_a', 'ten_b']) await s.run(s.q.insert(s.t.tenants).values({ id, slug: id, name: id, createdAt: at, updatedAt: at }));
    for (const [id, status] of [
      ['usr_1', 'active'],
      ['usr_2', 'active'],
      ['usr_3', 'deactivated'],
    ] as const) {
      await s.run(s.q.insert(s.t.users).values({ id, email: `${id}@example.com`, name: id, status, createdAt: at, updatedAt: at }));
    }
    for (const [id, revokedAt] of [
      ['key_1', null],
      ['key_2', at],
    ] as const) {
      await s.run(s.q.insert(s.t.apiKeys).values({ id, tenantId: 'ten_a', name: id, prefix: id, keyHash: id, scopes: '[]', createdAt: at, createdBy: 'system:test', revokedAt }));
    }
    expect(await defaultUsage(s)()).toEqual({ seats: 2, tenants: 2, keys: 1 });
  });
});
