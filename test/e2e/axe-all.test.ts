import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { PASSWORD, seedTenant, sys } from '../helpers/identity.js';
import { axeCheck, ensureWebBuilt, launchBrowser, shot, spaNavigate, watchPage } from './support.js';

/**
 * axe on every page of the UI (issue 21), at 1440×900 and 390×844, signed in as someone who
 * sees them all (a platform administrator who owns an organisation): no serious or critical
 * violation anywhere, and no page scrolls sideways on a phone. A screenshot of each page at
 * each size lands in test/e2e/artifacts/page-….png.
 */
vi.setConfig({ testTimeout: 240_000 });

const PAGES: [path: string, heading: string][] = [
  ['/chat', 'New chat'],
  ['/assistants', 'Assistants'],
  ['/knowledge', 'Knowledge'],
  ['/me', 'My usage'],
  ['/admin', 'Overview'],
  ['/admin/usage', 'Usage analytics'],
  ['/admin/calls', 'Calls'],
  ['/admin/feedback', 'Answer feedback'],
  ['/admin/members', 'Members & roles'],
  ['/admin/teams', 'Teams'],
  ['/admin/assistants', 'Assistants'],
  ['/admin/prompts', 'Prompt library'],
  ['/admin/keys', 'API keys'],
  ['/admin/policy', 'Data-boundary policy'],
  ['/admin/plans', 'Plans & quotas'],
  ['/admin/sso', 'Single sign-on'],
  ['/admin/audit', 'Audit log'],
  ['/admin/settings', 'Settings'],
  ['/admin/our-providers', 'Our providers'],
  ['/admin/providers', 'Providers & models'],
  ['/admin/prices', 'Prices'],
  ['/admin/tenants', 'Tenants'],
  ['/admin/jobs', 'Jobs'],
  ['/admin/license', 'Licence'],
];

let app: TestApp;
let browser: Browser;
const ROOT = 'root@axe.test';

beforeAll(async () => {
  ensureWebBuilt();
  browser = await launchBrowser();
  app = await startTestApp({ entitlements: unrestricted });
  const s = app.services;
  const t = await seedTenant(s, 'axe', ['member']);
  const root = await s.identity.users.create(sys(s), { email: ROOT, password: PASSWORD, platformAdmin: true });
  await s.identity.users.grant(t.ctx, root.id, 'owner');
  await s.gateway.deployments.create(sys(s), { name: 'axe-local', kind: 'openai', base_url: 'http://127.0.0.1:9/v1', boundary: 'local', models: ['axe-model'] });
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await app?.close();
});

async function visitAll(viewport: { width: number; height: number }): Promise<{ axe: Record<string, unknown[]>; wide: Record<string, number>; errors: string[] }> {
  const ctx = await browser.newContext({ viewport });
  const page: Page = await ctx.newPage();
  const watch = watchPage(page);
  await page.goto(`${app.url}/login`);
  await page.getByLabel('E-mail').fill(ROOT);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
  const axe: Record<string, unknown[]> = {};
  const wide: Record<string, number> = {};
  for (const [path, heading] of PAGES) {
    await spaNavigate(page, path);
    await page.getByRole('heading', { name: heading, exact: true, level: 1 }).waitFor();
    await expect.poll(() => page.locator('.spinner').count()).toBe(0);
    const v = await axeCheck(page);
    if (v.length) axe[path] = v;
    const w = await page.evaluate(() => {
      const d = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document.documentElement;
      return d.scrollWidth - d.clientWidth;
    });
    if (w > 0) wide[path] = w;
    await shot(page, `page${path.replace(/\//g, '-')}-${viewport.width}`);
  }
  await ctx.close();
  return { axe, wide, errors: watch.errors };
}

describe('every page', () => {
  it('passes axe at 1440×900', async () => {
    const r = await visitAll({ width: 1440, height: 900 });
    expect(r.axe).toEqual({});
  });
  it('passes axe at 390×844 and never scrolls sideways', async () => {
    const r = await visitAll({ width: 390, height: 844 });
    expect(r.axe).toEqual({});
    expect(r.wide).toEqual({});
  });
});
