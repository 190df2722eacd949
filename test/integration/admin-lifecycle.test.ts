import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { call, login, PASSWORD, seedTenant, sys, type Session } from '../helpers/identity.js';

/**
 * The platform admin's lifecycle actions over the admin API, success paths: suspend and resume
 * a tenant, deactivate and reactivate a user — each changes what the tenant's people and keys
 * can do at once, is audited, and is undone by its counterpart.
 */
let app: TestApp;
let root: Session;
let t: Awaited<ReturnType<typeof seedTenant>>;
let secret: string;

beforeAll(async () => {
  app = await startTestApp({ entitlements: unrestricted });
  await app.services.identity.users.create(sys(app.services), { email: 'root@platform.test', password: PASSWORD, platformAdmin: true });
  root = await login(app.url, 'root@platform.test');
  t = await seedTenant(app.services, 'lifecycle', ['owner', 'member']);
  secret = (await app.services.identity.keys.create(t.ctx, { name: 'k', ownerUserId: t.users.member!.id })).secret;
});
afterAll(() => app?.close());

const audited = async (action: string, targetId: string) => (await app.services.identity.audit.list({ action, limit: 5 })).some((e) => e.targetId === targetId && e.outcome === 'allowed');
const keyWorks = async () => (await call(app.url, '/v1/models', { key: secret })).status;

describe('platform admin lifecycle actions', () => {
  it('suspend a tenant: its sessions and keys are refused with tenant_suspended; resume restores both', async () => {
    const member = await login(app.url, t.users.member!.email);
    expect((await call(app.url, '/auth/session', { session: member })).status).toBe(200);
    expect(await keyWorks()).toBe(200);

    const s = await call(app.url, `/admin/api/tenants/${t.tenant.id}/suspend`, { method: 'POST', session: root });
    expect(s.status, JSON.stringify(s.body)).toBe(200);
    expect(s.body).toMatchObject({ id: t.tenant.id, status: 'suspended' });
    expect((await audited('tenant.suspend', t.tenant.id)) || (await audited('tenant.status', t.tenant.id))).toBe(true);
    const refusedKey = await call(app.url, '/v1/models', { key: secret });
    expect(refusedKey.status).toBe(403);
    expect(refusedKey.body.error.code).toBe('tenant_suspended');
    expect((await call(app.url, `/admin/api/tenants?status=suspended`, { session: root })).body.data.map((x: { id: string }) => x.id)).toContain(t.tenant.id);

    const r = await call(app.url, `/admin/api/tenants/${t.tenant.id}/resume`, { method: 'POST', session: root });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id: t.tenant.id, status: 'active' });
    expect(await keyWorks()).toBe(200);
    expect((await call(app.url, '/auth/session', { session: await login(app.url, t.users.member!.email) })).status).toBe(200);
  });

  it('deactivate a user: login refused, sessions ended, keys they own refused; reactivate restores login and keys', async () => {
    const uid = t.users.member!.id;
    const before = await login(app.url, t.users.member!.email);
    expect(before.status).toBe(200);

    const d = await call(app.url, `/admin/api/users/${uid}/deactivate`, { method: 'POST', session: root });
    expect(d.status, JSON.stringify(d.body)).toBe(200);
    expect(d.body).toMatchObject({ id: uid, status: 'deactivated' });
    expect((await audited('user.deactivate', uid))).toBe(true);
    expect((await call(app.url, '/auth/session', { session: before })).status).toBe(401);
    expect((await login(app.url, t.users.member!.email)).status).toBe(401);
    const refusedKey = await call(app.url, '/v1/models', { key: secret });
    expect(refusedKey.status).toBe(401);
    expect(refusedKey.body.error.code).toBe('auth_key_owner_inactive');
    expect((await call(app.url, `/admin/api/users?status=deactivated`, { session: root })).body.data.map((x: { id: string }) => x.id)).toContain(uid);

    const re = await call(app.url, `/admin/api/users/${uid}/reactivate`, { method: 'POST', session: root });
    expect(re.status).toBe(200);
    expect(re.body).toMatchObject({ id: uid, status: 'active' });
    expect((await audited('user.reactivate', uid))).toBe(true);
    expect((await login(app.url, t.users.member!.email)).status).toBe(200);
    expect(await keyWorks()).toBe(200);
  });
});
