import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser } from '../fakes/oidc-browser.js';
import { startSsoApp, type SsoApp } from '../fakes/oidc-app.js';
import { assertionXml, b64, makeSamlKey, newSamlId, readAuthnRequest, responseXml, signXml, signedResponse, type SamlKey } from '../fakes/saml-idp.js';
import { sessionOf } from '../helpers/sso.js';
import { call, login as localLogin, PASSWORD, seedTenant, sys, type Session } from '../helpers/identity.js';

/**
 * The SAML negative catalogue (issue 24): every crafted response is refused with a clear
 * reason (`sso_<reason>`), audited as `sso.login` denied with that reason, and gives no
 * session. Signatures come from the test IdP (xml-crypto); the variants are built by hand.
 */
const ENTITY = 'https://idp.a.test/saml';
let app: SsoApp;
let key: SamlKey;
let evil: SamlKey;
let a: Awaited<ReturnType<typeof seedTenant>>;
let ownerA: Session;
let idpId: string;
let unsolicitedIdp: string;

const addIdp = async (body: Record<string, unknown>) => {
  const r = await call(app.url, `/admin/api/tenants/${a.tenant.id}/sso/idps`, {
    method: 'POST',
    session: ownerA,
    body: { protocol: 'saml', name: 'A SAML', idp_entity_id: ENTITY, sso_url: 'https://idp.a.test/sso', certificates: [key.certPem], default_role: 'member', jit: true, ...body },
  });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body.id as string;
};

beforeAll(async () => {
  key = makeSamlKey();
  evil = makeSamlKey('Evil');
  app = await startSsoApp();
  const s = app.services;
  a = await seedTenant(s, 'ta', ['owner']);
  await seedTenant(s, 'tb', ['owner']);
  await s.identity.users.create(sys(s), { email: 'root@platform.test', password: PASSWORD, platformAdmin: true });
  await s.identity.domains.add(a.ctx, 'a.test');
  await s.identity.domains.verify(a.ctx, 'a.test');
  ownerA = await localLogin(app.url, a.users.owner!.email);
  idpId = await addIdp({});
  unsolicitedIdp = await addIdp({ name: 'A SAML (IdP-initiated)', allow_idp_initiated: true });
}, 60_000);

afterAll(async () => {
  await app?.close();
});

interface Start {
  br: Browser;
  requestId: string | null;
  acs: string;
  audience: string;
}

async function begin(id = idpId): Promise<Start> {
  const br = new Browser();
  const res = await br.request(`${app.url}/auth/saml/${id}/login`);
  expect(res.status).toBe(302);
  const req = readAuthnRequest(res.headers.get('location')!);
  return { br, requestId: req.id, acs: req.acs, audience: req.issuer };
}

/** An IdP-initiated post to an IdP: no request, our ACS and audience by their known shape. */
function unsolicited(id: string): Start {
  return { br: new Browser(), requestId: null, acs: `${app.url}/auth/saml/${id}/acs`, audience: `${app.url}/auth/saml/${id}/metadata` };
}

async function post(st: Start, xml: string | null) {
  const body = xml === null ? '' : `SAMLResponse=${encodeURIComponent(b64(xml))}`;
  const res = await st.br.request(st.acs, { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  const json = res.status >= 400 ? ((await res.json()) as { error?: { code?: string } }) : undefined;
  return { status: res.status, code: json?.error?.code };
}

/** Refused with this reason, audited with it, and the browser has no session. */
async function refused(st: Start, xml: string | null, reason: string, status = 400) {
  const before = (await app.services.identity.audit.list({ action: 'sso.login', outcome: 'denied', limit: 1 }))[0]?.seq ?? 0;
  const r = await post(st, xml);
  expect(r).toEqual({ status, code: `sso_${reason}` });
  const e = (await app.services.identity.audit.list({ action: 'sso.login', outcome: 'denied', limit: 1 }))[0]!;
  expect(e.seq).toBeGreaterThan(before);
  expect(e.reason).toBe(reason);
  expect(e.targetId).toBe(st.acs.split('/')[5]);
  expect((await sessionOf(st.br, app.url)).status).toBe(401);
}

const good = (st: Start, nameId = 'alice@a.test', extra: { attributes?: Record<string, string[]> } = {}) =>
  signedResponse(key, { issuer: ENTITY, nameId, start: st, ...extra });

/** A signed assertion (its XML and ID) for this login. */
function signedAssertion(st: Start, o: Partial<Parameters<typeof assertionXml>[0]> = {}, k: SamlKey = key) {
  const id = newSamlId();
  const xml = signXml(assertionXml({ id, issuer: ENTITY, nameId: 'alice@a.test', audience: st.audience, recipient: st.acs, inResponseTo: st.requestId, ...o }), id, k, 'Assertion');
  return { id, xml };
}
const wrap = (st: Start, inner: string, extensions?: string) =>
  responseXml({ issuer: ENTITY, destination: st.acs, inResponseTo: st.requestId, inner, ...(extensions ? { extensions } : {}) });
const unsignedEvil = (st: Start, id = newSamlId()) =>
  assertionXml({ id, issuer: ENTITY, nameId: 'owner@ta.test', audience: st.audience, recipient: st.acs, inResponseTo: st.requestId });

describe('SAML negative catalogue (issue 24)', () => {
  it('sanity: the good response signs in (so each refusal below is about its one defect)', async () => {
    const st = await begin();
    expect((await post(st, good(st))).status).toBe(303);
    expect((await sessionOf(st.br, app.url)).status).toBe(200);
  });

  it('1 unsigned response and unsigned assertion', async () => {
    const st = await begin();
    await refused(st, signedResponse(key, { issuer: ENTITY, nameId: 'alice@a.test', start: st, signAssertion: false }), 'signature_invalid');
  });

  it('2 assertion signed by another key', async () => {
    const st = await begin();
    await refused(st, wrap(st, signedAssertion(st, {}, evil).xml), 'signature_invalid');
  });

  it('3 response signed by another key', async () => {
    const st = await begin();
    await refused(st, signedResponse(evil, { issuer: ENTITY, nameId: 'alice@a.test', start: st, signAssertion: false, signResponse: true }), 'signature_invalid');
  });

  it('4 XSW: the signed assertion hidden in the Response Extensions, an unsigned one in its place', async () => {
    const st = await begin();
    await refused(st, wrap(st, unsignedEvil(st), signedAssertion(st).xml), 'signature_invalid');
  });

  it("5 XSW: the signed assertion inside the evil assertion's Signature/Object", async () => {
    const st = await begin();
    const s = signedAssertion(st);
    const sig = /<ds:Signature[\s\S]*<\/ds:Signature>/.exec(s.xml)![0];
    const wrapped = sig.replace('</ds:Signature>', `<ds:Object>${s.xml.replace(sig, '')}</ds:Object></ds:Signature>`);
    const e = unsignedEvil(st).replace('</saml:Issuer>', `</saml:Issuer>${wrapped}`);
    await refused(st, wrap(st, e), 'signature_invalid');
  });

  it('6 XSW: a second, unsigned assertion before the signed one', async () => {
    const st = await begin();
    await refused(st, wrap(st, unsignedEvil(st) + signedAssertion(st).xml), 'multiple_assertions');
  });

  it('7 XSW: a second, unsigned assertion after the signed one', async () => {
    const st = await begin();
    await refused(st, wrap(st, signedAssertion(st).xml + unsignedEvil(st)), 'multiple_assertions');
  });

  it('8 XSW: the signature moved onto an evil assertion that takes the signed ID', async () => {
    const st = await begin();
    const s = signedAssertion(st);
    const sig = /<ds:Signature[\s\S]*<\/ds:Signature>/.exec(s.xml)![0];
    const e = unsignedEvil(st, s.id).replace('</saml:Issuer>', `</saml:Issuer>${sig}`);
    await refused(st, wrap(st, e), 'signature_invalid');
  });

  it('9 XSW: the signed assertion (signature removed from it) with its signature moved to the Response', async () => {
    const st = await begin();
    const s = signedAssertion(st);
    const sig = /<ds:Signature[\s\S]*<\/ds:Signature>/.exec(s.xml)![0];
    const x = wrap(st, unsignedEvil(st, s.id)).replace('</saml:Issuer>', `</saml:Issuer>${sig}`);
    await refused(st, x, 'signature_invalid');
  });

  it('10 comment injected into a signed NameID: the whole value is read (signature still valid), not the part before the comment', async () => {
    const st = await begin();
    const s = signedAssertion(st, { nameId: 'owner@ta.test.x.example' });
    const x = wrap(st, s.xml.replace('owner@ta.test.x.example', 'owner@ta.test<!---->.x.example'));
    // The assertion verifies (c14n drops comments); the subject is owner@ta.test.x.example,
    // whose domain is not verified for the tenant: refused as such, never signed in as owner@ta.test.
    await refused(st, x, 'email_domain_not_verified', 403);
    expect(await app.services.sso.repo.identitiesOfUser(a.users.owner!.id)).toEqual([]);
  });

  it('11 tampered attribute after signing', async () => {
    const st = await begin();
    const x = good(st, 'alice@a.test', { attributes: { groups: ['users'] } }).replace('>users<', '>admins<');
    await refused(st, x, 'signature_invalid');
  });

  it('12 replayed response (SP-initiated): its request was used', async () => {
    const st = await begin();
    const x = good(st);
    expect((await post(st, x)).status).toBe(303);
    await refused({ ...st, br: new Browser() }, x, 'in_response_to_invalid');
  });

  it('13 replayed assertion (IdP-initiated, opted in): the assertion id is in the replay cache', async () => {
    const st = unsolicited(unsolicitedIdp);
    // carol is this IdP's own (alice's identity belongs to the other IdP of the same entity id).
    const x = signedResponse(key, { issuer: ENTITY, nameId: 'carol@a.test', start: st });
    expect((await post(st, x)).status).toBe(303);
    await refused(unsolicited(unsolicitedIdp), x, 'assertion_replayed');
  });

  it('14 wrong audience', async () => {
    const st = await begin();
    await refused(st, wrap(st, signedAssertion(st, { audience: 'https://other-sp.example/metadata' }).xml), 'audience_mismatch');
  });

  it('15 wrong Recipient', async () => {
    const st = await begin();
    await refused(st, wrap(st, signedAssertion(st, { recipient: 'https://other-sp.example/acs' }).xml), 'recipient_mismatch');
  });

  it('16 wrong Destination', async () => {
    const st = await begin();
    const x = responseXml({ issuer: ENTITY, destination: 'https://other-sp.example/acs', inResponseTo: st.requestId, inner: signedAssertion(st).xml });
    await refused(st, x, 'destination_mismatch');
  });

  it('17 expired (NotOnOrAfter past the skew)', async () => {
    const st = await begin();
    await refused(st, wrap(st, signedAssertion(st, { notBefore: Date.now() - 600_000, notOnOrAfter: Date.now() - 120_000 }).xml), 'assertion_expired');
  });

  it('18 not yet valid (NotBefore beyond the skew)', async () => {
    const st = await begin();
    await refused(st, wrap(st, signedAssertion(st, { notBefore: Date.now() + 300_000, notOnOrAfter: Date.now() + 600_000 }).xml), 'assertion_not_yet_valid');
  });

  it('19 InResponseTo unknown', async () => {
    const st = await begin();
    const fake = { ...st, requestId: newSamlId() };
    await refused(st, good(fake), 'in_response_to_invalid');
  });

  it("20 InResponseTo of another IdP's request", async () => {
    const other = await begin(unsolicitedIdp);
    const st = await begin();
    await refused(st, good({ ...st, requestId: other.requestId }), 'in_response_to_invalid');
  });

  it('21 InResponseTo reused: a fresh assertion for a request that already signed someone in', async () => {
    const st = await begin();
    expect((await post(st, good(st))).status).toBe(303);
    await refused({ ...st, br: new Browser() }, good(st), 'in_response_to_invalid');
  });

  it('22 InResponseTo missing (unsolicited) when the IdP did not opt in', async () => {
    const st = unsolicited(idpId);
    await refused(st, good(st), 'unsolicited_response');
  });

  it('23 issuer mismatch (right key, another entity id)', async () => {
    const st = await begin();
    await refused(st, wrap(st, signedAssertion(st, { issuer: 'https://idp.other.test/saml' }).xml), 'issuer_mismatch');
  });

  it("24 another tenant's member: A's IdP asserting B's owner", async () => {
    const st = await begin();
    await refused(st, good(st, 'owner@tb.test'), 'account_link_refused', 403);
    expect((await app.services.identity.sessions.memberships((await app.services.identity.users.byEmail('owner@tb.test'))!.id)).map((m) => m.slug)).toEqual(['tb']);
  });

  it('25 platform admin takeover attempt', async () => {
    const st = await begin();
    await refused(st, good(st, 'root@platform.test'), 'account_link_refused', 403);
    const root = (await app.services.identity.users.byEmail('root@platform.test'))!;
    expect(await app.services.sso.repo.identitiesOfUser(root.id)).toEqual([]);
  });

  it('26 JIT for a domain not verified for the tenant', async () => {
    const st = await begin();
    await refused(st, good(st, 'newbie@unverified.test'), 'email_domain_not_verified', 403);
    expect(await app.services.identity.users.byEmail('newbie@unverified.test')).toBeUndefined();
  });

  it('27 a non-success Status', async () => {
    const st = await begin();
    const x = good(st).replace('status:Success', 'status:Responder');
    await refused(st, x, 'idp_error');
  });

  it('28 a DOCTYPE (entity expansion) is refused before any parsing of entities', async () => {
    const st = await begin();
    await refused(st, `<!DOCTYPE r [<!ENTITY x "y">]>${good(st)}`, 'response_invalid');
  });

  it('30 the same response posted twice at once: exactly one signs in (single-use request, replay cache)', async () => {
    const st = await begin();
    const x = good(st);
    const other = { ...st, br: new Browser() };
    const results = await Promise.all([post(st, x), post(other, x)]);
    expect(results.map((r) => r.status).sort()).toEqual([303, 400]);
    expect(['sso_in_response_to_invalid', 'sso_assertion_replayed']).toContain(results.find((r) => r.status === 400)!.code);
  });

  it('29 no SAMLResponse at all', async () => {
    const st = await begin();
    await refused(st, null, 'response_missing');
  });
});
