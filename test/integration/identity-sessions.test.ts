import { sql } from 'drizzle-orm';
import { rawRows } from '../helpers/stores.js';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { ACCOUNT_LIMIT } from '../../server/identity/sessions.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { call, login, ManualClock, PASSWORD, seedTenant, sys } from '../helpers/identity.js';

const clock = new ManualClock();
let app: TestApp;
let seed: Awaited<ReturnType<typeof seedTenant>>;

beforeAll(async () => {
  app = await startTestApp({
    clock,
    entitlements: unrestricted,
    env: { ENCLAVE_ADMIN_EMAIL: 'root@example.test', ENCLAVE_ADMIN_PASSWORD: 'first admin password 1', ENCLAVE_SESSION_IDLE_MINUTES: '30', ENCLAVE_SESSION_MAX_HOURS: '8' },
  });
  seed = await seedTenant(app.services, 'acme');
});
afterAll(() => app.close());

const audit = (action: string) => app.services.identity.audit.list({ action, limit: 1000 });

describe('first admin', () => {
  it('is created from ENCLAVE_ADMIN_EMAIL / ENCLAVE_ADMIN_PASSWORD and can sign in', async () => {
    const s = await login(app.url, 'root@example.test', 'first admin password 1');
    expect(s.status).toBe(200);
    expect(s.body.user.platform_admin).toBe(true);
    expect(s.body.tenant).toBeNull();
  });
});

describe('local login and sessions', () => {
  it('sets an HttpOnly, SameSite=Lax session cookie and returns a CSRF token', async () => {
    const res = await fetch(app.url + '/auth/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: seed.users.admin!.email, password: PASSWORD }),
    });
    expect(res.status).toBe(200);
    const cookie = res.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^enclave_session=/);
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Lax/i);
    expect(cookie).not.toMatch(/Secure/i); // plain HTTP in tests; auto adds it behind TLS
    const body = (await res.json()) as any;
    expect(body.tenant.slug).toBe('acme');
    expect(body.role).toBe('admin');
    expect(typeof body.csrf_token).toBe('string');
    // Only a hash of the token is stored.
    const token = cookie.split(';')[0]!.split('=')[1]!;
    const rows = (await rawRows(app.services.store, sql`SELECT token_hash FROM sessions`)) as { token_hash: string }[];
    expect(rows.some((r) => r.token_hash === token)).toBe(false);
    expect(rows.every((r) => /^[0-9a-f]{64}$/.test(r.token_hash))).toBe(true);
  });

  it('wrong password and unknown account answer the same', async () => {
    const a = await login(app.url, seed.users.viewer!.email, 'not the password at all');
    const b = await login(app.url, 'nobody@acme.test', 'not the password at all');
    expect(a.status).toBe(401);
    expect(b.status).toBe(401);
    expect(a.body.error.code).toBe('auth_invalid_credentials');
    expect(b.body).toEqual(a.body);
  });

  it('refuses cookie-authenticated state changes without the CSRF token', async () => {
    const s = await login(app.url, seed.users.owner!.email);
    const noToken = await call(app.url, `/admin/api/tenants/${seed.tenant.id}`, { method: 'PATCH', body: { name: 'Changed' }, session: s, noCsrf: true });
    expect(noToken.status).toBe(403);
    expect(noToken.body.error.code).toBe('csrf_failed');
    const wrong = await call(app.url, `/admin/api/tenants/${seed.tenant.id}`, { method: 'PATCH', body: { name: 'Changed' }, session: { ...s, csrf: 'x'.repeat(43) } });
    expect(wrong.body.error.code).toBe('csrf_failed');
    expect((await app.services.identity.tenants.byId(seed.tenant.id))!.name).toBe('ACME');
    // Reads need no token; writes with it work.
    expect((await call(app.url, `/admin/api/tenants/${seed.tenant.id}`, { session: s, noCsrf: true })).status).toBe(200);
    const ok = await call(app.url, `/admin/api/tenants/${seed.tenant.id}`, { method: 'PATCH', body: { name: 'Acme Inc' }, session: s });
    expect(ok.status).toBe(200);
    expect(ok.body.name).toBe('Acme Inc');
    const logout = await call(app.url, '/auth/logout', { method: 'POST', session: s, noCsrf: true });
    expect(logout.body.error.code).toBe('csrf_failed');
  });

  it('session fixation is impossible: login always issues a new token and ends the presented one', async () => {
    const first = await login(app.url, seed.users.member!.email);
    const second = await login(app.url, seed.users.member!.email, PASSWORD, { headers: { cookie: first.cookie } });
    expect(second.cookie).not.toBe(first.cookie);
    expect((await call(app.url, '/auth/session', { session: first })).status).toBe(401);
    expect((await call(app.url, '/auth/session', { session: second })).status).toBe(200);
    // A made-up token planted in the browser is never accepted or promoted.
    const planted = 'enclave_session=' + 'A'.repeat(43);
    expect((await call(app.url, '/auth/session', { headers: { cookie: planted } })).status).toBe(401);
    const third = await login(app.url, seed.users.member!.email, PASSWORD, { headers: { cookie: planted } });
    expect(third.cookie).not.toBe(planted);
  });

  it('idle and absolute timeouts end sessions', async () => {
    const s = await login(app.url, seed.users.viewer!.email);
    clock.advance(29 * 60_000);
    expect((await call(app.url, '/auth/session', { session: s })).status).toBe(200);
    clock.advance(29 * 60_000);
    expect((await call(app.url, '/auth/session', { session: s })).status).toBe(200);
    clock.advance(31 * 60_000);
    const idle = await call(app.url, '/auth/session', { session: s });
    expect(idle.status).toBe(401);
    expect(idle.body.error.code).toBe('auth_session_expired');

    const t = await login(app.url, seed.users.viewer!.email);
    for (let i = 0; i < 16; i++) {
      clock.advance(29 * 60_000);
      await call(app.url, '/auth/session', { session: t });
    }
    clock.advance(20 * 60_000);
    const abs = await call(app.url, '/auth/session', { session: t });
    expect(abs.status).toBe(401);
    expect(abs.body.error.code).toBe('auth_session_expired');
  });

  it('logout ends the session; log out everywhere ends all of them', async () => {
    const a = await login(app.url, seed.users.member!.email);
    const b = await login(app.url, seed.users.member!.email);
    const c = await login(app.url, seed.users.member!.email);
    expect((await call(app.url, '/auth/logout', { method: 'POST', session: a })).status).toBe(200);
    expect((await call(app.url, '/auth/session', { session: a })).status).toBe(401);
    expect((await call(app.url, '/auth/session', { session: b })).status).toBe(200);
    const all = await call(app.url, '/auth/logout-all', { method: 'POST', session: b });
    expect(all.status).toBe(200);
    expect((await call(app.url, '/auth/session', { session: b })).status).toBe(401);
    expect((await call(app.url, '/auth/session', { session: c })).status).toBe(401);
    expect((await audit('auth.logout')).length).toBeGreaterThan(0);
    expect((await audit('auth.logout_all')).length).toBeGreaterThan(0);
  });

  it('a password change ends the other sessions and keeps the current one', async () => {
    const { users } = app.services.identity;
    const u = await users.create(sys(app.services), { email: 'pw@acme.test', password: PASSWORD });
    await users.grant(seed.ctx, u.id, 'member');
    const other = await login(app.url, 'pw@acme.test');
    const current = await login(app.url, 'pw@acme.test');
    const weak = await call(app.url, '/auth/password', { method: 'POST', session: current, body: { current_password: PASSWORD, new_password: 'short' } });
    expect(weak.body.error.code).toBe('password_policy');
    const wrong = await call(app.url, '/auth/password', { method: 'POST', session: current, body: { current_password: 'wrong password here', new_password: 'a brand new passphrase' } });
    expect(wrong.body.error.code).toBe('wrong_password');
    const ok = await call(app.url, '/auth/password', { method: 'POST', session: current, body: { current_password: PASSWORD, new_password: 'a brand new passphrase' } });
    expect(ok.status).toBe(200);
    expect((await call(app.url, '/auth/session', { session: other })).status).toBe(401);
    expect((await call(app.url, '/auth/session', { session: current })).status).toBe(200);
    expect((await login(app.url, 'pw@acme.test')).status).toBe(401);
    expect((await login(app.url, 'pw@acme.test', 'a brand new passphrase')).status).toBe(200);
  });

  it('deactivating a user ends their sessions at once', async () => {
    const { users } = app.services.identity;
    const u = await users.create(sys(app.services), { email: 'leaver@acme.test', password: PASSWORD });
    await users.grant(seed.ctx, u.id, 'member');
    const s = await login(app.url, 'leaver@acme.test');
    await users.deactivate(sys(app.services), u.id);
    expect((await call(app.url, '/auth/session', { session: s })).status).toBe(401);
    expect((await login(app.url, 'leaver@acme.test')).status).toBe(401);
  });

  it('switching tenant is explicit and limited to the user’s tenants', async () => {
    const other = await seedTenant(app.services, 'globex', []);
    const { users } = app.services.identity;
    // A user of its own: the switch makes globex this user's last-used tenant, where its later
    // logins land (the shared admin's must keep landing in acme, whatever the test order).
    const me = await users.create(sys(app.services), { email: 'switcher@acme.test', password: PASSWORD });
    await users.grant(seed.ctx, me.id, 'admin');
    await users.grant(other.ctx, me.id, 'viewer');
    const s = await login(app.url, me.email, PASSWORD, { tenant: 'acme' });
    expect(s.body.tenant.slug).toBe('acme');
    expect(s.body.tenants.map((t: any) => t.slug)).toEqual(['acme', 'globex']);
    const sw = await call(app.url, '/auth/switch-tenant', { method: 'POST', session: s, body: { tenant: 'globex' } });
    expect(sw.status).toBe(200);
    expect(sw.body.tenant.slug).toBe('globex');
    expect(sw.body.role).toBe('viewer');
    const denied = await call(app.url, '/auth/switch-tenant', { method: 'POST', session: s, body: { tenant: 'nope' } });
    expect(denied.status).toBe(404);
  });

  it('a suspended tenant refuses its sessions with tenant_suspended; resume restores them', async () => {
    const t = await seedTenant(app.services, 'initech', ['member']);
    const s = await login(app.url, t.users.member!.email);
    await app.services.identity.tenants.setStatus(sys(app.services), t.tenant.id, 'suspended');
    const r = await call(app.url, '/auth/session', { session: s });
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('tenant_suspended');
    await app.services.identity.tenants.setStatus(sys(app.services), t.tenant.id, 'active');
    expect((await call(app.url, '/auth/session', { session: s })).status).toBe(200);
  });
});

describe('brute force', () => {
  // Each test on an app and clock of its own: the locks they provoke (an account; the client
  // address, 127.0.0.1 for every test) must not reach any other test, whatever the order.
  let own: { app: TestApp; seed: Awaited<ReturnType<typeof seedTenant>>; clock: ManualClock };
  beforeEach(async () => {
    const c = new ManualClock();
    const a = await startTestApp({ clock: c, entitlements: unrestricted });
    own = { app: a, seed: await seedTenant(a.services, 'acme'), clock: c };
  });
  afterEach(() => own.app.close());
  const ownAudit = (action: string) => own.app.services.identity.audit.list({ action, limit: 1000 });

  it('locks the account after repeated failures, the legitimate user recovers, all audited', async () => {
    const email = own.seed.users.viewer!.email;
    for (let i = 0; i < ACCOUNT_LIMIT; i++) expect((await login(own.app.url, email, `wrong password ${i}`)).status).toBe(401);
    // Locked: even the right password is refused, with Retry-After.
    const locked = await fetch(own.app.url + '/auth/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password: PASSWORD }) });
    expect(locked.status).toBe(429);
    expect(((await locked.json()) as any).error.code).toBe('auth_locked');
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0);
    // Other accounts from elsewhere are unaffected.
    expect((await login(own.app.url, own.seed.users.owner!.email)).status).toBe(200);
    // After the lock time the legitimate user signs in and the counter resets.
    own.clock.advance(61_000);
    expect((await login(own.app.url, email)).status).toBe(200);
    // Repeated locks grow (progressive): the second lock outlasts one minute.
    for (let i = 0; i < ACCOUNT_LIMIT; i++) await login(own.app.url, email, `wrong again ${i}`);
    own.clock.advance(61_000);
    for (let i = 0; i < ACCOUNT_LIMIT; i++) await login(own.app.url, email, `and again ${i}`);
    own.clock.advance(61_000);
    expect((await login(own.app.url, email)).status).toBe(429);
    own.clock.advance(120_000);
    expect((await login(own.app.url, email)).status).toBe(200);

    const entries = await ownAudit('auth.login');
    expect(entries.some((e) => e.outcome === 'denied' && e.reason === 'invalid_credentials' && e.targetId === email)).toBe(true);
    expect(entries.some((e) => e.outcome === 'denied' && e.reason === 'locked' && e.targetId === email)).toBe(true);
    expect(entries.some((e) => e.outcome === 'allowed' && e.actorId === own.seed.users.viewer!.id)).toBe(true);
    expect((await ownAudit('auth.lock')).length).toBeGreaterThan(0);
  });

  it('locks a client address that tries many accounts', async () => {
    const headers = { 'x-forwarded-for': '203.0.113.9' }; // not trusted: the address is the socket's
    let last = 0;
    for (let i = 0; i < 25; i++) last = (await login(own.app.url, `spray${i}@acme.test`, 'wrong password here', { headers })).status;
    expect(last).toBe(429);
    own.clock.advance(16 * 60_000);
    expect((await login(own.app.url, own.seed.users.owner!.email)).status).toBe(200);
  });
});
