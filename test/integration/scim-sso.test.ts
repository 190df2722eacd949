import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OIDC_PATHS } from '../../server/sso/service.js';
import { Browser } from '../fakes/oidc-browser.js';
import { startSsoApp, type SsoApp } from '../fakes/oidc-app.js';
import { listenOidcProvider, type FakeOp } from '../fakes/oidc-provider.js';
import { PASSWORD, seedTenant, sys } from '../helpers/identity.js';
import { sessionOf, ssoLogin } from '../helpers/sso.js';
import { scimTenant } from '../fixtures/scim/setup.js';

/**
 * SCIM-provisioned users are bound to their tenant's IdP (identity authority, issue 16): the
 * tenant's IdP signs them in by the address the directory provisioned — also when, like
 * Entra ID, it sends no `email_verified` — while the rules for every other account stay
 * (an unprovisioned account still needs a verified e-mail; another tenant's IdP gets nothing),
 * and deprovisioning ends their sign-in.
 */
let op: FakeOp;
let app: SsoApp;
let A: Awaited<ReturnType<typeof scimTenant>>;
let idpA: { id: string };
let idpB: { id: string };

beforeAll(async () => {
  op = await listenOidcProvider();
  app = await startSsoApp();
  const redirect = [`${app.url}${OIDC_PATHS.callback}`];
  await op.configure([
    { client_id: 'scim-a', client_secret: 'scim-a-secret-0123456789abcdef', redirect_uris: redirect },
    { client_id: 'scim-b', client_secret: 'scim-b-secret-0123456789abcdef', redirect_uris: redirect },
  ]);
  A = await scimTenant(app, 'sa');
  const B = await seedTenant(app.services, 'sb', ['owner']);
  idpA = await app.services.sso.createIdp(A.ctx, { name: 'Entra', issuer: op.issuer, client_id: 'scim-a', client_secret: 'scim-a-secret-0123456789abcdef', default_role: 'member' });
  idpB = await app.services.sso.createIdp(B.ctx, { name: 'Rogue', issuer: op.issuer, client_id: 'scim-b', client_secret: 'scim-b-secret-0123456789abcdef', default_role: 'member', jit: true });
  // Entra ID sends no email_verified.
  op.users.pat = { email: `pat@${A.domain}`, name: 'Pat' };
  op.users.lee = { email: `lee@${A.domain}`, name: 'Lee' };
}, 30_000);
afterAll(async () => {
  await app?.close();
  await op?.close();
});

const login = (idp: { id: string }, sub: string, br = new Browser()) => ssoLogin(br, op, app.url, `${app.url}/auth/oidc/${idp.id}/login`, sub);

// One story in order (each step starts from what the previous left; --sequence.shuffle keeps it).
describe('SCIM users sign in through their tenant’s IdP', { shuffle: false }, () => {
  it('not provisioned yet: refused; provisioned by SCIM: the IdP signs them in as members, without email_verified', async () => {
    expect(await login(idpA, 'pat')).toEqual({ status: 403, code: 'sso_not_provisioned' });
    const r = await A.client('POST', '/Users', { userName: `pat@${A.domain}`, name: { givenName: 'Pat' } });
    expect(r.status).toBe(201);
    const br = new Browser();
    expect(await login(idpA, 'pat', br)).toEqual({ status: 302 });
    const s = await sessionOf(br, app.url);
    expect(s.body).toMatchObject({ user: { id: r.body.id, email: `pat@${A.domain}` }, tenant: { id: A.tenant.id }, role: 'member' });
  });

  it('deprovisioned: sign-in refused; reactivated: it works again', async () => {
    const id = (await A.client('GET', `/Users?filter=${encodeURIComponent(`userName eq "pat@${A.domain}"`)}`)).body.Resources[0].id;
    await A.client('PATCH', `/Users/${id}`, { Operations: [{ op: 'replace', path: 'active', value: 'False' }] });
    expect((await login(idpA, 'pat')).status).toBe(403);
    await A.client('PATCH', `/Users/${id}`, { Operations: [{ op: 'replace', path: 'active', value: 'True' }] });
    expect(await login(idpA, 'pat')).toEqual({ status: 302 });
  });

  it('an account also in another tenant, deprovisioned here, does not get the membership back by signing in', async () => {
    op.users.kim = { email: `kim@${A.domain}`, name: 'Kim' };
    const id = (await A.client('POST', '/Users', { userName: `kim@${A.domain}` })).body.id;
    expect(await login(idpA, 'kim')).toEqual({ status: 302 }); // linked by the directory's address
    const other = await app.services.identity.tenants.create(sys(app.services), { slug: 'sc' });
    await app.services.identity.users.grant(await app.services.identity.tenants.scopeTo(sys(app.services), other.id), id, 'member');
    await A.client('PATCH', `/Users/${id}`, { Operations: [{ op: 'replace', value: { active: false } }] });
    expect((await app.services.identity.users.byId(id))!.status).toBe('active'); // still sc's member
    expect(await login(idpA, 'kim')).toEqual({ status: 403, code: 'sso_user_deactivated' });
    expect((await app.services.identity.sessions.memberships(id)).map((m) => m.slug)).toEqual(['sc']);
  });

  it('another tenant’s IdP asserting the same address gets nothing', async () => {
    expect(await login(idpB, 'pat')).toEqual({ status: 403, code: 'sso_account_link_refused' });
  });

  it('an account the directory did not provision keeps the rule: no link by an unverified e-mail', async () => {
    await app.services.identity.users.create(sys(app.services), { email: `lee@${A.domain}`, password: PASSWORD });
    expect(await login(idpA, 'lee')).toEqual({ status: 403, code: 'sso_account_link_refused' });
  });
});
