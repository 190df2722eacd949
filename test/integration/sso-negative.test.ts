import type { JWTPayload } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Browser } from '../fakes/oidc-browser.js';
import { startSsoApp, type SsoApp } from '../fakes/oidc-app.js';
import { startRogueIssuer, type RogueIssuer } from '../fakes/oidc-rogue.js';
import { sys } from '../helpers/identity.js';

/**
 * The negative catalogue (openid-client conformance module names in brackets) against a
 * deliberately broken issuer: every case is refused with a clear reason code and audited.
 */
const SECRET = 'rogue-client-secret-abcdefghijkl';
let rogue: RogueIssuer;
let app: SsoApp;
let idpId: string;
let localhostIdp: string;

async function lastDenied(): Promise<{ reason: string | null; details: any }> {
  const e = (await app.services.identity.audit.list({ action: 'sso.login', outcome: 'denied', limit: 1 }))[0]!;
  return { reason: e.reason, details: JSON.parse(e.details) };
}

async function attempt(b = new Browser(), idp = idpId): Promise<{ status: number; code: string | undefined; location: string | undefined }> {
  const r = await b.follow(`${app.url}/auth/oidc/${idp}/login`, { until: (next) => next.startsWith(app.url) && !next.includes('/auth/oidc/') });
  if (r.stoppedAt) return { status: 302, code: undefined, location: r.stoppedAt };
  const body = (await r.res.json()) as { error?: { code: string } };
  return { status: r.res.status, code: body.error?.code, location: undefined };
}

beforeAll(async () => {
  rogue = await startRogueIssuer(SECRET);
  app = await startSsoApp();
  const s = app.services;
  const t = await s.identity.tenants.create(sys(s), { slug: 'rogue-t' });
  const tctx = await s.identity.tenants.scopeTo(sys(s), t.id);
  // JIT creates accounts only for domains a platform admin verified for the tenant (issue 16).
  await s.identity.domains.add(tctx, 'rogue.test');
  await s.identity.domains.verify(tctx, 'rogue.test');
  idpId = (await s.sso.createIdp(tctx, { name: 'Rogue', issuer: rogue.issuer, client_id: 'rogue-client', client_secret: SECRET, jit: true, default_role: 'member' })).id;
  localhostIdp = (await s.sso.createIdp(tctx, { name: 'Mixed', issuer: rogue.issuer.replace('127.0.0.1', 'localhost'), client_id: 'rogue-client', client_secret: SECRET })).id;
}, 30_000);

afterAll(async () => {
  await app?.close();
  await rogue?.close();
});

beforeEach(() => rogue.reset());

const now = () => Math.floor(Date.now() / 1000);
const claimCases: [string, string, (c: JWTPayload) => JWTPayload][] = [
  ['invalid-iss', 'iss_mismatch', (c) => ({ ...c, iss: 'https://evil.test' })],
  ['invalid-aud', 'aud_mismatch', (c) => ({ ...c, aud: 'someone-else' })],
  ['invalid-secondary-aud (extra aud, no azp)', 'aud_mismatch', (c) => ({ ...c, aud: ['rogue-client', 'someone-else'] })],
  ['invalid azp with several audiences', 'aud_mismatch', (c) => ({ ...c, aud: ['rogue-client', 'someone-else'], azp: 'someone-else' })],
  ['missing-aud', 'aud_mismatch', ({ aud: _a, ...c }) => c],
  ['invalid-expired-exp', 'token_expired', (c) => ({ ...c, iat: now() - 600, exp: now() - 120 })],
  ['iat far in the future', 'iat_invalid', (c) => ({ ...c, iat: now() + 3600, exp: now() + 4000 })],
  ['missing-iat', 'iat_invalid', ({ iat: _i, ...c }) => c],
  ['invalid-nonce', 'nonce_mismatch', (c) => ({ ...c, nonce: 'not-the-nonce' })],
  ['invalid-missing-nonce', 'nonce_mismatch', ({ nonce: _n, ...c }) => c],
  ['missing-sub', 'sub_missing', ({ sub: _s, ...c }) => c],
];

// The describes below are one story in order (later ones read what earlier ones left): kept in
// order under --sequence.shuffle.
describe('in order', { shuffle: false }, () => {
describe('negative catalogue: ID token', () => {
  it('the broken issuer works when nothing is broken (baseline)', async () => {
    const r = await attempt();
    expect(r.status).toBe(302);
    expect(r.location).toBe(`${app.url}/`);
  });

  for (const [name, reason, mutate] of claimCases) {
    it(`${name} → ${reason}`, async () => {
      rogue.mutate = mutate;
      const r = await attempt();
      expect(r.status).toBe(400);
      expect(r.code).toBe(`sso_${reason}`);
      expect((await lastDenied()).reason).toBe(reason);
    });
  }

  for (const [sign, reason] of [
    ['none', 'alg_not_allowed'],
    ['HS256', 'alg_not_allowed'],
    ['foreign', 'signature_invalid'],
  ] as const) {
    it(`${sign === 'none' ? 'invalid-null-alg' : sign === 'HS256' ? 'invalid-alternate-alg (HS256 with the client secret)' : 'invalid-signature (key not in the JWKS)'} → ${reason}`, async () => {
      rogue.sign = sign;
      const r = await attempt();
      expect(r.code).toBe(`sso_${reason}`);
      expect((await lastDenied()).reason).toBe(reason);
    });
  }
});

// One story in order (each step starts from what the previous left; --sequence.shuffle keeps it).
describe('negative catalogue: authorization response and transaction', { shuffle: false }, () => {
  it('state mismatch → state_mismatch', async () => {
    rogue.extraParams = { state: 'forged-state' };
    const r = await attempt();
    expect(r.code).toBe('sso_state_mismatch');
    expect((await lastDenied()).reason).toBe('state_mismatch');
  });

  it('mix-up: a response naming another issuer (RFC 9207 iss) → issuer_mismatch', async () => {
    rogue.extraParams = { iss: 'https://other-idp.test' };
    const r = await attempt();
    expect(r.code).toBe('sso_issuer_mismatch');
    expect((await lastDenied()).reason).toBe('issuer_mismatch');
  });

  it('an error from the IdP is refused with its (sanitised) error code', async () => {
    rogue.extraParams = { error: 'access_denied' };
    const r = await attempt();
    expect(r.code).toBe('sso_idp_error');
    expect((await lastDenied())).toMatchObject({ reason: 'idp_error', details: { idp_error: 'access_denied' } });
  });

  it('replayed callback → transaction_missing (one-time transaction)', async () => {
    const b = new Browser();
    const first = await b.follow(`${app.url}/auth/oidc/${idpId}/login`, { until: (next) => next.includes('/auth/oidc/callback') });
    const callbackUrl = first.stoppedAt!;
    const tx = b.cookie(app.url, 'enclave_oidc_tx')!;
    const ok = await b.request(callbackUrl);
    expect(ok.status).toBe(302);
    expect(b.cookie(app.url, 'enclave_oidc_tx')).toBeUndefined();
    const replay = new Browser();
    replay.setCookie(app.url, 'enclave_oidc_tx', tx);
    const res = await replay.request(callbackUrl);
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error.code).toBe('sso_transaction_missing');
    expect((await lastDenied()).reason).toBe('transaction_missing');
  });

  it('a callback in a browser without the transaction cookie → transaction_missing', async () => {
    const b = new Browser();
    const first = await b.follow(`${app.url}/auth/oidc/${idpId}/login`, { until: (next) => next.includes('/auth/oidc/callback') });
    const res = await new Browser().request(first.stoppedAt!);
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error.code).toBe('sso_transaction_missing');
  });

  it('PKCE verifier mismatch at the token endpoint → token_exchange_failed', async () => {
    rogue.breakPkce = true;
    const r = await attempt();
    expect(r.code).toBe('sso_token_exchange_failed');
    expect((await lastDenied()).reason).toBe('token_exchange_failed');
  });

  it('discovery-issuer-mismatch (configured localhost, IdP says 127.0.0.1) → refused before redirecting', async () => {
    const res = await fetch(`${app.url}/auth/oidc/${localhostIdp}/login`, { redirect: 'manual' });
    expect(res.status).toBe(502);
    expect(((await res.json()) as any).error.code).toBe('sso_discovery_issuer_mismatch');
    expect((await lastDenied()).reason).toBe('discovery_issuer_mismatch');
  });

  it('an unknown IdP id is 404 and audited', async () => {
    const res = await fetch(`${app.url}/auth/oidc/idp_00000000000000000000000000/login`, { redirect: 'manual' });
    expect(res.status).toBe(404);
    expect((await lastDenied()).reason).toBe('idp_not_found');
  });

  it('no token appears in the logs', () => {
    const logs = app.logs.join('');
    // The scan reads something: the refused logins above were logged (an empty log passes any "not").
    expect(app.logs.length).toBeGreaterThan(10);
    expect(logs).toMatch(/oidc/i);
    expect(logs).not.toContain('eyJ');
    expect(logs).not.toContain(SECRET);
    expect(logs).not.toMatch(/[?&]code=/);
  });
});

describe('back-channel logout token validation', () => {
  const post = async (token: string) => {
    const res = await fetch(`${app.url}/auth/oidc/backchannel-logout`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `logout_token=${encodeURIComponent(token)}`,
    });
    return { status: res.status, body: (await res.json()) as any, cacheControl: res.headers.get('cache-control') };
  };
  let n = 0;
  const base = (): JWTPayload => ({
    iss: rogue.issuer,
    aud: 'rogue-client',
    iat: now(),
    jti: `jti-${++n}-${Date.now()}`,
    sub: rogue.subject,
    events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
  });
  const lastBcl = async () => (await app.services.identity.audit.list({ action: 'sso.backchannel_logout', outcome: 'denied', limit: 1 }))[0]?.reason;

  it('a valid token ends the subject sessions (no sid: by sub), with no-store; its replay is refused', async () => {
    const b = new Browser();
    expect((await attempt(b)).status).toBe(302);
    expect((await b.request(`${app.url}/auth/session`)).status).toBe(200);
    const token = await rogue.logoutToken(base());
    const r = await post(token);
    expect(r.status).toBe(200);
    expect(r.cacheControl).toBe('no-store');
    expect(r.body.sessions_ended).toBeGreaterThanOrEqual(1);
    expect((await b.request(`${app.url}/auth/session`)).status).toBe(401);
    const again = await post(token);
    expect(again.status).toBe(400);
    expect((await lastBcl())).toBe('jti_replayed');
  });

  const cases: [string, string, () => Promise<string>][] = [
    ['signature by a key not in the JWKS', 'signature_invalid', async () => ((rogue.sign = 'foreign'), rogue.logoutToken(base()))],
    ['alg none', 'alg_not_allowed', async () => ((rogue.sign = 'none'), rogue.logoutToken(base()))],
    ['HS256', 'alg_not_allowed', async () => ((rogue.sign = 'HS256'), rogue.logoutToken(base()))],
    ['nonce present', 'nonce_present', () => rogue.logoutToken({ ...base(), nonce: 'n' })],
    ['events missing', 'events_invalid', () => rogue.logoutToken({ ...base(), events: undefined })],
    ['events of another kind', 'events_invalid', () => rogue.logoutToken({ ...base(), events: { 'urn:other': {} } })],
    ['neither sid nor sub', 'sid_and_sub_missing', () => rogue.logoutToken({ ...base(), sub: undefined })],
    ['iat too old', 'logout_token_invalid', () => rogue.logoutToken({ ...base(), iat: now() - 3600 })],
    ['iat in the future', 'logout_token_invalid', () => rogue.logoutToken({ ...base(), iat: now() + 3600 })],
    ['jti missing', 'logout_token_invalid', () => rogue.logoutToken({ ...base(), jti: undefined })],
    ['another audience', 'unknown_issuer_or_audience', () => rogue.logoutToken({ ...base(), aud: 'someone-else' })],
    ['unknown issuer', 'unknown_issuer_or_audience', () => rogue.logoutToken({ ...base(), iss: 'https://evil.test' })],
    ['wrong typ', 'typ_invalid', () => rogue.logoutToken(base(), 'at+jwt')],
    ['not a JWT', 'logout_token_malformed', async () => 'not-a-jwt'],
  ];
  for (const [name, reason, make] of cases) {
    it(`${name} → 400 ${reason}`, async () => {
      const r = await post(await make());
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe('invalid_request');
      expect((await lastBcl())).toBe(reason);
    });
  }
});
});
