import { sql } from 'drizzle-orm';
import { rawRows } from '../helpers/stores.js';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SAFETY_FLOOR } from '../../license/entitlements-model.js';
import { LicenseError } from '../../license/errors.js';
import { LicenseService } from '../../license/service.js';
import { K } from '../../license/store.js';
import type { Clock } from '../../server/clock.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { DAY, testLicense } from '../helpers/license.js';
import { waitFor } from '../helpers/wait.js';

const apps: TestApp[] = [];
afterEach(async () => {
  while (apps.length) (await apps.pop())!.close();
});
async function app(env: Record<string, string> = {}, clock?: Clock): Promise<TestApp> {
  const a = await startTestApp({ env: { ENCLAVE_LICENSE_MODE: 'test', ...env }, ...(clock ? { clock } : {}) });
  apps.push(a);
  // Redis connects asynchronously; the licence is never the reason for not being ready.
  await waitFor(async () => (await fetch(`${a.url}/readyz`)).status, { until: (st) => st === 200, what: '/readyz ready' });
  return a;
}
/** A second "process" on the same database (what the CLI or another node does). */
function peer(a: TestApp, clock: Clock = { now: () => Date.now() }): Promise<LicenseService> {
  const s = a.services;
  return new LicenseService({ store: s.store, settings: s.settings, clock, log: pino({ level: 'silent' }), mode: 'test', environment: 'production', pollMs: 0 }).start();
}
const code = async (fn: () => Promise<unknown>): Promise<string> => {
  try {
    await fn();
  } catch (e) {
    if (e instanceof LicenseError) return e.code;
    throw e;
  }
  return 'ok';
};
async function readyz(a: TestApp): Promise<{ status: number; body: { status: string; checks: Record<string, Record<string, unknown>> } }> {
  const res = await fetch(`${a.url}/readyz`);
  return { status: res.status, body: (await res.json()) as never };
}

describe('boot resilience', () => {
  it('no licence: starts unlicensed with community entitlements; readiness informational', async () => {
    const a = await app({ ENCLAVE_LICENSE_MODE: 'production' });
    expect(a.services.license.evaluation().state).toBe('unlicensed');
    expect(a.services.entitlements.checkGrowth('tenants', 1)?.code).toBe('tenant_limit');
    expect(a.services.entitlements.checkGrowth('seats', 4)).toBeUndefined();
    expect(a.services.entitlements.checkGrowth('seats', 5)?.status).toBe(409);
    expect(a.services.license.allowsBoundary('public')).toBe(false);
    const r = await readyz(a);
    expect(r.status).toBe(200);
    expect(r.body.checks.license).toMatchObject({ status: 'ok', state: 'unlicensed', mode: 'production' });
  });

  it('a corrupt stored licence and a corrupt ENCLAVE_LICENSE_FILE: starts, state invalid, still ready', async () => {
    const first = await app();
    await first.services.settings.set(K.current, { text: 'garbage', installedAt: new Date().toISOString(), fingerprint: 'x' });
    const file = path.join(first.services.config.dataDir, 'bad.lic');
    writeFileSync(file, '-----BEGIN ENCLAVE LICENSE-----\nAAAA\n');
    const svc = await peer(first);
    expect(svc.evaluation().state).toBe('invalid');
    expect(svc.evaluation().limits.seats).toBe(5);
    const a = await app({ ENCLAVE_LICENSE_FILE: file });
    expect(a.services.license.evaluation().state).toBe('unlicensed');
    expect((await readyz(a)).status).toBe(200);
  });

  it('ENCLAVE_LICENSE_FILE with a valid licence is installed at start; test mode is loud in readiness', async () => {
    const dir = (await app()).services.config.dataDir;
    const file = path.join(dir, 'good.lic');
    writeFileSync(file, testLicense());
    const a = await app({ ENCLAVE_LICENSE_FILE: file });
    expect(a.services.license.evaluation().state).toBe('valid');
    const r = await readyz(a);
    expect(r.status).toBe(200);
    expect(r.body.checks.license).toMatchObject({ status: 'degraded', state: 'valid', mode: 'test' });
    expect(String(r.body.checks.license!.detail)).toMatch(/TEST MODE/);
  });
});

describe('install', () => {
  it('rejects an older sequence, is idempotent for the same licence, rejects a different licence with the same sequence', async () => {
    const a = await app();
    const l = a.services.license;
    expect((await l.install(testLicense({ seq: 7 }))).result).toBe('installed');
    expect(await code(() => l.install(testLicense({ seq: 6 })))).toBe('sequence_downgrade');
    const seven = testLicense({ seq: 8 });
    expect((await l.install(seven)).result).toBe('installed');
    expect((await l.install(seven)).result).toBe('unchanged');
    expect(await code(() => l.install(testLicense({ seq: 8 })))).toBe('sequence_conflict');
    expect(l.evaluation().licence?.seq).toBe(8);
  });

  it('a licence for another installation names both ids; production mode refuses the test root', async () => {
    const a = await app();
    await expect(a.services.license.install(testLicense({ aud: { installation: 'inst_zzzzzzzzzzzzzzzzzzzzzzzzzz' } }))).rejects.toThrow(new RegExp(a.services.license.installationId));
    const p = await app({ ENCLAVE_LICENSE_MODE: 'production' });
    expect(await code(() => p.services.license.install(testLicense()))).toBe('unknown_key');
    expect(p.services.license.install.length).toBe(1);
    expect((await a.services.license.install(testLicense({ aud: { installation: a.services.license.installationId } }))).result).toBe('installed');
  });

  it('limits below current usage are accepted and reported as over-limit; nothing changes in stored data', async () => {
    const a = await app();
    const l = a.services.license;
    l.setUsageSource(() => ({ seats: 73, tenants: 2, keys: 0 }));
    const before = JSON.stringify(await rawRows(a.services.store, sql`SELECT * FROM tenants`));
    await l.install(testLicense({ limits: { seats: { max: 50, tolerance_pct: 0 } } }));
    const s = await l.status();
    expect(s.overLimit).toEqual([expect.objectContaining({ kind: 'seats', limit: 50, current: 73 })]);
    expect(l.checkGrowth('seats', 73)?.code).toBe('seat_limit');
    expect(l.checkGrowth('seats', 49)).toBeUndefined();
    expect(JSON.stringify(await rawRows(a.services.store, sql`SELECT * FROM tenants`))).toBe(before);
  });

  it('seats at the limit and at limit + tolerance', async () => {
    const a = await app();
    await a.services.license.install(testLicense({ limits: { seats: { max: 10, tolerance_pct: 20 } } }));
    expect(a.services.entitlements.checkGrowth('seats', 11)).toBeUndefined();
    const refusal = a.services.entitlements.checkGrowth('seats', 12);
    expect(refusal?.status).toBe(409);
    expect(refusal?.code).toBe('seat_limit');
    expect(refusal?.toBody().error).toMatchObject({ limit: 12, current: 12 });
    // Deactivating a user (current drops) frees the seat.
    expect(a.services.entitlements.checkGrowth('seats', 11)).toBeUndefined();
  });
});

describe('states with a clock the test drives', () => {
  const T = Date.now();
  const EXP = T + 100 * DAY;
  const at = (now: number): Clock => ({ now: () => now });

  for (const [name, offset, state] of [
    ['T-61d', -61 * DAY, 'valid'],
    ['T-1d', -DAY, 'expiring'],
    ['expiry+1s', 1000, 'grace'],
    ['grace end+1s', 14 * DAY + 1000, 'lapsed'],
  ] as const) {
    it(`${name}: ${state}, and every safety-floor path passes`, async () => {
      const a = await app({}, at(EXP + offset));
      await a.services.license.install(testLicense({ term: { expires_at: new Date(EXP).toISOString(), grace_days: 14 } }, T));
      const l = a.services.license;
      expect(l.evaluation().state).toBe(state);
      for (const f of SAFETY_FLOOR) expect(l.hasFeature(f), f).toBe(true);
      expect(l.hasFeature('rag')).toBe(true);
      expect(l.hasFeature('finetune')).toBe(false);
      const growth = l.checkGrowth('tenants', 0);
      if (state === 'lapsed') {
        expect(growth?.code).toBe('license_lapsed');
        expect(l.checkTokens(99, 1).allowed).toBe(true);
        expect(l.checkTokens(100, 1).allowed).toBe(false);
        expect((await l.status()).banners.some((b) => b.audience === 'all')).toBe(true);
      } else {
        expect(growth).toBeUndefined();
        expect(l.checkTokens(999, 1).allowed).toBe(true);
      }
      expect((await readyz(a)).status).toBe(200);
      expect((await fetch(`${a.url}/healthz`)).status).toBe(200);
    });
  }

  it('invalid (no last-known-good): safety floor still passes and the appliance stays ready', async () => {
    const a = await app();
    await a.services.settings.set(K.current, { text: testLicense().replace('eyJ', 'eyK'), installedAt: new Date().toISOString(), fingerprint: 'x' });
    await a.services.license.refresh();
    expect(a.services.license.evaluation().state).toBe('invalid');
    for (const f of SAFETY_FLOOR) expect(a.services.license.hasFeature(f)).toBe(true);
    expect((await readyz(a)).status).toBe(200);
  });

  it('hard token quota: 429 license_quota_exceeded with Retry-After at the month reset; soft warns', async () => {
    const a = await app();
    await a.services.license.install(testLicense({ limits: { tokens_month: { max: 1000, mode: 'hard', lapsed_max: 10 } } }));
    const l = a.services.license;
    expect(l.checkTokens(700, 100)).toEqual({ allowed: true, limit: 1000, warning: 'license_quota_80' });
    const r = l.checkTokens(950, 100);
    expect(r.allowed).toBe(false);
    if (!r.allowed) {
      expect(r.error.status).toBe(429);
      expect(r.error.code).toBe('license_quota_exceeded');
      expect(Number(r.error.headers?.['Retry-After'])).toBeGreaterThan(0);
      expect(r.error.toBody().error.reset_at).toMatch(/-01T00:00:00.000Z$/);
    }
    const b = await app();
    await b.services.license.install(testLicense({ limits: { tokens_month: { max: 1000, mode: 'soft', lapsed_max: 10 } } }));
    expect(b.services.license.checkTokens(950, 100)).toEqual({ allowed: true, limit: 1000, warning: 'license_quota_exceeded_soft' });
  });

  it('clock rollback: effective time stays, licence does not un-expire, clock_suspect shows in readiness', async () => {
    let wall = EXP + 20 * DAY;
    const clock: Clock = { now: () => wall };
    const a = await app({}, clock);
    await a.services.license.install(testLicense({ term: { expires_at: new Date(EXP).toISOString(), grace_days: 14 } }, T));
    expect(a.services.license.evaluation().state).toBe('lapsed');
    wall = T - 90 * DAY;
    await a.services.license.refresh();
    expect(a.services.license.evaluation().state).toBe('lapsed');
    expect(Date.parse(a.services.license.evaluation().now)).toBeGreaterThanOrEqual(EXP + 20 * DAY);
    const r = await readyz(a);
    expect(r.body.checks.license).toMatchObject({ status: 'degraded', clockSuspect: true });
    // A fresh process on the same database inherits the persisted high-water mark.
    const other = await peer(a, clock);
    expect(other.evaluation().state).toBe('lapsed');
  });

  it('forward jump of 10 years: no lapse until confirmed; +20 days accepted silently', async () => {
    let wall = T;
    const clock: Clock = { now: () => wall };
    const a = await app({}, clock);
    const l = a.services.license;
    await l.install(testLicense({ term: { expires_at: new Date(T + 30 * DAY).toISOString(), grace_days: 0 } }, T));
    wall = T + 20 * DAY;
    await l.refresh();
    expect(l.evaluation().state).toBe('expiring');
    expect((await l.status()).time.clockSuspect).toBe(false);
    wall = T + 3650 * DAY;
    await l.refresh();
    expect(l.evaluation().state).toBe('expiring');
    expect((await l.status()).time.clockSuspect).toBe(true);
    await l.confirmClock();
    expect(l.evaluation().state).toBe('lapsed');
    expect((await l.status()).time.clockSuspect).toBe(false);
  });
});

describe('hot reload', () => {
  it('an install by another process takes effect within seconds under load with zero failed requests; a corrupt new value keeps last-known-good', async () => {
    const a = await app();
    const other = await peer(a);
    let failures = 0;
    let done = false;
    let requests = 0;
    const load = (async () => {
      while (!done) {
        const res = await fetch(`${a.url}/readyz`).catch(() => undefined);
        requests++;
        if (!res || res.status !== 200) failures++;
        await res?.arrayBuffer();
      }
    })();
    await other.install(testLicense({ seq: 3, limits: { seats: { max: 42, tolerance_pct: 0 } } }));
    const t0 = Date.now(); // installed (committed) by the other process
    await waitFor(() => a.services.license.evaluation().limits.seats, { until: (n) => n === 42, what: 'the new licence’s seats in the running process' });
    expect(Date.now() - t0).toBeLessThan(3000);

    await a.services.settings.set(K.current, { text: 'corrupt', installedAt: new Date().toISOString(), fingerprint: 'y' });
    // Noticed (the problem is reported), and the last known good still applies.
    const e = await waitFor(() => a.services.license.evaluation(), { until: (ev) => ev.problem?.code === 'armor_missing_header', what: 'the corrupt licence noticed' });
    expect(e.limits.seats).toBe(42);
    expect(e.problem?.code).toBe('armor_missing_header');
    // A restarted process falls back to the stored last-known-good too.
    expect((await peer(a)).evaluation().limits.seats).toBe(42);
    done = true;
    await load;
    expect(requests).toBeGreaterThan(10);
    expect(failures).toBe(0);
  });
});

/** host:port (or the socket path) a Socket.connect call goes to, whichever argument form it got. */
function socketTarget(args: unknown[]): string {
  const [first, second] = args;
  const o = (Array.isArray(first) ? first[0] : first) as { port?: unknown; host?: unknown; path?: unknown } | number | string | undefined;
  if (o && typeof o === 'object') return o.path ? String(o.path) : `${String(o.host ?? 'localhost')}:${String(o.port)}`;
  return typeof o === 'number' || /^\d+$/.test(String(o)) ? `${String(second ?? 'localhost')}:${String(o)}` : String(o);
}

describe('air-gapped', () => {
  it('licence operations open no network connection', async () => {
    const a = await app();
    const connect = vi.spyOn(net.Socket.prototype, 'connect');
    try {
      const l = a.services.license;
      await l.install(testLicense({ deployment: { modes: ['air_gapped'] } }));
      l.dryRun(testLicense({ seq: 2, deployment: { modes: ['air_gapped'] } }));
      await l.refresh(true);
      await l.status();
      await l.confirmClock();
      expect(l.allowsDeploymentMode('air_gapped')).toBe(true);
      // On PostgreSQL the pool may open a connection to Enclave's own database (not the
      // network a licence check could use): every other connection is a failure.
      const dbUrl = a.services.config.databaseUrl ? new URL(a.services.config.databaseUrl) : undefined;
      const database = dbUrl ? `${dbUrl.hostname}:${dbUrl.port || 5432}` : undefined;
      expect(connect.mock.calls.map((args) => socketTarget(args)).filter((t) => t !== database)).toEqual([]);
    } finally {
      connect.mockRestore();
    }
  });
});
