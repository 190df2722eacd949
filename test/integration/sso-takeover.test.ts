import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OIDC_PATHS } from '../../server/sso/service.js';
import { Browser } from '../fakes/oidc-browser.js';
import { sessionOf, ssoLogin } from '../helpers/sso.js';
import { startSsoApp, type SsoApp } from '../fakes/oidc-app.js';
import { listenOidcProvider, type FakeOp } from '../fakes/oidc-provider.js';
import { call, login as localLogin, PASSWORD, seedTenant, sys, type Session } from '../helpers/identity.js';

/**
 * Regression tests for issue 16 (critical): cross-tenant account takeover through
 * membership + tenant SSO, run end to end against the real oidc-provider. Each sequence is
 * the attack as reproduced on the old code; every step that used to succeed is refused.
 */
let op: FakeOp;
let app: SsoApp;
let a: Awaited<ReturnType<typeof seedTenant>>;
let b: Awaited<ReturnType<typeof seedTenant>>;
let ownerA: Session;
const SECRET = 'tenant-a-secret-0123456789abcdef';

const sso = (br: Browser, idp: string, sub: string) => ssoLogin(br, op, app.url, `${app.url}/auth/oidc/${idp}/login`, sub);
const session = (br: Browser) => sessionOf(br, app.url);
const memberships = async (email: string) => {
  const u = await app.services.identity.users.byEmail(email);
  return u ? (await app.services.identity.sessions.memberships(u.id)).map((m) => m.slug) : [];
};
const addIdp = async (body: Record<string, unknown>) => {
  const r = await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps`, {
    method: 'POST',
    session: ownerA,
    body: { name: 'A IdP', issuer: op.issuer, client_id: 'tenant-a', client_secret: SECRET, ...body },
  });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body as { id: string };
};

beforeAll(async () => {
  op = await listenOidcProvider();
  app = await startSsoApp();
  await op.configure([{ client_id: 'tenant-a', client_secret: SECRET, redirect_uris: [`${app.url}${OIDC_PATHS.callback}`] }]);
  const s = app.services;
  a = await seedTenant(s, 'ta', ['owner']);
  b = await seedTenant(s, 'tb', ['owner']);
  await s.identity.users.create(sys(s), { email: 'root@platform.test', password: PASSWORD, platformAdmin: true, name: 'Root' });
  ownerA = await localLogin(app.url, a.users.owner!.email);
  // The IdP tenant A controls asserts B's owner's address (verified), and squats new ones.
  op.users['mallory-as-b'] = { email: 'owner@tb.test', email_verified: true };
  op.users['mallory-as-root'] = { email: 'root@platform.test', email_verified: true };
  op.users.squat = { email: 'newhire@tc.test', email_verified: true, name: 'Squatter' };
}, 30_000);

afterAll(async () => {
  await app?.close();
  await op?.close();
});

// In order, also under --sequence.shuffle: each describe is a sequence an attacker or a user
// goes through step by step (an invitation accepted, then enforce_sso, then the landing tenant),
// and later steps start where earlier ones left the accounts and memberships.
describe('issue 16 (one story, in order)', { shuffle: false }, () => {
  describe('issue 16: the takeover sequence is refused at every step', () => {
    it("adding another tenant's owner creates only an invitation: no membership, nothing about the account", async () => {
      const r = await call(app.url, `/admin/api/tenants/${a.tenant.id}/members`, { method: 'POST', session: ownerA, body: { email: 'owner@tb.test', role: 'viewer' } });
      expect(r.status).toBe(202);
      expect(r.body.object).toBe('invitation');
      expect(JSON.stringify(r.body)).not.toMatch(/usr_|platform_admin|"name"/);
      expect((await memberships('owner@tb.test'))).toEqual(['tb']);
    });

    it("A's IdP asserting B's owner's verified address gets no session, also with the address's domain in allowed_domains", async () => {
      const idp = await addIdp({ allowed_domains: ['tb.test'], default_role: 'viewer', jit: true });
      const br = new Browser();
      expect(await sso(br, idp.id, 'mallory-as-b')).toEqual({ status: 403, code: 'sso_account_link_refused' });
      expect((await session(br)).status).toBe(401);
      const victim = (await app.services.identity.users.byEmail('owner@tb.test'))!;
      expect(await app.services.sso.repo.identitiesOfUser(victim.id)).toEqual([]);
      expect((await memberships('owner@tb.test'))).toEqual(['tb']);
      // Nor a platform admin.
      expect((await sso(new Browser(), idp.id, 'mallory-as-root')).status).toBe(403);
    });

    it('even a domain a platform admin verified for A never links an account that belongs to another tenant', async () => {
      const root = await localLogin(app.url, 'root@platform.test');
      const add = await call(app.url, `/admin/api/tenants/${a.tenant.id}/domains`, { method: 'POST', session: root, body: { domain: 'tb.test' } });
      expect(add.status).toBe(201);
      const ver = await call(app.url, `/admin/api/tenants/${a.tenant.id}/domains/tb.test/verify`, { method: 'POST', session: root });
      expect(ver.status).toBe(200);
      const idp = (await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps`, { session: ownerA })).body.data[0];
      expect(await sso(new Browser(), idp.id, 'mallory-as-b')).toEqual({ status: 403, code: 'sso_account_link_refused' });
      expect((await memberships('owner@tb.test'))).toEqual(['tb']);
      await call(app.url, `/admin/api/tenants/${a.tenant.id}/domains/tb.test`, { method: 'DELETE', session: root });
    });

    it('a tenant admin cannot verify a domain for its own tenant', async () => {
      const add = await call(app.url, `/admin/api/tenants/${a.tenant.id}/domains`, { method: 'POST', session: ownerA, body: { domain: 'tb.test' } });
      expect(add.status).toBe(403);
      const ver = await call(app.url, `/admin/api/tenants/${a.tenant.id}/domains/tb.test/verify`, { method: 'POST', session: ownerA });
      expect(ver.status).toBe(403);
    });
  });

  describe('issue 16: squatting', () => {
    it("JIT through A's IdP does not create an account outside A's verified domains", async () => {
      const idp = (await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps`, { session: ownerA })).body.data[0];
      await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps/${idp.id}`, { method: 'PATCH', session: ownerA, body: { allowed_domains: ['tc.test'] } });
      expect(await sso(new Browser(), idp.id, 'squat')).toEqual({ status: 403, code: 'sso_email_domain_not_verified' });
      expect(await app.services.identity.users.byEmail('newhire@tc.test')).toBeUndefined();
    });

    it("a later invitation from B is not attached to anyone's account; the invitee sets the password on acceptance", async () => {
      const ownerB = await localLogin(app.url, b.users.owner!.email);
      const inv = await call(app.url, `/admin/api/tenants/${b.tenant.id}/members`, { method: 'POST', session: ownerB, body: { email: 'newhire@tc.test', role: 'member' } });
      expect(inv.status).toBe(202);
      expect((await memberships('newhire@tc.test'))).toEqual([]);
      const mine = 'Newhire-Own-Passphrase-2030';
      const acc = await call(app.url, '/auth/invite/accept', { method: 'POST', body: { token: inv.body.token, password: mine } });
      expect(acc.status, JSON.stringify(acc.body)).toBe(200);
      expect((await memberships('newhire@tc.test'))).toEqual(['tb']);
      expect((await localLogin(app.url, 'newhire@tc.test', mine)).status).toBe(200);
      // The squatter's IdP still cannot sign in as the account now that it exists.
      const idp = (await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps`, { session: ownerA })).body.data[0];
      expect((await sso(new Browser(), idp.id, 'squat')).status).toBe(403);
    });

    it('the add response is the same for an existing account, a platform admin and a new address', async () => {
      const shape = async (email: string) => {
        const r = await call(app.url, `/admin/api/tenants/${a.tenant.id}/members`, { method: 'POST', session: ownerA, body: { email, role: 'member' } });
        expect(r.status).toBe(202);
        return Object.keys(r.body).sort().join(',') + `|${r.body.status}|${r.body.email === email}`;
      };
      const existing = await shape('newhire@tc.test');
      expect(await shape('root@platform.test')).toBe(existing);
      expect(await shape('nobody-yet@elsewhere.test')).toBe(existing);
      expect((await memberships('root@platform.test'))).toEqual([]);
    });
  });

  describe('issue 16: enforce_sso and landing', () => {
    it("A's enforce_sso never blocks password login of a member of B (landing in B), nor of a platform admin", async () => {
      // B's owner legitimately accepts an invitation to A (signed in as themselves).
      const inv = await call(app.url, `/admin/api/tenants/${a.tenant.id}/members`, { method: 'POST', session: ownerA, body: { email: b.users.owner!.email, role: 'viewer' } });
      expect(inv.status).toBe(202);
      const ownerB = await localLogin(app.url, b.users.owner!.email);
      const pending = await call(app.url, '/auth/invitations', { session: ownerB });
      expect(pending.body.data.map((i: any) => i.tenant.slug)).toEqual(['ta']);
      expect((await call(app.url, `/auth/invitations/${pending.body.data[0].id}/accept`, { method: 'POST', session: ownerB })).status).toBe(200);
      expect(await memberships(b.users.owner!.email)).toEqual(['ta', 'tb']);
      // Back in B, then A turns on enforce_sso.
      await call(app.url, '/auth/switch-tenant', { method: 'POST', session: ownerB, body: { tenant: 'tb' } });
      const idp = (await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps`, { session: ownerA })).body.data[0];
      expect((await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps/${idp.id}`, { method: 'PATCH', session: ownerA, body: { enforce_sso: true } })).status).toBe(200);
      const again = await localLogin(app.url, b.users.owner!.email);
      expect(again.status, JSON.stringify(again.body)).toBe(200);
      expect(again.body.tenant.slug).toBe('tb');
      // A's membership needs A's IdP: a password session cannot act in A.
      const sw = await call(app.url, '/auth/switch-tenant', { method: 'POST', session: again, body: { tenant: 'ta' } });
      expect(sw.status).toBe(403);
      expect(sw.body.error.code).toBe('sso_required');
      const root = await localLogin(app.url, 'root@platform.test');
      expect(root.status).toBe(200);
      // A's own password sessions cannot act in A any more either; the platform admin turns it off.
      expect((await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps`, { session: ownerA })).status).toBe(404);
      const off = await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps/${idp.id}`, { method: 'PATCH', session: root, body: { enforce_sso: false } });
      expect(off.status).toBe(200);
    });

    it('login lands in the tenant last used, never in the first by sort order', async () => {
      const email = b.users.owner!.email; // member of ta and tb; last used: tb
      const s = await localLogin(app.url, email);
      expect(s.body.tenant.slug).toBe('tb');
      await call(app.url, '/auth/switch-tenant', { method: 'POST', session: s, body: { tenant: 'ta' } });
      expect((await localLogin(app.url, email)).body.tenant.slug).toBe('ta');
      await call(app.url, '/auth/switch-tenant', { method: 'POST', session: await localLogin(app.url, email), body: { tenant: 'tb' } });
    });

    it('removing the membership is final: the next IdP login does not re-add it', async () => {
      const idp = (await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps`, { session: ownerA })).body.data[0];
      const victim = (await app.services.identity.users.byEmail(b.users.owner!.email))!;
      await call(app.url, `/admin/api/tenants/${a.tenant.id}/members/${victim.id}`, { method: 'DELETE', session: ownerA });
      expect(await memberships(b.users.owner!.email)).toEqual(['tb']);
      expect((await sso(new Browser(), idp.id, 'mallory-as-b')).status).toBe(403);
      expect(await memberships(b.users.owner!.email)).toEqual(['tb']);
    });
    it('sso_required is decided before the password is checked (a password is no oracle)', async () => {
      const root = await localLogin(app.url, 'root@platform.test');
      const idp = (await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps`, { session: root })).body.data[0];
      await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps/${idp.id}`, { method: 'PATCH', session: root, body: { enforce_sso: true } });
      const wrong = await localLogin(app.url, a.users.owner!.email, 'not-the-password-at-all');
      expect(wrong.status).toBe(403);
      expect(wrong.body.error.code).toBe('sso_required');
      await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps/${idp.id}`, { method: 'PATCH', session: root, body: { enforce_sso: false } });
    });
  });
});
