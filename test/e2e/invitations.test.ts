import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { PASSWORD, seedTenant } from '../helpers/identity.js';
import { axeCheck, ensureWebBuilt, launchBrowser, shot, watchPage } from './support.js';

/**
 * Invitations in the browser (issue 16): the Members page says "Invitation sent" and shows
 * the one-time link; a new person opens the link and sets their own password; an existing
 * account accepts from the notice after signing in.
 */
vi.setConfig({ testTimeout: 60_000 });

let app: TestApp;
let browser: Browser;
let acme: Awaited<ReturnType<typeof seedTenant>>;

beforeAll(async () => {
  ensureWebBuilt();
  browser = await launchBrowser();
  app = await startTestApp({ entitlements: unrestricted });
  acme = await seedTenant(app.services, 'acme', ['owner']);
  await seedTenant(app.services, 'globex', ['member']);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
});

async function signIn(email: string, password = PASSWORD) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  const watch = watchPage(page);
  await page.goto(`${app.url}/login`);
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'New chat' }).waitFor();
  return { ctx, page, watch };
}

async function inviteFromMembersPage(email: string): Promise<string> {
  const { ctx, page } = await signIn(acme.users.owner!.email);
  await page.goto(`${app.url}/admin/members`);
  await page.getByRole('heading', { name: 'Members & roles' }).waitFor();
  const form = page.getByRole('form', { name: 'Invite a member' });
  await form.getByLabel('E-mail').fill(email);
  await form.getByRole('button', { name: 'Invite' }).click();
  const sent = page.getByTestId('invitation-sent');
  await sent.waitFor();
  expect(await sent.textContent()).toContain('Invitation sent');
  const link = await sent.getByRole('textbox').inputValue();
  await expect.poll(() => page.getByRole('table', { name: 'Pending invitations' }).textContent()).toContain(email);
  expect(await axeCheck(page)).toEqual([]);
  await shot(page, 'admin-members-invitation-sent');
  await ctx.close();
  return link;
}

describe('invitations in the web console', () => {
  it('a new address opens the link, sets its own password and lands in the organisation', async () => {
    const link = await inviteFromMembersPage('new.person@partner.test');
    expect(link).toMatch(/\/invite#[A-Za-z0-9_-]{40,}$/);
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    const watch = watchPage(page);
    await page.goto(link);
    await page.getByText('invites new.person@partner.test').waitFor();
    expect(await axeCheck(page)).toEqual([]);
    await page.getByLabel('Password', { exact: true }).fill('Partner-Own-Passphrase-31');
    await page.getByLabel('Repeat the password').fill('Partner-Own-Passphrase-31');
    await page.getByRole('button', { name: 'Create account and accept' }).click();
    await page.getByRole('heading', { name: 'New chat' }).waitFor();
    const s = await page.evaluate(async () => ((await (await fetch('/auth/session')).json()) as { tenant: { slug: string } }).tenant.slug);
    expect(s).toBe('acme');
    expect(watch.errors).toEqual([]);
    await ctx.close();
  });

  it('an existing account is not added until it accepts the notice after signing in', async () => {
    const email = 'member@globex.test';
    await inviteFromMembersPage(email);
    const user = (await app.services.identity.users.byEmail(email))!;
    expect((await app.services.identity.sessions.memberships(user.id)).map((m) => m.slug)).toEqual(['globex']);
    const { ctx, page, watch } = await signIn(email);
    const notice = page.getByRole('region', { name: 'Your invitations' });
    await notice.waitFor();
    await shot(page, 'invitation-notice');
    await notice.getByRole('button', { name: /Accept invitation to/ }).click();
    await expect.poll(async () => (await app.services.identity.sessions.memberships(user.id)).map((m) => m.slug).sort()).toEqual(['acme', 'globex']);
    expect(watch.errors).toEqual([]);
    await ctx.close();
  });
});
