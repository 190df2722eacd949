import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startSsoApp, type SsoApp } from '../fakes/oidc-app.js';
import { listenSamlIdp, type SamlIdpServer } from '../fakes/saml-idp.js';
import { sys } from '../helpers/identity.js';
import { ensureWebBuilt, launchBrowser, watchPage } from './support.js';

/**
 * SAML sign-in in Chromium (issue 24): the organisation's button appears for an address of its
 * verified domain, the test IdP's page auto-posts the signed SAMLResponse to the ACS, and the
 * user lands in the chat, signed in, in that tenant with the mapped role.
 */
vi.setConfig({ testTimeout: 45_000 });

let idp: SamlIdpServer;
let app: SsoApp;
let browser: Browser;
let tenantId: string;

beforeAll(async () => {
  ensureWebBuilt();
  [idp, browser] = await Promise.all([listenSamlIdp(), launchBrowser()]);
  app = await startSsoApp({ ENCLAVE_LOG_LEVEL: 'silent' });
  const s = app.services;
  const t = await s.identity.tenants.create(sys(s), { slug: 'acme', name: 'Acme' });
  tenantId = t.id;
  const tctx = await s.identity.tenants.scopeTo(sys(s), t.id);
  await s.identity.domains.add(tctx, 'acme.test');
  await s.identity.domains.verify(tctx, 'acme.test');
  s.sso.createIdp(tctx, {
    protocol: 'saml',
    name: 'Acme SAML',
    idp_entity_id: idp.entityId,
    sso_url: idp.ssoUrl,
    certificates: [idp.key.certPem],
    name_attribute: 'displayName',
    groups_attribute: 'groups',
    mapping: [{ claim: 'groups', value: 'eng', role: 'member' }],
    jit: true,
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await idp?.close();
});

describe('SAML sign-in', () => {
  it('button → IdP page auto-posting the SAMLResponse → signed in, in the right tenant', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    const watch = watchPage(page);
    await page.goto(`${app.url}/login`);
    await page.getByLabel('E-mail').fill('erin@acme.test');
    const button = page.getByRole('link', { name: 'Sign in with Acme SAML' });
    await button.waitFor();
    idp.nextLogin = { nameId: 'erin@acme.test', attributes: { displayName: ['Erin'], groups: ['eng'] } };
    await button.click();
    await page.getByRole('heading', { name: 'New chat' }).waitFor();
    expect(new URL(page.url()).pathname).toBe('/chat');
    expect(await page.locator('.user').textContent()).toBe('Erin');
    const session = await page.evaluate(async () => (await (await fetch('/auth/session')).json()) as { role: string; tenant?: { id: string } });
    expect(session.role).toBe('member');
    const erin = (await app.services.identity.users.byEmail('erin@acme.test'))!;
    expect(await app.services.identity.sessions.memberships(erin.id)).toEqual([expect.objectContaining({ tenantId, role: 'member' })]);
    expect(watch.errors).toEqual([]);
    await ctx.close();
  });
});
