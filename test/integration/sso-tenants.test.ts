import { sql } from 'drizzle-orm';
import { rawRows } from '../helpers/stores.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { secretAad } from '../../server/db/secret-columns.js';
import { OIDC_PATHS } from '../../server/sso/service.js';
import { Browser } from '../fakes/oidc-browser.js';
import { sessionOf, ssoLogin } from '../helpers/sso.js';
import { startSsoApp, type SsoApp } from '../fakes/oidc-app.js';
import { listenOidcProvider, type FakeOp } from '../fakes/oidc-provider.js';
import { runCliOk } from '../helpers/cli.js';
import { call, login as localLogin, PASSWORD, seedTenant, sys, type Session } from '../helpers/identity.js';

/**
 * Tenant IdPs: configured through the admin API by a tenant owner (and by a platform admin
 * for another tenant), the trust boundaries between tenants, enforce-SSO, the operator's
 * claims view and the CLI.
 */
let op: FakeOp;
let app: SsoApp;
let a: Awaited<ReturnType<typeof seedTenant>>;
let b: Awaited<ReturnType<typeof seedTenant>>;
let ownerA: Session;
let platform: Session;
let idpA: any;
let idpB: any;
const SECRET_A = 'tenant-a-secret-0123456789abcdef';
const SECRET_B = 'tenant-b-secret-0123456789abcdef';

const sso = (br: Browser, idp: string, sub: string) => ssoLogin(br, op, app.url, `${app.url}/auth/oidc/${idp}/login`, sub);
const session = (br: Browser) => sessionOf(br, app.url);

beforeAll(async () => {
  op = await listenOidcProvider();
  app = await startSsoApp();
  const client = (id: string, secret: string) => ({
    client_id: id,
    client_secret: secret,
    redirect_uris: [`${app.url}${OIDC_PATHS.callback}`],
    backchannel_logout_uri: `${app.url}${OIDC_PATHS.backchannelLogout}`,
  });
  await op.configure([client('tenant-a', SECRET_A), client('tenant-b', SECRET_B)]);
  const s = app.services;
  a = await seedTenant(s, 'ta', ['owner', 'member']);
  b = await seedTenant(s, 'tb', ['owner']);
  await s.identity.users.create(sys(s), { email: 'root@platform.test', password: PASSWORD, platformAdmin: true });
  ownerA = await localLogin(app.url, a.users.owner!.email);
  platform = await localLogin(app.url, 'root@platform.test');
  // JIT and e-mail linking need a domain a platform admin verified for the tenant (issue 16).
  await s.identity.domains.add(a.ctx, 'a.test');
  await s.identity.domains.verify(a.ctx, 'a.test');
  op.users.alice = {
    email: 'alice@a.test',
    email_verified: true,
    groups: ['/a/eng'],
    roles: ['enclave-admin'],
    realm_access: { roles: ['enclave-admin'] },
    resource_access: { 'tenant-a': { roles: ['viewer'] } },
    tenant: b.tenant.id,
  };
  op.users.bob = { email: 'bob@evil.test', email_verified: true, groups: ['/a/eng'] };
  op.users.carol = { email: 'owner@tb.test', email_verified: true, groups: ['/a/eng'] };
  op.users.root = { email: 'root@platform.test', email_verified: true, groups: ['/a/eng'] };
}, 30_000);

afterAll(async () => {
  await app?.close();
  await op?.close();
});

// In order, also under --sequence.shuffle: a story across these describes. The IdPs the first
// tests create (idpA, idpB) are the ones the trust-boundary and CLI tests sign in through, and
// the claims view shows what earlier logins received; a set-up per test would replay all of it.
describe('tenant IdPs (one story, in order)', { shuffle: false }, () => {
  describe('tenant IdPs through the admin API', () => {
    it('a tenant owner adds an IdP; the secret is never returned and is encrypted at rest', async () => {
      const r = await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps`, {
        method: 'POST',
        session: ownerA,
        body: {
          name: 'Acme Okta',
          issuer: op.issuer,
          client_id: 'tenant-a',
          client_secret: SECRET_A,
          roles_path: 'resource_access.tenant-a.roles',
          groups_path: 'groups',
          mapping: [
            { claim: 'groups', value: '/a/eng', role: 'member' },
            { claim: 'groups', value: '/a/admins', role: 'admin' },
          ],
          allowed_domains: ['a.test'],
          jit: true,
          // Turned on in the enforce-SSO test below: from then on password sessions of A's
          // members (the owner's too) no longer act in A (issue 16).
          enforce_sso: false,
        },
      });
      expect(r.status).toBe(201);
      idpA = r.body;
      expect(JSON.stringify(r.body)).not.toContain(SECRET_A);
      expect(r.body.has_client_secret).toBe(true);
      const raw = ((await rawRows(app.services.store, sql`SELECT client_secret FROM sso_idps WHERE id = ${idpA.id}`)) as { client_secret: string }[])[0]!;
      expect(raw.client_secret).not.toContain(SECRET_A);
      expect(app.services.secrets.decrypt(raw.client_secret, secretAad('sso_idps', 'client_secret', idpA.id))).toBe(SECRET_A);
    });

    it('a tenant IdP mapping cannot express platform admin, nor an insecure or Entra "common" issuer', async () => {
      const base = { name: 'x', issuer: op.issuer, client_id: 'tenant-a', client_secret: 's' };
      const bad = [
        { ...base, mapping: [{ claim: 'roles', value: 'enclave-admin', platform_admin: true }] },
        { ...base, mapping: [{ claim: 'roles', value: 'enclave-admin', role: 'platform_admin' }] },
        { ...base, issuer: 'http://idp.example.com' },
        { ...base, issuer: 'https://login.microsoftonline.com/common/v2.0' },
      ];
      for (const body of bad) {
        const r = await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps`, { method: 'POST', session: ownerA, body });
        expect(r.status, JSON.stringify(body)).toBe(400);
      }
    });

    it('a platform admin adds tenant B its own IdP; tenant A cannot see or touch it (404)', async () => {
      const r = await call(app.url, `/admin/api/tenants/${b.tenant.id}/sso/idps`, {
        method: 'POST',
        session: platform,
        body: { name: 'B SSO', issuer: op.issuer, client_id: 'tenant-b', client_secret: SECRET_B, groups_path: 'groups', mapping: [{ claim: 'groups', value: '/b/eng', role: 'member' }], jit: true },
      });
      expect(r.status).toBe(201);
      idpB = r.body;
      for (const [method, path] of [
        ['GET', `/admin/api/tenants/${b.tenant.id}/sso/idps`],
        ['GET', `/admin/api/tenants/${b.tenant.id}/sso/idps/${idpB.id}`],
        ['GET', `/admin/api/tenants/${a.tenant.id}/sso/idps/${idpB.id}`],
        ['PATCH', `/admin/api/tenants/${a.tenant.id}/sso/idps/${idpB.id}`],
        ['DELETE', `/admin/api/tenants/${a.tenant.id}/sso/idps/${idpB.id}`],
        ['GET', `/admin/api/tenants/${a.tenant.id}/sso/idps/${idpB.id}/claims`],
      ] as const) {
        const res = await call(app.url, path, { method, session: ownerA, ...(method === 'PATCH' ? { body: { enabled: false } } : {}) });
        expect(res.status, `${method} ${path}`).toBe(404);
      }
      const mine = await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps`, { session: ownerA });
      expect(mine.body.data.map((x: any) => x.id)).toEqual([idpA.id]);
    });

    it('only platform admins read or change the platform IdP mapping', async () => {
      expect((await call(app.url, '/admin/api/sso/platform', { session: ownerA })).status).toBe(403);
      const put = await call(app.url, '/admin/api/sso/platform', {
        method: 'PUT',
        session: ownerA,
        body: { claim_source: 'id_token', roles_path: 'roles', groups_path: null, rules: [{ claim: 'roles', value: 'x', platform_admin: true }], allowed_domains: [], jit: true },
      });
      expect(put.status).toBe(403);
      // Who asks is decided before what they sent: an invalid body from a tenant admin is a 403,
      // not a 400 that would describe the platform schema to them.
      const bad = await call(app.url, '/admin/api/sso/platform', { method: 'PUT', session: ownerA, body: { claim_source: 42 } });
      expect(bad.status).toBe(403);
      expect(bad.body.error.code).toBe('permission_denied');
      expect((await call(app.url, '/admin/api/sso/platform', { session: platform })).body.configured).toBe(false);
    });

    it('the sign-in buttons of a tenant list only its own IdPs', async () => {
      // With an address of a domain verified for the tenant (the login hint); a slug alone lists
      // nothing, the same as an unknown tenant (no enumeration).
      const res = (await (await fetch(`${app.url}/auth/oidc/providers?tenant=ta&email=someone@a.test`)).json()) as any;
      expect(res.data).toEqual([{ id: idpA.id, name: 'Acme Okta', tenant: 'ta', login_path: `/auth/oidc/${idpA.id}/login` }]);
      expect((await (await fetch(`${app.url}/auth/oidc/providers?email=someone@a.test`)).json()) as any).toEqual(res);
      const known = (await (await fetch(`${app.url}/auth/oidc/providers?tenant=ta`)).json()) as any;
      const unknown = (await (await fetch(`${app.url}/auth/oidc/providers?tenant=no-such-tenant`)).json()) as any;
      expect(known).toEqual(unknown);
      expect(known.data).toEqual([]);
      expect(((await (await fetch(`${app.url}/auth/oidc/providers?tenant=tb&email=someone@a.test`)).json()) as any).data).toEqual([]);
    });
  });

  describe('trust boundaries', () => {
    it("a user of tenant A's IdP lands in A only; a tenant claim and a platform-admin role in the token are ignored", async () => {
      const br = new Browser();
      expect((await sso(br, idpA.id, 'alice')).status).toBe(302);
      const s = await session(br);
      expect(s.body.tenant.id).toBe(a.tenant.id);
      expect(s.body.role).toBe('member');
      expect(s.body.user.platform_admin).toBe(false);
      expect(s.body.tenants.map((t: any) => t.slug)).toEqual(['ta']);
      const sw = await br.request(`${app.url}/auth/switch-tenant`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': s.body.csrf_token },
        body: JSON.stringify({ tenant: 'tb' }),
      });
      expect(sw.status).toBe(404);
      expect((await br.request(`${app.url}/admin/api/tenants/${b.tenant.id}`)).status).toBe(404);
      expect((await br.request(`${app.url}/admin/api/sso/platform`)).status).toBe(403);
    });

    it('the IdP group claim makes team memberships at each login (teams whose idp_group is a group; case-insensitive; a dropped group leaves its team)', async () => {
      const s = app.services;
      const eng = await s.teams.create(a.ctx, { name: 'Engineering', idp_group: '/a/eng' });
      const ops = await s.teams.create(a.ctx, { name: 'Operations', idp_group: '/A/OPS' });
      const alice = (await s.identity.users.byEmail('alice@a.test'))!;
      const teamsOf = async () => (await Promise.all([eng, ops].map(async (t) => ((await s.teams.members(a.ctx, t.id)).some((m) => m.userId === alice.id && m.source === 'idp') ? t.name : null)))).filter(Boolean);
      op.users.alice!.groups = ['/a/eng', '/a/ops'];
      try {
        expect((await sso(new Browser(), idpA.id, 'alice')).status).toBe(302);
        expect(await teamsOf()).toEqual(['Engineering', 'Operations']);
        op.users.alice!.groups = ['/a/eng'];
        expect((await sso(new Browser(), idpA.id, 'alice')).status).toBe(302);
        expect(await teamsOf()).toEqual(['Engineering']);
        expect((await s.teams.resolve(a.tenant.id, alice.id, undefined))?.name).toBe('Engineering');
      } finally {
        op.users.alice!.groups = ['/a/eng'];
      }
    });

    it("the same person through tenant B's IdP gets no role there without B's mapping: refused, no membership", async () => {
      // The same issuer and subject, but linked through A's IdP: B's IdP is not authoritative
      // for that account at all (issue 16), before any mapping is looked at.
      const r = await sso(new Browser(), idpB.id, 'alice');
      expect(r).toEqual({ status: 403, code: 'sso_account_link_refused' });
      const alice = (await app.services.identity.users.byEmail('alice@a.test'))!;
      expect((await app.services.identity.sessions.memberships(alice.id)).map((m) => m.slug)).toEqual(['ta']);
    });

    it('allowed e-mail domains are enforced', async () => {
      expect(await sso(new Browser(), idpA.id, 'bob')).toEqual({ status: 403, code: 'sso_email_domain_not_allowed' });
    });

    it('never links an existing account of another tenant, or a platform admin, by e-mail', async () => {
      await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps/${idpA.id}`, { method: 'PATCH', session: ownerA, body: { allowed_domains: [] } });
      expect(await sso(new Browser(), idpA.id, 'carol')).toEqual({ status: 403, code: 'sso_account_link_refused' });
      expect(await sso(new Browser(), idpA.id, 'root')).toEqual({ status: 403, code: 'sso_account_link_refused' });
      expect((await app.services.identity.users.byEmail('root@platform.test'))!.platformAdmin).toBe(true);
      await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps/${idpA.id}`, { method: 'PATCH', session: ownerA, body: { allowed_domains: ['a.test'] } });
    });

    it('enforce SSO: a member of the tenant cannot use a password; a platform admin keeps the break-glass login', async () => {
      const on = await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps/${idpA.id}`, { method: 'PATCH', session: ownerA, body: { enforce_sso: true } });
      expect(on.status).toBe(200);
      const r = await localLogin(app.url, a.users.member!.email);
      expect(r.status).toBe(403);
      expect(r.body.error.code).toBe('sso_required');
      expect((await localLogin(app.url, 'root@platform.test')).status).toBe(200);
      expect((await localLogin(app.url, b.users.owner!.email)).status).toBe(200);
      // The owner's password session no longer acts in A either; the platform admin turns it off.
      expect((await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps`, { session: ownerA })).status).toBe(404);
      await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps/${idpA.id}`, { method: 'PATCH', session: platform, body: { enforce_sso: false } });
      expect((await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps`, { session: ownerA })).status).toBe(200);
    });

    it('the admin sees the last received mapped claim values (no tokens, no e-mail) and a passing discovery test', async () => {
      const c = await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps/${idpA.id}/claims`, { session: ownerA });
      expect(c.status).toBe(200);
      expect(c.body.last_claims).toMatchObject({ source: 'id_token', groups: ['/a/eng'], roles_path: 'resource_access.tenant-a.roles' });
      expect(JSON.stringify(c.body)).not.toMatch(/eyJ|@a\.test|@evil/);
      const t = await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps/${idpA.id}/test`, { method: 'POST', session: ownerA });
      expect(t.body).toMatchObject({ ok: true, pkce_s256: true, end_session: true });
    });

    it('a disabled IdP cannot be used', async () => {
      await call(app.url, `/admin/api/tenants/${b.tenant.id}/sso/idps/${idpB.id}`, { method: 'PATCH', session: platform, body: { enabled: false } });
      const res = await fetch(`${app.url}/auth/oidc/${idpB.id}/login`, { redirect: 'manual' });
      expect(res.status).toBe(404);
    });

    it('no token or claim value appears in the logs', () => {
      const logs = app.logs.join('');
      expect(logs).not.toContain('eyJ');
      expect(logs).not.toContain('alice@a.test');
      expect(logs).not.toContain(SECRET_A);
    });
  });

  describe('enclave sso (CLI)', () => {
    const cli = (args: string[], input?: string) =>
      runCliOk(args, { ENCLAVE_DATA_DIR: app.services.config.dataDir, ENCLAVE_MASTER_KEY: app.services.config.masterKey!, ENCLAVE_LOG_LEVEL: 'silent', ENCLAVE_OIDC_ALLOW_LOOPBACK_HTTP: 'true' }, input);

    it('add, list, test and remove a tenant IdP', async () => {
      const added = await cli(['sso', 'add', '--tenant', 'tb', '--name', 'CLI IdP', '--issuer', op.issuer, '--client-id', 'tenant-b', '--map-group', '/b/eng=member', '--groups-path', 'groups', '--jit', '--json'], SECRET_B);
      const row = JSON.parse(added.stdout);
      expect(row).toMatchObject({ name: 'CLI IdP', tenant_id: b.tenant.id, jit: true, mapping: [{ claim: 'groups', value: '/b/eng', role: 'member' }] });
      expect(added.stdout).not.toContain(SECRET_B);
      const list = JSON.parse((await cli(['sso', 'list', '--json'])).stdout) as any[];
      expect(list.map((x) => x.id)).toEqual(expect.arrayContaining([idpA.id, idpB.id, row.id]));
      const test = await cli(['sso', 'test', idpA.id]);
      expect(test.stdout).toMatch(/^ok: issuer/);
      expect(test.stdout).toContain('/a/eng');
      await cli(['sso', 'remove', row.id]);
      const after = JSON.parse((await cli(['sso', 'list', '--tenant', 'tb', '--json'])).stdout) as any[];
      expect(after.map((x) => x.id)).toEqual([idpB.id]);
      await expect(cli(['sso', 'remove', row.id])).rejects.toMatchObject({ code: 3 });
    }, 60_000);
  });
});
