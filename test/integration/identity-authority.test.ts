import { sql } from 'drizzle-orm';
import { rawRows } from '../helpers/stores.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OIDC_PATHS } from '../../server/sso/service.js';
import { Browser } from '../fakes/oidc-browser.js';
import { runCliOk } from '../helpers/cli.js';
import { ssoLogin } from '../helpers/sso.js';
import { startSsoApp, type SsoApp } from '../fakes/oidc-app.js';
import { listenOidcProvider, type FakeOp } from '../fakes/oidc-provider.js';
import { call, login as localLogin, PASSWORD, seedTenant, sys, type Session } from '../helpers/identity.js';

/**
 * The identity authority's positive paths (issue 16) and the medium findings around it:
 * invite → accept → member (existing account and new address), verified domain + JIT,
 * an IdP identity linked by the account holder, accepting an invitation through the
 * tenant's IdP, the CLI for verified domains, throttled current_password, the common list.
 */
let op: FakeOp;
let app: SsoApp;
let a: Awaited<ReturnType<typeof seedTenant>>;
let b: Awaited<ReturnType<typeof seedTenant>>;
let ownerA: Session;
let ownerB: Session;
let idpA: { id: string };
const SECRET = 'tenant-a-secret-0123456789abcdef';

const sso = (br: Browser, start: string, sub: string) => ssoLogin(br, op, app.url, start, sub);
const memberships = async (email: string) => {
  const u = await app.services.identity.users.byEmail(email);
  return u ? (await app.services.identity.sessions.memberships(u.id)).map((m) => `${m.slug}:${m.role}`) : [];
};
const invite = (session: Session, tenantId: string, email: string, role = 'member') =>
  call(app.url, `/admin/api/tenants/${tenantId}/members`, { method: 'POST', session, body: { email, role } });

beforeAll(async () => {
  op = await listenOidcProvider();
  app = await startSsoApp();
  await op.configure([{ client_id: 'tenant-a', client_secret: SECRET, redirect_uris: [`${app.url}${OIDC_PATHS.callback}`] }]);
  const s = app.services;
  a = await seedTenant(s, 'ia', ['owner']);
  b = await seedTenant(s, 'ib', ['owner', 'member']);
  await s.identity.users.create(sys(s), { email: 'root@platform.test', password: PASSWORD, platformAdmin: true });
  ownerA = await localLogin(app.url, a.users.owner!.email);
  ownerB = await localLogin(app.url, b.users.owner!.email);
  idpA = await s.sso.createIdp(a.ctx, { name: 'IA IdP', issuer: op.issuer, client_id: 'tenant-a', client_secret: SECRET, jit: true, default_role: 'member' });
  op.users.jit = { email: 'jit@ia.test', email_verified: true, name: 'Jit' };
  op.users.unverified = { email: 'unverified@ia.test', email_verified: false };
  op.users.linker = { email: 'someone-else@elsewhere.test', email_verified: true };
  op.users.invitee = { email: 'sso-invitee@partner.test', email_verified: true };
}, 30_000);

afterAll(async () => {
  await app?.close();
  await op?.close();
});

// In order, also under --sequence.shuffle: accounts and memberships carry from step to step
// (the JIT account a verified domain creates is the one another tenant then invites; the member
// an invitation made is the one who links an IdP identity).
describe('identity authority (one story, in order)', { shuffle: false }, () => {
  describe('invitations', () => {
    it('an existing account accepts an invitation while signed in; the inviter then sees the member', async () => {
      const email = b.users.member!.email;
      const inv = await invite(ownerA, a.tenant.id, email, 'admin');
      expect(inv.status).toBe(202);
      const listed = await call(app.url, `/admin/api/tenants/${a.tenant.id}/invitations`, { session: ownerA });
      expect(listed.body.data.map((i: any) => [i.email, i.role, i.status])).toEqual([[email, 'admin', 'pending']]);
      expect(JSON.stringify(listed.body)).not.toContain(inv.body.token);
      expect(await memberships(email)).toEqual(['ib:member']);
      // Nobody else can accept it: not the inviter, not another account.
      expect((await call(app.url, `/auth/invitations/${inv.body.id}/accept`, { method: 'POST', session: ownerA })).status).toBe(404);
      expect((await call(app.url, '/auth/invite/accept', { method: 'POST', session: ownerA, body: { token: inv.body.token } })).body.error.code).toBe('invitation_other_account');
      const invitee = await localLogin(app.url, email);
      const mine = await call(app.url, '/auth/invitations', { session: invitee });
      expect(mine.body.data).toMatchObject([{ id: inv.body.id, role: 'admin', tenant: { slug: 'ia', name: 'IA' } }]);
      const ok = await call(app.url, `/auth/invitations/${inv.body.id}/accept`, { method: 'POST', session: invitee });
      expect(ok.status).toBe(200);
      expect((await memberships(email)).sort()).toEqual(['ia:admin', 'ib:member']);
      expect((await call(app.url, `/auth/invitations/${inv.body.id}/accept`, { method: 'POST', session: invitee })).status).toBe(404);
      const members = await call(app.url, `/admin/api/tenants/${a.tenant.id}/members`, { session: ownerA });
      expect(members.body.data.map((m: any) => m.email)).toContain(email);
    });

    it('a new address accepts through the link with its own password; the link works once, and not after expiry', async () => {
      const inv = await invite(ownerA, a.tenant.id, 'fresh@partner.test');
      const look = await call(app.url, '/auth/invite/lookup', { method: 'POST', body: { token: inv.body.token } });
      expect(look.body).toMatchObject({ email: 'fresh@partner.test', role: 'member', tenant: { slug: 'ia' } });
      // The password policy applies (a well-known password with digits added is refused).
      const weak = await call(app.url, '/auth/invite/accept', { method: 'POST', body: { token: inv.body.token, password: 'sunshine2024!' } });
      expect(weak.body.error.code).toBe('password_policy');
      const acc = await call(app.url, '/auth/invite/accept', { method: 'POST', body: { token: inv.body.token, password: 'Fresh-Partner-Passphrase-9' } });
      expect(acc.status).toBe(200);
      expect(acc.body.account_created).toBe(true);
      expect(acc.headers.get('set-cookie')).toMatch(/enclave_session=/);
      expect(await memberships('fresh@partner.test')).toEqual(['ia:member']);
      expect((await call(app.url, '/auth/invite/accept', { method: 'POST', body: { token: inv.body.token, password: 'Fresh-Partner-Passphrase-9' } })).status).toBe(404);
      const stored = (await rawRows(app.services.store, sql`SELECT token_hash FROM invitations WHERE id = ${inv.body.id}`))[0] as { token_hash: string };
      expect(stored.token_hash).not.toContain(inv.body.token);
      // Expired links are refused like unknown ones.
      const late = await invite(ownerA, a.tenant.id, 'late@partner.test');
      app.services.sqlite!.$client.prepare('UPDATE invitations SET expires_at = 1 WHERE id = ?').run(late.body.id);
      expect((await call(app.url, '/auth/invite/lookup', { method: 'POST', body: { token: late.body.token } })).body.error.code).toBe('invitation_invalid');
    });

    it('the inviter cannot set the password, and a withdrawn invitation cannot be accepted', async () => {
      const r = await call(app.url, `/admin/api/tenants/${a.tenant.id}/members`, { method: 'POST', session: ownerA, body: { email: 'x@partner.test', role: 'member', password: 'Inviter-Chosen-Passphrase-1' } });
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe('password_not_accepted');
      const inv = await invite(ownerA, a.tenant.id, 'withdrawn@partner.test');
      expect((await call(app.url, `/admin/api/tenants/${a.tenant.id}/invitations/${inv.body.id}`, { method: 'DELETE', session: ownerA })).status).toBe(200);
      expect((await call(app.url, '/auth/invite/accept', { method: 'POST', body: { token: inv.body.token, password: 'Withdrawn-Passphrase-77' } })).status).toBe(404);
      // Another tenant's admin cannot list or withdraw A's invitations (404).
      expect((await call(app.url, `/admin/api/tenants/${a.tenant.id}/invitations`, { session: ownerB })).status).toBe(404);
    });
  });

  describe('verified domains and JIT', () => {
    it('JIT is refused until a platform admin verifies the domain (CLI), then creates an account of that tenant', async () => {
      expect(await sso(new Browser(), `${app.url}/auth/oidc/${idpA.id}/login`, 'jit')).toEqual({ status: 403, code: 'sso_email_domain_not_verified' });
      const cli = (args: string[]) =>
        runCliOk(['tenants', 'domains', ...args], { ENCLAVE_DATA_DIR: app.services.config.dataDir, ENCLAVE_MASTER_KEY: app.services.config.masterKey!, ENCLAVE_LOG_LEVEL: 'silent' });
      expect((await cli(['add', 'ia', 'IA.test'])).stdout).toMatch(/_enclave-challenge\.ia\.test TXT "enclave-verify=/);
      expect(await sso(new Browser(), `${app.url}/auth/oidc/${idpA.id}/login`, 'jit')).toEqual({ status: 403, code: 'sso_email_domain_not_verified' });
      await cli(['verify', 'ia', 'ia.test']);
      const list = JSON.parse((await cli(['list', 'ia', '--json'])).stdout) as any[];
      expect(list).toMatchObject([{ domain: 'ia.test', verified: true }]);
      // The same domain cannot be verified for a second tenant.
      await cli(['add', 'ib', 'ia.test']);
      await expect(cli(['verify', 'ib', 'ia.test'])).rejects.toMatchObject({ stderr: expect.stringContaining('verified for another tenant') });
      await cli(['remove', 'ib', 'ia.test']);

      const br = new Browser();
      expect((await sso(br, `${app.url}/auth/oidc/${idpA.id}/login`, 'jit')).status).toBe(302);
      expect(await memberships('jit@ia.test')).toEqual(['ia:member']);
      // An unverified address of the domain is still refused.
      expect((await sso(new Browser(), `${app.url}/auth/oidc/${idpA.id}/login`, 'unverified')).status).toBe(403);
      // The sign-in button shows for an address of the verified domain.
      const p = (await (await fetch(`${app.url}/auth/oidc/providers?email=anyone@ia.test`)).json()) as any;
      expect(p.data.map((x: any) => x.id)).toEqual([idpA.id]);
    });

    it('inviting the JIT account from another tenant goes through acceptance like anyone else', async () => {
      const inv = await invite(ownerB, b.tenant.id, 'jit@ia.test', 'viewer');
      expect(inv.status).toBe(202);
      expect(await memberships('jit@ia.test')).toEqual(['ia:member']);
      const br = new Browser();
      expect((await sso(br, `${app.url}/auth/oidc/${idpA.id}/login`, 'jit')).status).toBe(302);
      const s = (await (await br.request(`${app.url}/auth/session`)).json()) as any;
      const mine = await br.request(`${app.url}/auth/invitations`);
      const pending = ((await mine.json()) as any).data;
      expect(pending.map((i: any) => i.tenant.slug)).toEqual(['ib']);
      const acc = await br.request(`${app.url}/auth/invitations/${pending[0].id}/accept`, { method: 'POST', headers: { 'x-csrf-token': s.csrf_token } });
      expect(acc.status).toBe(200);
      expect((await memberships('jit@ia.test')).sort()).toEqual(['ia:member', 'ib:viewer']);
    });

    it('only platform admins manage domains through the admin API', async () => {
      expect((await call(app.url, `/admin/api/tenants/${a.tenant.id}/domains`, { session: ownerA })).status).toBe(403);
      const root = await localLogin(app.url, 'root@platform.test');
      const r = await call(app.url, `/admin/api/tenants/${a.tenant.id}/domains`, { session: root });
      expect(r.body.data.map((d: any) => d.domain)).toEqual(['ia.test']);
      expect((await call(app.url, `/admin/api/tenants/${a.tenant.id}/domains`, { method: 'POST', session: root, body: { domain: 'not a domain' } })).body.error.code).toBe('invalid_domain');
    });
  });

  describe('linking and the SSO route of an invitation', () => {
    it("a member, signed in, links an IdP identity of another address; that IdP then signs them in; a non-member cannot link", async () => {
      const nonMember = new Browser();
      const l0 = await nonMember.request(`${app.url}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: b.users.owner!.email, password: PASSWORD }) });
      const s0 = await nonMember.request(`${app.url}/auth/oidc/${idpA.id}/link`, { method: 'POST', headers: { 'x-csrf-token': ((await l0.json()) as any).csrf_token } });
      expect(await sso(nonMember, ((await s0.json()) as any).url, 'linker')).toEqual({ status: 403, code: 'sso_not_a_member' });
      expect(await memberships(b.users.owner!.email)).toEqual(['ib:owner']);
      const br = new Browser();
      const login = await br.request(`${app.url}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: b.users.member!.email, password: PASSWORD }) });
      const csrf = ((await login.json()) as any).csrf_token;
      // Before linking, A's IdP cannot assert this account (another address, and B's owner).
      expect((await sso(new Browser(), `${app.url}/auth/oidc/${idpA.id}/login`, 'linker')).status).toBe(403);
      const start = await br.request(`${app.url}/auth/oidc/${idpA.id}/link`, { method: 'POST', headers: { 'x-csrf-token': csrf } });
      expect(start.status).toBe(200);
      const { url } = (await start.json()) as { url: string };
      expect((await sso(br, url, 'linker')).status).toBe(302);
      const u = (await app.services.identity.users.byEmail(b.users.member!.email))!;
      expect((await app.services.sso.repo.identitiesOfUser(u.id)).map((i) => i.origin)).toEqual(['linked_by_user']);
      const again = new Browser();
      expect((await sso(again, `${app.url}/auth/oidc/${idpA.id}/login`, 'linker')).status).toBe(302);
      expect((((await (await again.request(`${app.url}/auth/session`)).json()) as any).user.email)).toBe(b.users.member!.email);
      // Removed from A, the IdP does not add the membership back.
      await app.services.identity.users.removeMember(a.ctx, u.id);
      expect(await sso(new Browser(), `${app.url}/auth/oidc/${idpA.id}/login`, 'linker')).toEqual({ status: 403, code: 'sso_not_a_member' });
      expect(await memberships(b.users.member!.email)).toEqual(['ib:member']);
      // Without CSRF the link cannot be started.
      expect((await br.request(`${app.url}/auth/oidc/${idpA.id}/link`, { method: 'POST' })).status).toBe(403);
    });

    it('a new address accepts an invitation by signing in with the inviting tenant’s IdP', async () => {
      const inv = await invite(ownerA, a.tenant.id, 'sso-invitee@partner.test', 'viewer');
      const br = new Browser();
      const start = await br.request(`${app.url}/auth/invite/sso`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: inv.body.token, idp: idpA.id }) });
      expect(start.status).toBe(200);
      expect((await sso(br, ((await start.json()) as any).url, 'invitee')).status).toBe(302);
      expect(await memberships('sso-invitee@partner.test')).toEqual(['ia:member']);
      const u = (await app.services.identity.users.byEmail('sso-invitee@partner.test'))!;
      expect(u.passwordHash).toBeNull();
      expect((await app.services.sso.repo.identitiesOfUser(u.id)).map((i) => i.origin)).toEqual(['provisioned']);
    });
  });

  describe('password change', () => {
    it('wrong current passwords are throttled like logins', async () => {
      const s = await localLogin(app.url, a.users.owner!.email);
      const codes: string[] = [];
      for (let i = 0; i < 6; i++) {
        const r = await call(app.url, '/auth/password', { method: 'POST', session: s, body: { current_password: `wrong-${i}-password-xx`, new_password: 'Another-Good-Passphrase-5' } });
        codes.push(r.body.error.code);
      }
      expect(codes.slice(0, 4)).toEqual(['wrong_password', 'wrong_password', 'wrong_password', 'wrong_password']);
      expect(codes.at(-1)).toBe('auth_locked');
      // Locked: even the right password is refused until the lock ends.
      const r = await call(app.url, '/auth/password', { method: 'POST', session: s, body: { current_password: PASSWORD, new_password: 'Another-Good-Passphrase-5' } });
      expect(r.status).toBe(429);
    });
  });
});
