import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { PASSWORD, seedTenant, sys } from '../helpers/identity.js';
import { axeCheck, ensureWebBuilt, launchBrowser, ScriptedUpstream, shot, watchPage } from './support.js';

/**
 * The Teams page (issue 24) in Debian's chromium against a real server: create a team with a
 * budget, add a member, create a team key, spend through /v1 with it, and see the team's usage
 * on the team and on the usage page grouped by team; 1440x900 and 390x844 screenshots.
 */
const FAST = { connectMs: 2000, firstTokenMs: 5000, idleMs: 5000, totalMs: 30_000, retryBaseMs: 5, maxRetries: 0, queueMs: 200, breakerFailures: 50, breakerCooldownMs: 1000 };
vi.setConfig({ testTimeout: 60_000 });

let app: TestApp;
let upstream: ScriptedUpstream;
let browser: Browser;
let seeded: Awaited<ReturnType<typeof seedTenant>>;

beforeAll(async () => {
  ensureWebBuilt();
  [upstream, browser] = await Promise.all([new ScriptedUpstream().start(), launchBrowser()]);
  app = await startTestApp({ entitlements: unrestricted });
  const s = app.services;
  seeded = await seedTenant(s, 'acme', ['owner', 'member']);
  await s.gateway.deployments.create(sys(s), { name: 'scripted-local', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'local', models: ['gpt-scripted'], options: FAST });
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await upstream?.close();
});

async function signIn(viewport: { width: number; height: number }): Promise<Page> {
  const ctx = await browser.newContext({ viewport });
  const page = await ctx.newPage();
  await page.goto(`${app.url}/login`);
  await page.getByLabel('E-mail').fill(seeded.users.owner!.email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'New chat' }).waitFor();
  return page;
}

describe('Teams page', () => {
  it('create a team with a budget, add a member, make a team key, see its usage by team', async () => {
    const page = await signIn({ width: 1440, height: 900 });
    const watch = watchPage(page);
    await page.goto(`${app.url}/admin/teams`);
    await page.getByRole('heading', { name: 'Teams', level: 1 }).waitFor();
    const form = page.getByRole('form', { name: 'Create a team' });
    await form.getByLabel('Name').fill('Research');
    await form.getByLabel('Monthly token budget').fill('5000');
    await form.getByLabel('Allowed models (comma-separated, empty = the organisation’s)').fill('gpt-scripted');
    await form.getByRole('button', { name: 'Create team' }).click();
    const detail = page.getByTestId('team-detail');
    await detail.waitFor();
    await expect.poll(() => page.getByTestId('teams-table').getByRole('row').count()).toBe(2); // header + Research

    // Add the member to the team.
    const add = detail.getByRole('form', { name: 'Add a team member' });
    await add.getByLabel('Member of the organisation').selectOption(seeded.users.member!.id);
    await add.getByRole('button', { name: 'Add to team' }).click();
    await expect.poll(() => detail.getByTestId('team-members').getByRole('row').count()).toBe(2);

    // A team key, shown once; its calls count against the team.
    await detail.getByRole('form', { name: 'Create a team key' }).getByLabel('Key name').fill('research-app');
    await detail.getByRole('button', { name: 'Create team key' }).click();
    const secret = (await detail.getByTestId('team-key-secret').textContent())!.trim();
    expect(secret).toMatch(/^enk_/);
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${app.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-scripted', messages: [{ role: 'user', content: 'hello' }], max_tokens: 20 }),
      });
      expect(r.status).toBe(200);
    }
    // Reopen the team: its usage line counts the three calls against the budget.
    await page.getByRole('button', { name: 'Manage Research' }).click(); // closes
    await expect.poll(() => page.getByTestId('team-detail').count()).toBe(0);
    await page.getByRole('button', { name: 'Manage Research' }).click();
    await expect.poll(() => page.getByTestId('team-usage').textContent()).toMatch(/3 requests, \d+ tokens of 5,000/);
    expect(await axeCheck(page)).toEqual([]);
    await shot(page, 'teams-1440');

    // The usage page grouped by team.
    await page.goto(`${app.url}/admin/usage`);
    await page.getByRole('heading', { name: 'Usage analytics', level: 1 }).waitFor();
    await page.getByLabel('Group by').selectOption('team');
    await expect.poll(() => page.getByTestId('usage-table').getByRole('row', { name: /Research/ }).count()).toBe(1);
    await shot(page, 'usage-by-team-1440');
    expect(watch.errors).toEqual([]);
    await page.context().close();
  });

  it('the Teams page on a phone (390x844)', async () => {
    const page = await signIn({ width: 390, height: 844 });
    await page.goto(`${app.url}/admin/teams`);
    await page.getByRole('heading', { name: 'Teams', level: 1 }).waitFor();
    await page.getByRole('button', { name: 'Manage Research' }).click();
    await page.getByTestId('team-usage').waitFor();
    // Nothing wider than the screen.
    const overflow = await page.evaluate(() => {
      const d = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document.documentElement;
      return d.scrollWidth - d.clientWidth;
    });
    expect(overflow).toBeLessThanOrEqual(0);
    await shot(page, 'teams-390');
    await page.getByTestId('team-detail').scrollIntoViewIfNeeded();
    await shot(page, 'teams-390-detail');
    await page.context().close();
  });
});
