import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { SsoService } from '../../server/sso/service.js';
import { Browser } from '../fakes/oidc-browser.js';
import { startSsoApp, type SsoApp } from '../fakes/oidc-app.js';
import { b64, idpMetadataXml, makeSamlKey, readAuthnRequest, signedResponse, type SamlKey } from '../fakes/saml-idp.js';
import { sessionOf } from '../helpers/sso.js';
import { call, login as localLogin, seedTenant, sys, type Session } from '../helpers/identity.js';

/**
 * SAML 2.0 SP-initiated login against the test IdP (issue 24): the IdP added from its
 * metadata XML, our SP metadata, AuthnRequest over HTTP-Redirect, the signed response posted
 * to the ACS, JIT for the tenant's verified domain, attribute → role mapping, landing tenant.
 */
const ENTITY = 'https://idp.a.test/saml';
const SSO_URL = 'https://idp.a.test/sso';
let app: SsoApp;
let key: SamlKey;
let a: Awaited<ReturnType<typeof seedTenant>>;
let ownerA: Session;
let idpId: string;

beforeAll(async () => {
  key = makeSamlKey();
  app = await startSsoApp();
  a = await seedTenant(app.services, 'ta', ['owner']);
  await app.services.identity.domains.add(a.ctx, 'a.test');
  await app.services.identity.domains.verify(a.ctx, 'a.test');
  ownerA = await localLogin(app.url, a.users.owner!.email);
}, 60_000);

afterAll(async () => {
  await app?.close();
});

async function begin(br: Browser, id: string, returnTo = '/chat') {
  const res = await br.request(`${app.url}/auth/saml/${id}/login?returnTo=${encodeURIComponent(returnTo)}`);
  expect(res.status).toBe(302);
  const location = res.headers.get('location')!;
  const req = readAuthnRequest(location);
  return { location, requestId: req.id, acs: req.acs, audience: req.issuer };
}

async function post(br: Browser, acs: string, xml: string) {
  const res = await br.request(acs, { method: 'POST', body: `SAMLResponse=${encodeURIComponent(b64(xml))}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  const body = res.status >= 400 ? ((await res.json()) as { error?: { code?: string } }) : undefined;
  return { status: res.status, location: res.headers.get('location'), code: body?.error?.code };
}

describe('SAML login (issue 24)', { shuffle: false }, () => {
  it('a tenant admin adds a SAML IdP from its metadata XML; the answer shows the settings, never a secret', async () => {
    const r = await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps`, {
      method: 'POST',
      session: ownerA,
      body: {
        protocol: 'saml',
        name: 'A SAML',
        metadata_xml: idpMetadataXml(ENTITY, SSO_URL, key),
        name_attribute: 'displayName',
        groups_attribute: 'http://schemas.xmlsoap.org/claims/Group',
        mapping: [{ claim: 'groups', value: 'eng-admins', role: 'admin' }],
        default_role: 'member',
        jit: true,
      },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    idpId = r.body.id;
    expect(r.body.protocol).toBe('saml');
    expect(r.body.issuer).toBe(ENTITY);
    expect(r.body.saml.sso_url).toBe(SSO_URL);
    expect(r.body.saml.allow_idp_initiated).toBe(false);
    expect(r.body.saml.certificates).toHaveLength(1);
    expect(r.body.login_path).toBe(`/auth/saml/${idpId}/login`);
    // Bad metadata is a clear 400, and nothing is stored.
    const bad = await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps`, { method: 'POST', session: ownerA, body: { protocol: 'saml', name: 'x', metadata_xml: '<nope/>' } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('invalid_metadata');
    expect((await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps`, { session: ownerA })).body.data).toHaveLength(1);
  });

  it('serves our SP metadata: entity id and the ACS of this IdP', async () => {
    const res = await fetch(`${app.url}/auth/saml/${idpId}/metadata`);
    expect(res.status).toBe(200);
    const xml = await res.text();
    expect(xml).toContain(`entityID="${app.url}/auth/saml/${idpId}/metadata"`);
    expect(xml).toContain(`Location="${app.url}/auth/saml/${idpId}/acs"`);
    expect(xml).toContain('WantAssertionsSigned="true"');
  });

  it('SP-initiated login: AuthnRequest to the IdP, signed response to the ACS, a session in the tenant with the mapped role', async () => {
    const br = new Browser();
    const start = await begin(br, idpId, '/chat?x=1');
    expect(start.location.startsWith(`${SSO_URL}?SAMLRequest=`)).toBe(true);
    expect(start.acs).toBe(`${app.url}/auth/saml/${idpId}/acs`);
    const xml = signedResponse(key, { issuer: ENTITY, nameId: 'alice@a.test', start, attributes: { displayName: ['Alice A'], 'http://schemas.xmlsoap.org/claims/Group': ['eng-admins', 'all'] } });
    const r = await post(br, start.acs, xml);
    expect(r, JSON.stringify(r)).toMatchObject({ status: 303, location: '/chat?x=1' });
    const s = await sessionOf(br, app.url);
    expect(s.status).toBe(200);
    const u = (await app.services.identity.users.byEmail('alice@a.test'))!;
    expect(u.name).toBe('Alice A');
    expect(await app.services.identity.sessions.memberships(u.id)).toEqual([expect.objectContaining({ tenantId: a.tenant.id, role: 'admin' })]);
    const ok = (await app.services.identity.audit.list({ action: 'sso.login', outcome: 'allowed', limit: 1 }))[0]!;
    expect(ok).toMatchObject({ targetType: 'sso_idp', targetId: idpId });
    // Signed response (assertion unsigned) is accepted too; the second login reuses the identity.
    const br2 = new Browser();
    const start2 = await begin(br2, idpId);
    const r2 = await post(br2, start2.acs, signedResponse(key, { issuer: ENTITY, nameId: 'alice@a.test', start: start2, signAssertion: false, signResponse: true }));
    expect(r2.status, JSON.stringify(r2)).toBe(303);
    // No group attribute this time: the default role (a removed group demotes).
    expect((await app.services.identity.sessions.memberships(u.id))[0]!.role).toBe('member');
  });

  it('PATCH: certificate rollover (old and new side by side), a bad certificate is a 400 that changes nothing, the protocol never changes', async () => {
    const next = makeSamlKey('Next');
    const path = `/admin/api/tenants/${a.tenant.id}/sso/idps/${idpId}`;
    const ok = await call(app.url, path, { method: 'PATCH', session: ownerA, body: { certificates: [key.certPem, next.certB64] } });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body.saml.certificates).toHaveLength(2);
    const bad = await call(app.url, path, { method: 'PATCH', session: ownerA, body: { certificates: ['not a certificate'] } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('invalid_certificate');
    const oidc = await call(app.url, path, { method: 'PATCH', session: ownerA, body: { issuer: 'https://op.example', client_id: 'x' } });
    expect(oidc.status).toBe(400);
    const after = await call(app.url, path, { session: ownerA });
    expect(after.body.saml.certificates).toHaveLength(2);
    expect(after.body.issuer).toBe(ENTITY);
    // A response signed with the new key signs in.
    const br = new Browser();
    const start = await begin(br, idpId);
    expect((await post(br, start.acs, signedResponse(next, { issuer: ENTITY, nameId: 'alice@a.test', start }))).status).toBe(303);
  });

  it('the licence capability sso.saml gates creating a SAML IdP (refused and audited)', async () => {
    const s = app.services;
    const gated = new SsoService({
      config: s.config,
      log: s.log,
      clock: s.clock,
      store: s.store,
      tenantStore: s.tenantStore,
      secrets: s.secrets,
      settings: s.settings,
      redis: s.redis,
      metrics: s.metrics,
      identity: s.identity,
      entitlements: () => ({ ...unrestricted, hasFeature: (f: string) => f !== 'sso.saml' }),
    });
    const ctx = await s.identity.tenants.scopeTo(sys(s), a.tenant.id);
    await expect(
      gated.createIdp(ctx, { protocol: 'saml', name: 'x', idp_entity_id: 'urn:x', sso_url: 'https://idp.example/sso', certificates: [key.certPem] }),
    ).rejects.toThrow(expect.objectContaining({ code: 'license_feature_missing' }));
    const e = (await s.identity.audit.list({ action: 'sso.idp.create', outcome: 'denied', limit: 1 }))[0]!;
    expect(e.reason).toBe('license_feature');
  });

  it('enforce SSO with a SAML IdP: the SAML session acts in the tenant, a password session no longer does', async () => {
    const on = await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps/${idpId}`, { method: 'PATCH', session: ownerA, body: { enforce_sso: true } });
    expect(on.status, JSON.stringify(on.body)).toBe(200);
    const br = new Browser();
    const start = await begin(br, idpId);
    const xml = signedResponse(key, { issuer: ENTITY, nameId: 'alice@a.test', start, attributes: { 'http://schemas.xmlsoap.org/claims/Group': ['eng-admins'] } });
    expect((await post(br, start.acs, xml)).status).toBe(303);
    expect((await br.request(`${app.url}/admin/api/tenants/${a.tenant.id}/sso/idps`)).status).toBe(200);
    expect((await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps`, { session: ownerA })).status).toBe(404);
    await app.services.sso.updateIdp(await app.services.identity.tenants.scopeTo(sys(app.services), a.tenant.id), idpId, { enforce_sso: false });
    expect((await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps`, { session: ownerA })).status).toBe(200);
  });

  it('the OIDC login route does not start a SAML IdP', async () => {
    const res = await new Browser().request(`${app.url}/auth/oidc/${idpId}/login`);
    expect(res.status).toBe(404);
  });
});
