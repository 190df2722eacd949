import { eq } from 'drizzle-orm';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { LicenseService } from '../../license/service.js';
import { K } from '../../license/store.js';
import type { Clock } from '../../server/clock.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { sys } from '../helpers/identity.js';
import { DAY, testLicense } from '../helpers/license.js';

/**
 * Issue 16, licence trusted time: the newest audit entry's time is a floor (as
 * license/trusted-time.ts promises), and the stored high-water mark cannot be moved by a
 * plain edit of its settings row (it is signed with the installation key).
 *
 * The attack: a licence expired 10 days ago; the operator sets the clock back to before
 * the expiry and lowers (or deletes) the stored high-water mark, hoping the licence is valid
 * again. Every check uses a fresh LicenseService on the database (what a restart sees).
 */
const apps: TestApp[] = [];
afterEach(async () => {
  while (apps.length) (await apps.pop())!.close();
});

const T = Date.now();
const EXPIRES = T + 10 * DAY;

/** An app whose clock the test sets; a licence issued at T expiring at T+10d (no grace), audit entries written at T+20d. */
async function expiredInstallation(): Promise<{ a: TestApp; setWall: (ms: number) => void; clock: Clock }> {
  let wall = T;
  const clock: Clock = { now: () => wall };
  const a = await startTestApp({ env: { ENCLAVE_LICENSE_MODE: 'test' }, clock });
  apps.push(a);
  await a.services.license.install(testLicense({ term: { expires_at: new Date(EXPIRES).toISOString(), grace_days: 0 } }, T));
  expect(a.services.license.evaluation().state).not.toBe('lapsed');
  wall = T + 20 * DAY;
  await a.services.license.refresh();
  expect(a.services.license.evaluation().state).toBe('lapsed');
  for (let i = 0; i < 3; i++) (await a.services.identity.audit.record(sys(a.services), { action: 'test.activity', tenantId: null }));
  return { a, setWall: (ms) => (wall = ms), clock };
}

/** The licence's trusted-time row, read and edited behind the service's back, on either dialect. */
async function timeValue(a: TestApp): Promise<Record<string, unknown>> {
  const { store } = a.services;
  const row = await store.one(store.q.select().from(store.t.settings).where(eq(store.t.settings.key, K.time)));
  return JSON.parse(row!.value) as Record<string, unknown>;
}

async function editTime(a: TestApp, value: unknown, opts: { bumpUpdatedAt?: boolean } = {}): Promise<void> {
  const { store } = a.services;
  const { q, t } = store;
  const row = await store.one(q.select().from(t.settings).where(eq(t.settings.key, K.time)));
  await store.run(q.update(t.settings).set({ value: JSON.stringify(value), ...(opts.bumpUpdatedAt ? { updatedAt: row!.updatedAt + 1 } : {}) }).where(eq(t.settings.key, K.time)));
}

function restarted(a: TestApp, clock: Clock): Promise<LicenseService> {
  const s = a.services;
  return new LicenseService({ store: s.store, settings: s.settings, clock, log: pino({ level: 'silent' }), mode: 'test', environment: 'production', pollMs: 0 }).start();
}

describe('licence trusted time', () => {
  it('the newest audit entry is a floor: clock set back and the high-water mark deleted, the licence stays lapsed', async () => {
    const { a, setWall, clock } = await expiredInstallation();
    await a.services.store.run(a.services.store.q.delete(a.services.store.t.settings).where(eq(a.services.store.t.settings.key, K.time)));
    setWall(T + DAY);
    const l = await restarted(a, clock);
    try {
      expect(l.evaluation().state).toBe('lapsed');
      expect(Date.parse(l.evaluation().now)).toBeGreaterThanOrEqual(T + 20 * DAY);
      expect((await l.status()).time.clockSuspect).toBe(true);
    } finally {
      await l.stop();
    }
  });

  it('a high-water mark lowered by editing its settings row is detected and ignored', async () => {
    const { a, setWall, clock } = await expiredInstallation();
    await a.services.license.stop(); // persists the (signed) high-water mark at T+20d
    const stored = await timeValue(a);
    expect(stored.hwm).toBeGreaterThanOrEqual(T + 20 * DAY);
    expect(typeof stored.sig).toBe('string');
    // the edit: the mark back to T+1d, signature kept (it no longer matches) — and once without it
    for (const edited of [{ ...stored, hwm: T + DAY }, { hwm: T + DAY, suspect: null, epoch: stored.epoch }]) {
      await editTime(a, edited, { bumpUpdatedAt: true });
      setWall(T + DAY);
      const l = await restarted(a, clock);
      try {
        expect(l.evaluation().state).toBe('lapsed');
        const st = await l.status();
        expect(st.time.clockSuspect).toBe(true);
        expect(st.banners.some((b) => /changed outside Enclave/.test(b.message))).toBe(true);
        const events = (await a.services.settings.get<{ type: string }[]>(K.events)) ?? [];
        expect(events.some((e) => e.type === 'clock_tampered')).toBe(true);
      } finally {
        await l.stop();
      }
      // the next persist rewrote a signed mark that is not the edited one
      const now = (await timeValue(a)) as { hwm: number; sig?: string };
      expect(now.hwm).toBeGreaterThanOrEqual(T + 20 * DAY);
      expect(typeof now.sig).toBe('string');
    }
  });

  it('a high-water mark raised by an edit (to lapse the licence) is ignored too', async () => {
    let wall = T;
    const clock: Clock = { now: () => wall };
    const a = await startTestApp({ env: { ENCLAVE_LICENSE_MODE: 'test' }, clock });
    apps.push(a);
    await a.services.license.install(testLicense({ term: { expires_at: new Date(EXPIRES).toISOString(), grace_days: 0 } }, T));
    await a.services.license.stop();
    const stored = await timeValue(a);
    await editTime(a, { ...stored, hwm: T + 3650 * DAY });
    wall = T + DAY;
    const l = await restarted(a, clock);
    try {
      expect(l.evaluation().state).not.toBe('lapsed');
      expect(Date.parse(l.evaluation().now)).toBeLessThan(T + 2 * DAY);
    } finally {
      await l.stop();
    }
  });

  it('a signed mark from the running service is accepted by a restart (no false alarm)', async () => {
    const { a, clock } = await expiredInstallation();
    await a.services.license.stop();
    const l = await restarted(a, clock);
    try {
      expect((await l.status()).banners.some((b) => /changed outside Enclave/.test(b.message))).toBe(false);
      expect((await l.status()).time.clockSuspect).toBe(false);
      expect(l.evaluation().state).toBe('lapsed');
    } finally {
      await l.stop();
    }
  });
});
