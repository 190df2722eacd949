import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { OIDC_PATHS } from '../../server/sso/service.js';
import { PLATFORM_SECRET, startSsoApp, type SsoApp } from '../fakes/oidc-app.js';
import { listenOidcProvider, type FakeOp } from '../fakes/oidc-provider.js';
import { PASSWORD, sys } from '../helpers/identity.js';
import { axeCheck, ensureWebBuilt, launchBrowser, shot, watchPage } from './support.js';

/** SSO sign-in in the browser: the button from /auth/oidc/providers, a real OpenID Provider (oidc-provider), back in the chat. */
vi.setConfig({ testTimeout: 45_000 });

let op: FakeOp;
let app: SsoApp;
let browser: Browser;

beforeAll(async () => {
  ensureWebBuilt();
  [op, browser] = await Promise.all([listenOidcProvider(), launchBrowser()]);
  app = await startSsoApp({ ENCLAVE_OIDC_ISSUER: op.issuer, ENCLAVE_LOG_LEVEL: 'silent' });
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
  await s.identity.tenants.create(sys(s), { slug: 'acme', name: 'Acme' });
  await s.sso.setPlatformSettings(sys(s), {
    claim_source: 'id_token',
    roles_path: 'realm_access.roles',
    groups_path: 'groups',
    rules: [{ claim: 'groups', value: '/acme/eng', tenant: 'acme', role: 'member' }],
    allowed_domains: [],
    jit: true,
  });
  op.users.dana = { email: 'dana@acme.test', email_verified: true, name: 'Dana', groups: ['/acme/eng'], realm_access: { roles: [] } };
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await op?.close();
});

describe('SSO sign-in', () => {
  it('shows the configured IdP button and signs in through the OpenID Provider', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    const watch = watchPage(page);
    await page.goto(`${app.url}/login`);
    const button = page.getByRole('link', { name: 'Sign in with Single sign-on' });
    await button.waitFor();
    expect(await axeCheck(page)).toEqual([]);
    await shot(page, 'sign-in-sso');
    op.nextLogin = 'dana';
    await button.click();
    await page.getByRole('heading', { name: 'New chat' }).waitFor();
    expect(new URL(page.url()).pathname).toBe('/chat');
    expect(await page.locator('.user').textContent()).toBe('Dana');
    const role = await page.evaluate(async () => ((await (await fetch('/auth/session')).json()) as { role: string }).role);
    expect(role).toBe('member');
    expect(watch.errors).toEqual([]);
    await ctx.close();
  });

  it('a platform admin sees the claims the platform IdP sent last (for mapping) on the SSO page', async () => {
    const s = app.services;
    const acme = (await s.identity.tenants.resolve('acme'))!;
    const root = await s.identity.users.create(sys(s), { email: 'root@platform.test', password: PASSWORD, platformAdmin: true });
    await s.identity.users.grant(await s.identity.tenants.scopeTo(sys(s), acme.id), root.id, 'owner');
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    const watch = watchPage(page);
    await page.goto(`${app.url}/login`);
    await page.getByLabel('E-mail').fill('root@platform.test');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'New chat' }).waitFor();
    await page.goto(`${app.url}/admin/sso`);
    await page.getByRole('heading', { name: 'Single sign-on', level: 1 }).waitFor();
    const claims = page.getByTestId('last-claims');
    await claims.waitFor();
    expect(await claims.textContent()).toContain('/acme/eng'); // dana's group from the sign-in above
    expect(await claims.textContent()).toContain('groups');
    expect(await axeCheck(page)).toEqual([]);
    await shot(page, 'admin-sso-platform');
    expect(watch.errors).toEqual([]);
    await ctx.close();
  });
});
