import { sql } from 'drizzle-orm';
import { rawRows } from '../helpers/stores.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { growthRefusal, unrestricted, type Entitlements } from '../../server/access/entitlements.js';
import { SESSION_COOKIE } from '../../server/identity/sessions.js';
import { defaultUsage } from '../../license/service.js';
import { startTestApp, testConfig, type TestApp } from '../helpers/app.js';
import { call, sys } from '../helpers/identity.js';
import { spawnServer } from '../helpers/process.js';
import { waitFor } from '../helpers/wait.js';
import { scimClient, scimTenant, shape } from '../fixtures/scim/setup.js';

/**
 * Deprovisioning through SCIM: `active: false` (and DELETE) lock the user out at once in the
 * process that served the PATCH and within 1 s in a second running process on the same
 * database (another API replica: its own key cache and revision poll); the licence's seat
 * count drops and a seat-limited licence admits the next user; reactivation restores.
 */
const SEATS = 12;
const seatLimited: Entitlements = {
  ...unrestricted,
  checkGrowth: (kind, current) => (kind === 'seats' && current >= SEATS ? growthRefusal('seats', SEATS, current) : undefined),
};

let app: TestApp;
let second: TestApp;
let T: Awaited<ReturnType<typeof scimTenant>>;

beforeAll(async () => {
  const config = testConfig();
  app = await startTestApp({ config, entitlements: seatLimited });
  second = await startTestApp({ config, entitlements: seatLimited });
  T = await scimTenant(app, 'delta');
});
afterAll(async () => {
  await second.close();
  await app.close();
});

const seats = async () => (await defaultUsage(app.services.store)()).seats;
const me = (url: string, key: string) => call(url, '/admin/api/me', { key });
const code = (r: { body: any }) => r.body?.error?.code;

/**
 * Polls `url` with the key until it is refused; returns how long after `t0` (the PATCH's
 * response) the last call that was still accepted started. "Within 1 s" holds when that is
 * under 1 s: a busy machine only makes fewer polls, never a false failure.
 */
async function lastAcceptedAfter(url: string, key: string, t0: number): Promise<number> {
  let last = -Infinity;
  await waitFor(
    async () => {
      const started = Date.now();
      const r = await me(url, key);
      if (r.status === 200) last = started - t0;
      return code(r);
    },
    { until: (c) => c === 'auth_key_owner_inactive', what: `${url} refusing the deprovisioned user's key` },
  );
  return last;
}

/** A provisioned user with a key and a web session in T. */
async function provisioned(local: string) {
  const r = await T.client('POST', '/Users', { userName: `${local}@${T.domain}`, name: { givenName: local } });
  expect(r.status).toBe(201);
  const id: string = r.body.id;
  const { secret } = await app.services.identity.keys.create(T.ctx, { name: `${local}-key`, ownerUserId: id });
  const user = (await app.services.identity.users.byId(id))!;
  const { token } = await app.services.identity.sessions.createSession(sys(app.services), user, T.tenant.id);
  return { id, key: secret, session: { cookie: `${SESSION_COOKIE}=${token}`, csrf: '' } };
}

describe('SCIM deprovisioning', () => {
  it('active "False": key and session refused here at once and within 1 s in a second process; the seat is freed; reactivation restores', async () => {
    const u = await provisioned('frank');
    expect((await me(app.url, u.key)).status).toBe(200);
    expect((await me(second.url, u.key)).status).toBe(200); // warm both key caches
    expect((await call(second.url, '/auth/session', { session: u.session })).status).toBe(200);
    const before = await seats();

    const r = await T.client('PATCH', `/Users/${u.id}`, shape('entra-id', 'disableUser', {}));
    const t0 = Date.now(); // committed: the PATCH answered
    expect(r.status).toBe(200);
    expect(r.body.active).toBe(false);
    expect(code(await me(app.url, u.key))).toBe('auth_key_owner_inactive');
    const lag = await lastAcceptedAfter(second.url, u.key, t0);
    expect(lag).toBeLessThan(1000);
    expect((await call(second.url, '/auth/session', { session: u.session })).status).toBe(401);
    expect((await call(app.url, '/auth/session', { session: u.session })).status).toBe(401);
    expect(await seats()).toBe(before - 1);
    // What the licence reports (enclave license show, enclave_license_seats_used) at its next poll.
    await app.services.license.refresh();
    expect(app.services.license.metrics().seatsUsed).toBe(before - 1);

    const back = await T.client('PATCH', `/Users/${u.id}`, shape('entra-id', 'enableUser', {}));
    expect(back.body.active).toBe(true);
    expect(await seats()).toBe(before);
    expect((await me(app.url, u.key)).status).toBe(200);
    await waitFor(async () => (await me(second.url, u.key)).status, { until: (s) => s === 200, what: 'the second process accepting the key again' });
    // Ended sessions stay ended: the user signs in again through the IdP.
    expect((await call(app.url, '/auth/session', { session: u.session })).status).toBe(401);
  });

  it('DELETE: refused everywhere within 1 s, membership gone, audited with who and via scim', async () => {
    const u = await provisioned('grace');
    expect((await me(second.url, u.key)).status).toBe(200);
    const r = await T.client('DELETE', `/Users/${u.id}`);
    const t0 = Date.now();
    expect(r.status).toBe(204);
    expect(code(await me(app.url, u.key))).toBe('auth_key_owner_inactive');
    expect(await lastAcceptedAfter(second.url, u.key, t0)).toBeLessThan(1000);
    const entry = (await rawRows(app.services.store, sql`SELECT actor_id, target_id, details FROM audit_log WHERE action = 'scim.user.delete' AND target_id = ${u.id}`))[0] as any;
    expect(entry.actor_id).toBe(`scim:${T.tokenId}`);
    expect(JSON.parse(entry.details)).toMatchObject({ via: 'scim', previous_role: 'member' });
  });

  it('at the licence seat limit a new user is refused until one is deactivated; reactivating over the limit is refused and changes nothing', async () => {
    const created: string[] = [];
    while ((await seats()) < SEATS) {
      const r = await T.client('POST', '/Users', { userName: `fill${created.length}@${T.domain}` });
      expect(r.status).toBe(201);
      created.push(r.body.id);
    }
    const refused = await T.client('POST', '/Users', { userName: `henry@${T.domain}` });
    expect(refused.status).toBe(409);
    expect(refused.body.scimType).toBeUndefined();
    expect(refused.body.detail).toMatch(/licence allows 12 seats/);
    expect(await app.services.identity.users.byEmail(`henry@${T.domain}`)).toBeUndefined();

    const off = await T.client('PATCH', `/Users/${created[0]}`, shape('okta', 'deactivateUser', {}));
    expect(off.body.active).toBe(false);
    expect((await T.client('POST', '/Users', { userName: `henry@${T.domain}` })).status).toBe(201);

    const over = await T.client('PATCH', `/Users/${created[0]}`, shape('okta', 'reactivateUser', {}));
    expect(over.status).toBe(409);
    expect((await T.client('GET', `/Users/${created[0]}`)).body.active).toBe(false);
    expect((await app.services.identity.users.byId(created[0]!))!.status).toBe('deactivated');
    // A PUT that also renames: refused as a whole, nothing half-done; the refusal is audited.
    const put = await T.client('PUT', `/Users/${created[0]}`, { userName: `fill0@${T.domain}`, displayName: 'Renamed', active: true });
    expect(put.status).toBe(409);
    const still = await T.client('GET', `/Users/${created[0]}`);
    expect(still.body.displayName).toBeUndefined();
    expect(still.body.active).toBe(false);
    const denied = { n: Number((await rawRows(app.services.store, sql`SELECT count(*) AS n FROM audit_log WHERE action = 'user.reactivate' AND outcome = 'denied' AND target_id = ${created[0]}`))[0]!.n) };
    expect(denied.n).toBe(2);
    // Make room again for the next test.
    for (const id of created.slice(1)) expect((await T.client('DELETE', `/Users/${id}`)).status).toBe(204);
  });

  it('an account that is also a member of another tenant: deactivation in T stops it in T only (account and seat stay)', async () => {
    const u = await provisioned('ivan');
    const other = await app.services.identity.tenants.create(sys(app.services), { slug: 'epsilon' });
    const octx = await app.services.identity.tenants.scopeTo(sys(app.services), other.id);
    await app.services.identity.users.grant(octx, u.id, 'member');
    const { secret: otherKey } = await app.services.identity.keys.create(octx, { name: 'ivan-epsilon', ownerUserId: u.id });
    const before = await seats();

    await T.client('PATCH', `/Users/${u.id}`, shape('okta', 'deactivateUser', {}));
    expect(code(await me(app.url, u.key))).toBe('auth_key_owner_inactive');
    expect((await me(app.url, otherKey)).status).toBe(200);
    expect((await app.services.identity.users.byId(u.id))!.status).toBe('active');
    expect(await seats()).toBe(before);

    await T.client('PATCH', `/Users/${u.id}`, shape('okta', 'reactivateUser', {}));
    expect((await me(app.url, u.key)).status).toBe(200);
  });

  it('across OS processes: a PATCH served by a separately started server stops the key here within 1 s, and back', async () => {
    const u = await provisioned('jack');
    const proc = await spawnServer({ env: { ENCLAVE_DATA_DIR: app.services.config.dataDir, ENCLAVE_MASTER_KEY: app.services.config.masterKey! } });
    try {
      expect((await me(app.url, u.key)).status).toBe(200);
      expect((await me(proc.url, u.key)).status).toBe(200);
      const r = await scimClient(proc.url, T.token)('PATCH', `/Users/${u.id}`, shape('entra-id', 'disableUser', {}));
      const t0 = Date.now();
      expect(r.status).toBe(200);
      expect(code(await me(proc.url, u.key))).toBe('auth_key_owner_inactive');
      expect(await lastAcceptedAfter(app.url, u.key, t0)).toBeLessThan(1000);
      // Reactivated here: the other process accepts the key again.
      expect((await T.client('PATCH', `/Users/${u.id}`, shape('entra-id', 'enableUser', {}))).status).toBe(200);
      await waitFor(async () => (await me(proc.url, u.key)).status, { until: (s) => s === 200, what: 'the spawned server accepting the key again' });
    } finally {
      proc.child.kill('SIGTERM');
      await proc.exited();
    }
  });
});
