import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { PASSWORD, seedTenant, sys } from '../helpers/identity.js';
import { axeCheck, chatReady, ensureWebBuilt, launchBrowser, ScriptedUpstream, spaNavigate, watchPage } from './support.js';

/**
 * The UI on a phone (390×844, issue 21): chat, My usage and admin pages have no horizontal
 * page scroll, every control is reachable (the conversation list and the admin menu open as
 * drawers) and at least 44×44 px, and axe passes. ENCLAVE_SHOTS=<dir> also writes
 * screenshots of each page at 390 and 1440 px wide for a person to look at.
 */
vi.setConfig({ testTimeout: 90_000 });
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1440, height: 900 };
const SHOTS = process.env.ENCLAVE_SHOTS;

let app: TestApp;
let upstream: ScriptedUpstream;
let browser: Browser;
let t: Awaited<ReturnType<typeof seedTenant>>;

beforeAll(async () => {
  ensureWebBuilt();
  [upstream, browser] = await Promise.all([new ScriptedUpstream().start(), launchBrowser()]);
  app = await startTestApp({ env: { ENCLAVE_LICENSE_MODE: 'test' }, entitlements: unrestricted });
  t = await seedTenant(app.services, 'mobile', ['owner', 'member']);
  await app.services.gateway.deployments.create(sys(app.services), { name: 'mob-local', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'local', models: ['llama-local'] });
  upstream.reply = 'A short answer with a list:\n\n- one\n- two\n\n```js\nconsole.log("a fairly long line of code that must scroll inside its block, not the page")\n```';
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await upstream?.close();
});

async function signIn(email: string, viewport: { width: number; height: number }): Promise<Page> {
  const ctx = await browser.newContext({ viewport });
  const page = await ctx.newPage();
  await page.goto(`${app.url}/login`);
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'New chat' }).waitFor();
  return page;
}

async function shoot(page: Page, name: string): Promise<void> {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  const w = page.viewportSize()?.width ?? 0;
  await page.screenshot({ path: path.join(SHOTS, `${name}-${w}.png`) });
}

/** What breaks a phone layout: page-level horizontal scroll and controls smaller than 44×44 px. */
async function layoutProblems(page: Page): Promise<{ overflow: number[]; small: string[] }> {
  return page.evaluate(() => {
    const d = (globalThis as any).document;
    const w = (globalThis as any).innerWidth as number;
    const main = d.querySelector('main');
    const overflow = [d.documentElement.scrollWidth - w, main ? main.scrollWidth - main.clientWidth : 0].filter((x: number) => x > 1);
    const controls = [...d.querySelectorAll('button, select, textarea, input:not([type=checkbox]):not([type=radio]):not([type=hidden]), nav a, .conv-link')] as any[];
    const small = controls
      .filter((el) => {
        const r = el.getBoundingClientRect();
        const s = (globalThis as any).getComputedStyle(el);
        return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && !el.closest('.sr-only') && (r.height < 43.5 || r.width < 43.5);
      })
      .map((el) => `${el.tagName.toLowerCase()} "${(el.getAttribute('aria-label') || el.textContent || el.id || '').trim().slice(0, 30)}" ${Math.round(el.getBoundingClientRect().width)}×${Math.round(el.getBoundingClientRect().height)}`);
    return { overflow, small };
  });
}

describe('phone layout (390×844)', () => {
  it('chat: full-width composer, conversation list in a drawer, no sideways scroll, 44 px targets, axe', async () => {
    const page = await signIn(t.users.member!.email, PHONE);
    const watch = watchPage(page);
    await chatReady(page);
    await page.getByRole('textbox', { name: 'Message' }).fill('Hello from a phone');
    await page.getByRole('button', { name: 'Send' }).click();
    await expect.poll(() => page.locator('.msg-assistant').last().textContent()).toContain('two');
    const composer = (await page.locator('.composer').boundingBox())!;
    expect(composer.width).toBeGreaterThan(PHONE.width - 40);
    const send = (await page.getByRole('button', { name: 'Send' }).boundingBox())!;
    expect(send.x + send.width).toBeLessThanOrEqual(PHONE.width);
    expect(await layoutProblems(page)).toEqual({ overflow: [], small: [] });
    expect(await axeCheck(page)).toEqual([]);
    await shoot(page, 'chat');

    // The list is off-screen until the Chats button opens it; a conversation is then one tap away.
    const link = page.locator('.conv-link', { hasText: 'Hello from a phone' });
    expect(await link.isVisible()).toBe(false);
    await page.getByRole('button', { name: 'Chats' }).click();
    await link.waitFor({ state: 'visible' });
    await expect.poll(async () => (await link.boundingBox())?.x ?? -1).toBeGreaterThanOrEqual(0); // slides in
    const r = (await link.boundingBox())!;
    expect(r.x + r.width).toBeLessThanOrEqual(PHONE.width);
    expect(await layoutProblems(page)).toEqual({ overflow: [], small: [] });
    expect(await axeCheck(page)).toEqual([]);
    await shoot(page, 'chat-drawer');
    await link.click();
    await expect.poll(() => link.isVisible()).toBe(false);

    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'My usage' }).click();
    await page.getByRole('heading', { name: 'My usage' }).waitFor();
    await page.getByTestId('my-tokens').waitFor();
    expect(await layoutProblems(page)).toEqual({ overflow: [], small: [] });
    expect(await axeCheck(page)).toEqual([]);
    await shoot(page, 'me');
    expect(watch.errors).toEqual([]);
    await page.context().close();
  });

  it('admin pages: the menu is a drawer; overview, API keys, audit log and policy fit the screen', async () => {
    const page = await signIn(t.users.owner!.email, PHONE);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    const menu = page.getByRole('button', { name: /Admin menu/ });
    for (const [label, heading] of [
      ['Overview', 'Overview'],
      ['API keys', 'API keys'],
      ['Audit log', 'Audit log'],
      ['Data-boundary policy', 'Data-boundary policy'],
      ['Usage analytics', 'Usage analytics'],
    ] as const) {
      await menu.click();
      await page.getByRole('navigation', { name: 'Admin console' }).getByRole('link', { name: label }).click();
      await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
      await page.waitForLoadState('networkidle');
      expect(await page.getByRole('navigation', { name: 'Admin console' }).getByRole('link', { name: label }).isVisible()).toBe(false);
      expect(await layoutProblems(page), heading).toEqual({ overflow: [], small: [] });
      expect(await axeCheck(page), heading).toEqual([]);
      await shoot(page, `admin-${label.toLowerCase().replace(/\W+/g, '-')}`);
    }
    await page.context().close();
  });

  it.skipIf(!SHOTS)('desktop screenshots of the same pages (1440×900)', async () => {
    const page = await signIn(t.users.owner!.email, DESKTOP);
    await chatReady(page);
    await page.getByRole('textbox', { name: 'Message' }).fill('Hello from a desktop');
    await page.getByRole('textbox', { name: 'Message' }).press('Enter');
    await expect.poll(() => page.locator('.msg-assistant').last().textContent()).toContain('two');
    await shoot(page, 'chat');
    for (const p of ['/me', '/admin', '/admin/usage', '/admin/keys', '/admin/audit', '/admin/policy']) {
      await spaNavigate(page, p);
      await page.waitForLoadState('networkidle');
      await page.waitForTimeout(300); // screenshots only: let charts draw
      await shoot(page, p.slice(1).replace(/\//g, '-'));
    }
    await page.context().close();
  });
});
