import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser } from '../fakes/oidc-browser.js';
import { PLATFORM_SECRET, startSsoApp, type SsoApp } from '../fakes/oidc-app.js';
import { startRogueIssuer, type RogueIssuer } from '../fakes/oidc-rogue.js';

/**
 * The compose hostname setup: one canonical public issuer (https://<public>/auth/realms/…)
 * while the server reaches the IdP over an internal address (ENCLAVE_OIDC_INTERNAL_URL,
 * openid-client customFetch origin rewrite). The issuer check and signature checks stay on.
 */
const PUBLIC_ISSUER = 'https://sso.public.test/auth/realms/enclave';
let idp: RogueIssuer;
let app: SsoApp;

async function login(): Promise<{ status: number; code?: string }> {
  const b = new Browser();
  const start = await b.request(`${app.url}/auth/oidc/platform/login`);
  const authorize = new URL(start.headers.get('location')!);
  expect(authorize.origin).toBe('https://sso.public.test');
  // The browser reaches the public name through the proxy; here: the IdP's real address.
  const viaProxy = idp.address + authorize.pathname + authorize.search;
  const r = await b.follow(viaProxy, { until: (next) => next.startsWith(app.url) && !next.includes('/auth/oidc/') });
  if (r.stoppedAt) return { status: 302 };
  return { status: r.res.status, code: ((await r.res.json()) as any).error?.code };
}

beforeAll(async () => {
  idp = await startRogueIssuer(PLATFORM_SECRET, '127.0.0.1', PUBLIC_ISSUER);
  app = await startSsoApp({ ENCLAVE_OIDC_ISSUER: PUBLIC_ISSUER, ENCLAVE_OIDC_INTERNAL_URL: idp.address, ENCLAVE_OIDC_CLIENT_ID: 'enclave' });
  idp.claims = { roles: ['enclave-admin'] };
}, 30_000);

afterAll(async () => {
  await app?.close();
  await idp?.close();
});

describe('public issuer, internal address', () => {
  it('discovers and logs in with the public issuer pinned while calls go to the internal address', async () => {
    expect(await login()).toEqual({ status: 302 });
    const u = (await app.services.identity.users.byEmail('mallory@rogue.test'))!;
    expect(u.platformAdmin).toBe(true);
  });

  it('signature checks stay mandatory over the rewritten (plain http) channel', async () => {
    idp.sign = 'foreign';
    expect(await login()).toEqual({ status: 400, code: 'sso_signature_invalid' });
    idp.sign = 'RS256';
  });

  it('an http:// platform issuer that is not loopback refuses to start', async () => {
    await expect(startSsoApp({ ENCLAVE_OIDC_ISSUER: 'http://sso.public.test/auth/realms/enclave' })).rejects.toThrow(/ENCLAVE_OIDC_ISSUER: issuer must use https/);
  });
});
