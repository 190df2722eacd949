import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OIDC_PATHS as INSTALLER_OIDC_PATHS } from '../../installer/realm.js';
import { OIDC_PATHS } from '../../server/sso/service.js';
import { Browser } from '../fakes/oidc-browser.js';
import { PLATFORM_SECRET, startSsoApp, type SsoApp } from '../fakes/oidc-app.js';
import { listenOidcProvider, type FakeOp } from '../fakes/oidc-provider.js';
import { sys } from '../helpers/identity.js';

/**
 * The full login against a real OpenID Provider (oidc-provider on 127.0.0.1) as the platform
 * IdP, with Keycloak-shaped claims: provisioning, role mapping recomputed at every login,
 * platform admin from the platform IdP only, RP-initiated and back-channel logout.
 */
let op: FakeOp;
let app: SsoApp;

async function login(b: Browser, sub: string, returnTo = '/chat?x=1'): Promise<{ status: number; location: string | null; body: any }> {
  op.nextLogin = sub;
  const r = await b.follow(`${app.url}/auth/oidc/platform/login?returnTo=${encodeURIComponent(returnTo)}`, {
    until: (next) => next.startsWith(app.url) && !next.includes('/auth/oidc/'),
  });
  const last = r.hops.at(-1)!;
  const text = r.stoppedAt ? '' : await r.res.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: last.status, location: r.stoppedAt ?? null, body };
}

async function session(b: Browser): Promise<{ status: number; body: any }> {
  const res = await b.request(`${app.url}/auth/session`);
  return { status: res.status, body: await res.json() };
}

beforeAll(async () => {
  op = await listenOidcProvider();
  app = await startSsoApp({ ENCLAVE_OIDC_ISSUER: op.issuer });
  await op.configure([
    {
      client_id: 'enclave',
      client_secret: PLATFORM_SECRET,
      redirect_uris: [`${app.url}${OIDC_PATHS.callback}`],
      post_logout_redirect_uris: [`${app.url}/`],
      backchannel_logout_uri: `${app.url}${OIDC_PATHS.backchannelLogout}`,
    },
  ]);
  const s = app.services;
  await s.identity.tenants.create(sys(s), { slug: 'acme' });
  await s.sso.setPlatformSettings(sys(s), {
    claim_source: 'id_token',
    roles_path: 'realm_access.roles',
    groups_path: 'groups',
    rules: [
      { claim: 'roles', value: 'enclave-admin', platform_admin: true },
      { claim: 'groups', value: '/acme/eng', tenant: 'acme', role: 'member' },
      { claim: 'groups', value: '/acme/admins', tenant: 'acme', role: 'admin' },
    ],
    allowed_domains: [],
    jit: true,
  });
  op.users.dana = {
    email: 'dana@acme.test',
    email_verified: true,
    name: 'Dana',
    groups: ['/acme/eng', '/acme/admins'],
    realm_access: { roles: ['enclave-user'] },
    resource_access: { enclave: { roles: ['chat'] }, account: { roles: ['view-profile'] } },
  };
  op.users.olga = { email: 'olga@ops.test', email_verified: true, groups: ['/acme/eng'], realm_access: { roles: ['enclave-admin'] } };
}, 30_000);

afterAll(async () => {
  await app?.close();
  await op?.close();
});

// In order, also under --sequence.shuffle: the IdP's users change between logins (dana's groups,
// olga's role) as a story, and the last tests check the counters and logs all the logins before
// them produced.
describe('SSO login with a real OpenID Provider', { shuffle: false }, () => {
  it('serves the paths the bundled Keycloak realm registers', () => {
    expect(OIDC_PATHS.callback).toBe(INSTALLER_OIDC_PATHS.callback);
    expect(OIDC_PATHS.backchannelLogout).toBe(INSTALLER_OIDC_PATHS.backchannelLogout);
    expect(OIDC_PATHS.postLogout).toBe(INSTALLER_OIDC_PATHS.postLogout);
  });

  it('lists the platform sign-in button', async () => {
    const res = await fetch(`${app.url}/auth/oidc/providers`);
    expect(((await res.json()) as any).data).toEqual([{ id: 'platform', name: 'Single sign-on', tenant: null, login_path: '/auth/oidc/platform/login' }]);
  });

  it('sends state, nonce and PKCE S256 in the authorization request, kept in an HttpOnly transaction cookie', async () => {
    const res = await fetch(`${app.url}/auth/oidc/platform/login`, { redirect: 'manual' });
    expect(res.status).toBe(302);
    const loc = new URL(res.headers.get('location')!);
    expect(loc.origin).toBe(op.issuer);
    expect(loc.searchParams.get('code_challenge_method')).toBe('S256');
    expect(loc.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(loc.searchParams.get('state')).toBeTruthy();
    expect(loc.searchParams.get('nonce')).toBeTruthy();
    expect(loc.searchParams.get('redirect_uri')).toBe(`${app.url}/auth/oidc/callback`);
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith('enclave_oidc_tx='))!;
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Lax/i);
    expect(cookie).toMatch(/Max-Age=600/i);
  });

  it('completes the login: provisions the user, maps groups to the tenant role, lands on the relative returnTo', async () => {
    const b = new Browser();
    const r = await login(b, 'dana');
    expect(r.location).toBe(`${app.url}/chat?x=1`);
    const s = await session(b);
    expect(s.status).toBe(200);
    expect(s.body.user.email).toBe('dana@acme.test');
    expect(s.body.user.platform_admin).toBe(false);
    expect(s.body.user.has_password).toBe(false);
    expect(s.body.tenant.slug).toBe('acme');
    expect(s.body.role).toBe('admin');
    const actions = (await app.services.identity.audit.list({ limit: 50 })).map((e) => `${e.action}:${e.outcome}`);
    expect(actions).toEqual(expect.arrayContaining(['sso.provision:allowed', 'sso.role_change:allowed', 'sso.login:allowed', 'auth.login:allowed']));
    const claims = (await app.services.sso.lastClaims(sys(app.services), 'platform'))!;
    expect(claims.roles).toEqual(['enclave-user']);
    expect(claims.groups).toEqual(['/acme/eng', '/acme/admins']);
    expect(claims.claim_names).toEqual(expect.arrayContaining(['realm_access', 'realm_access.roles', 'resource_access.enclave.roles', 'groups']));
    expect(JSON.stringify(claims)).not.toContain('dana@acme.test');
  });

  it('re-login after a group change demotes; losing every mapped group removes the membership and refuses', async () => {
    op.users.dana!.groups = ['/acme/eng'];
    const b = new Browser();
    expect((await login(b, 'dana')).location).toBe(`${app.url}/chat?x=1`);
    expect((await session(b)).body.role).toBe('member');
    const change = (await app.services.identity.audit.list({ action: 'sso.role_change', limit: 1 }))[0]!;
    expect(JSON.parse(change.details)).toMatchObject({ role: 'member', previous_role: 'admin' });

    op.users.dana!.groups = [];
    const b2 = new Browser();
    const r = await login(b2, 'dana');
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('sso_no_mapped_role');
    const user = (await app.services.identity.users.byEmail('dana@acme.test'))!;
    expect(await app.services.identity.sessions.memberships(user.id)).toEqual([]);
    op.users.dana!.groups = ['/acme/eng'];
  });

  it('only the platform IdP grants platform admin, and a later login without the role takes it back', async () => {
    const b = new Browser();
    await login(b, 'olga');
    expect((await session(b)).body.user.platform_admin).toBe(true);
    op.users.olga!.realm_access = { roles: [] };
    const b2 = new Browser();
    await login(b2, 'olga');
    expect((await session(b2)).body.user.platform_admin).toBe(false);
    // The earlier session follows the user's flag (server-side sessions).
    expect((await session(b)).body.user.platform_admin).toBe(false);
  });

  it("the platform IdP's claims view and discovery test: platform admins only; the last mapped values, no token, no e-mail", async () => {
    // A platform admin of its own (the test above takes olga's role away), signed in through the platform IdP.
    op.users.pat = { email: 'pat@ops.test', email_verified: true, groups: ['/acme/eng'], realm_access: { roles: ['enclave-admin', 'enclave-user'] } };
    const admin = new Browser();
    await login(admin, 'pat');
    const csrf = (await session(admin)).body.csrf_token as string;
    const claims = await admin.request(`${app.url}/admin/api/sso/platform/claims`);
    expect(claims.status).toBe(200);
    const c = (await claims.json()) as any;
    expect(c).toMatchObject({ object: 'sso_claims', idp: 'platform', last_claims: { source: 'id_token', groups: ['/acme/eng'] } });
    expect(c.last_claims.roles).toEqual(expect.arrayContaining(['enclave-admin']));
    expect(JSON.stringify(c)).not.toMatch(/eyJ|@ops\.test|@acme\.test/);
    const t = await admin.request(`${app.url}/admin/api/sso/platform/test`, { method: 'POST', headers: { 'x-csrf-token': csrf } });
    expect(t.status).toBe(200);
    expect(await t.json()).toMatchObject({ object: 'sso_test', idp: 'platform', ok: true, pkce_s256: true, end_session: true });

    // A tenant admin (dana administers acme through /acme/admins) reads neither.
    const tenantAdmin = new Browser();
    await login(tenantAdmin, 'dana');
    const tcsrf = (await session(tenantAdmin)).body.csrf_token as string;
    expect((await tenantAdmin.request(`${app.url}/admin/api/sso/platform/claims`)).status).toBe(403);
    expect((await tenantAdmin.request(`${app.url}/admin/api/sso/platform/test`, { method: 'POST', headers: { 'x-csrf-token': tcsrf } })).status).toBe(403);
  });

  it('returnTo accepts relative paths only', async () => {
    for (const evil of ['https://evil.test/x', '//evil.test/x', '/\\evil.test', 'javascript:alert(1)']) {
      const b = new Browser();
      expect((await login(b, 'dana', evil)).location).toBe(`${app.url}/`);
    }
  });

  it('RP-initiated logout ends the session and answers the end-session URL with id_token_hint', async () => {
    const b = new Browser();
    await login(b, 'dana');
    const { body } = await session(b);
    const res = await b.request(`${app.url}/auth/oidc/logout`, { method: 'POST', headers: { 'x-csrf-token': body.csrf_token } });
    expect(res.status).toBe(200);
    const out = (await res.json()) as { end_session_url: string };
    const u = new URL(out.end_session_url);
    expect(u.origin + u.pathname).toBe(`${op.issuer}/session/end`);
    expect(u.searchParams.get('id_token_hint')).toMatch(/^eyJ/);
    expect(u.searchParams.get('post_logout_redirect_uri')).toBe(`${app.url}/`);
    expect((await session(b)).status).toBe(401);
    // The OP accepts it: its confirmation page renders.
    const end = await b.request(out.end_session_url);
    expect(end.status).toBe(200);
  });

  it('back-channel logout from the provider ends the matching session', async () => {
    const b = new Browser();
    await login(b, 'dana');
    expect((await session(b)).status).toBe(200);
    const other = new Browser();
    await login(other, 'olga');

    const page = await b.request(`${op.issuer}/session/end?client_id=enclave`);
    const html = await page.text();
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)?.[1];
    expect(xsrf).toBeTruthy();
    const before = op.backchannel.length;
    await b.follow(`${op.issuer}/session/end/confirm`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `xsrf=${encodeURIComponent(xsrf!)}&logout=yes`,
      until: (next) => next.startsWith(app.url),
    });
    expect(op.backchannel.slice(before)).toEqual([{ url: `${app.url}/auth/oidc/backchannel-logout`, status: 200 }]);
    expect((await session(b)).status).toBe(401);
    expect((await session(other)).status).toBe(200);
    const entry = (await app.services.identity.audit.list({ action: 'sso.logout', limit: 1 }))[0]!;
    expect(JSON.parse(entry.details)).toMatchObject({ kind: 'back_channel', sessions_ended: 1, by: 'sid' });
  });

  it('counts logins by method and outcome', async () => {
    const text = await app.services.metrics.registry.metrics();
    expect(text).toMatch(/enclave_auth_logins_total\{method="oidc",outcome="success"\} [1-9]/);
    expect(text).toMatch(/enclave_auth_logins_total\{method="oidc",outcome="not_permitted"\} [1-9]/);
  });

  it('no token, code or claim value appears in the logs or the audit log', async () => {
    const logs = app.logs.join('');
    expect(logs.length).toBeGreaterThan(1000);
    expect(logs).not.toContain('eyJ');
    expect(logs).not.toContain('dana@acme.test');
    expect(logs).not.toContain('/acme/eng');
    expect(logs).not.toMatch(/[?&]code=/);
    expect(logs).not.toContain(PLATFORM_SECRET);
    const audit = JSON.stringify(await app.services.identity.audit.list({ limit: 1000 }));
    expect(audit).not.toContain('eyJ');
    expect(audit).not.toContain('/acme/eng');
  });
});
