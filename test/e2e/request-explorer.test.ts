import { readFileSync } from 'node:fs';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { FakeOpenAI } from '../fakes/fake-openai.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { PASSWORD, seedTenant, sys } from '../helpers/identity.js';
import { axeCheck, ensureWebBuilt, launchBrowser, shot, watchPage } from './support.js';

/**
 * The request explorer (issue 25) in Debian's chromium against a real server: search calls by
 * request id, model and status; open one and read its timeline (a fallback across two
 * deployments, a policy refusal); export its decision record as JSON; the layout at 1440x900
 * and 390x844 (screenshots in test/e2e/artifacts). One app, two fake upstreams.
 */
const FAST = { connectMs: 5000, firstTokenMs: 5000, idleMs: 5000, totalMs: 30_000, retryBaseMs: 5, maxRetries: 0, queueMs: 200, breakerFailures: 50, breakerCooldownMs: 1000 };

vi.setConfig({ testTimeout: 45_000 });

let app: TestApp;
let primary: FakeOpenAI;
let secondary: FakeOpenAI;
let browser: Browser;
let seeded: Awaited<ReturnType<typeof seedTenant>>;
let key: string;
const ids: { fallback: string; refused: string; plain: string } = { fallback: '', refused: '', plain: '' };

async function ask(model: string, classification?: string): Promise<{ status: number; requestId: string }> {
  const res = await fetch(`${app.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...(classification ? { 'x-enclave-classification': classification } : {}) },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Quarterly numbers, please' }] }),
  });
  await res.text();
  return { status: res.status, requestId: res.headers.get('x-request-id')! };
}

beforeAll(async () => {
  ensureWebBuilt();
  [primary, secondary, browser] = await Promise.all([new FakeOpenAI().start(), new FakeOpenAI().start(), launchBrowser()]);
  app = await startTestApp({ entitlements: unrestricted });
  const s = app.services;
  seeded = await seedTenant(s, 'acme', ['owner', 'member']);
  await s.gateway.deployments.create(sys(s), { name: 'primary', kind: 'openai', base_url: `${primary.url}/v1`, boundary: 'private', models: ['gpt-explorer'], priority: 1, options: FAST });
  await s.gateway.deployments.create(sys(s), { name: 'secondary', kind: 'openai', base_url: `${secondary.url}/v1`, boundary: 'private', models: ['gpt-explorer'], priority: 2, options: FAST });
  key = (await s.identity.keys.create(seeded.ctx, { name: 'explorer', ownerUserId: seeded.users.member!.id })).secret;
  primary.fail('server_error');
  const fb = await ask('gpt-explorer');
  expect(fb.status).toBe(200);
  ids.fallback = fb.requestId;
  const plain = await ask('gpt-explorer');
  ids.plain = plain.requestId;
  const refused = await ask('gpt-explorer', 'restricted');
  expect(refused.status).toBe(403);
  ids.refused = refused.requestId;
  primary.assertNoPendingFaults();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await primary?.close();
  await secondary?.close();
});

async function openExplorer(viewport: { width: number; height: number }): Promise<{ ctx: BrowserContext; page: Page; watch: ReturnType<typeof watchPage> }> {
  const ctx = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await ctx.newPage();
  const watch = watchPage(page);
  await page.goto(`${app.url}/login`);
  await page.getByLabel('E-mail').fill(seeded.users.owner!.email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'New chat' }).waitFor();
  await page.goto(`${app.url}/admin/calls`);
  await page.getByRole('heading', { name: 'Calls', level: 1 }).waitFor();
  return { ctx, page, watch };
}

const rows = (page: Page) => page.getByTestId('calls-table').locator('tbody tr');

async function search(page: Page, fields: Record<string, string>): Promise<void> {
  const form = page.getByRole('form', { name: 'Search calls' });
  for (const [label, value] of Object.entries(fields)) {
    // The field whose label reads exactly `label` (a select's label text would include its options).
    const field = form.locator('label', { has: page.locator('span', { hasText: new RegExp(`^${label}$`) }) });
    if (await field.locator('select').count()) await field.locator('select').selectOption(value);
    else await field.locator('input').fill(value);
  }
  await form.getByRole('button', { name: 'Search' }).click();
}

describe('request explorer', () => {
  it('search by request id, model and status; open the timeline of a fallback; export it as JSON (1440x900)', async () => {
    const { ctx, page, watch } = await openExplorer({ width: 1440, height: 900 });
    await expect.poll(() => rows(page).count()).toBe(3);
    await shot(page, 'request-explorer-list-1440');

    await search(page, { 'Request id': ids.refused });
    await expect.poll(() => rows(page).count()).toBe(1);
    await expect.poll(() => rows(page).first().textContent()).toContain('policy_boundary_denied');

    await search(page, { 'Request id': '', Status: 'ok', Model: 'gpt-explorer' });
    await expect.poll(() => rows(page).count()).toBe(2);
    await search(page, { Status: 'refused' });
    await expect.poll(() => rows(page).count()).toBe(1);
    await search(page, { Status: '', Model: 'no-such-model' });
    await expect.poll(() => page.getByText('No calls match these filters.').count()).toBe(1);

    await search(page, { Model: '' });
    await expect.poll(() => rows(page).count()).toBe(3);
    await page.getByRole('button', { name: `Open call ${ids.fallback}` }).click();
    const detail = page.getByTestId('call-detail');
    await detail.getByTestId('call-timeline').waitFor();
    await expect.poll(() => detail.textContent()).toContain('Fallbacks: primary → secondary');
    const text = (await detail.textContent())!;
    expect(text).toContain('provider_server_error');
    expect(text).toContain('HTTP 500');
    expect(text).not.toContain('Quarterly numbers');
    await shot(page, 'request-explorer-detail-1440');

    const [download] = await Promise.all([page.waitForEvent('download'), detail.getByRole('button', { name: 'Export JSON' }).click()]);
    const exported = JSON.parse(readFileSync((await download.path())!, 'utf8')) as { request_id: string; attempts: { deployment: string; status: string }[]; fallbacks: unknown[] };
    expect(exported.request_id).toBe(ids.fallback);
    expect(exported.attempts.map((a) => [a.deployment, a.status])).toEqual([
      ['primary', 'provider_server_error'],
      ['secondary', 'ok'],
    ]);
    expect(exported.fallbacks).toEqual([{ from: 'primary', to: 'secondary', reason: 'provider_server_error' }]);
    expect(await axeCheck(page)).toEqual([]);
    expect(watch.errors).toEqual([]);
    await ctx.close();
  });

  it('a refused call on a phone: why it was refused, nothing attempted (390x844)', async () => {
    const { ctx, page, watch } = await openExplorer({ width: 390, height: 844 });
    await expect.poll(() => rows(page).count()).toBe(3);
    await shot(page, 'request-explorer-list-390');
    await page.getByRole('button', { name: `Open call ${ids.refused}` }).click();
    const detail = page.getByTestId('call-detail');
    await detail.getByTestId('call-timeline').waitFor();
    await expect.poll(() => detail.textContent()).toContain('dropped: data-boundary policy');
    expect(await detail.textContent()).toContain('Nothing was sent upstream.');
    expect(await detail.textContent()).toContain('X-Enclave-Classification header');
    await detail.scrollIntoViewIfNeeded();
    await shot(page, 'request-explorer-detail-390');
    // The page's own parts fit the screen (the whole page's sideways scroll is axe-all's check, for every page).
    for (const part of [detail, page.getByRole('form', { name: 'Search calls' })]) {
      const box = (await part.boundingBox())!;
      expect(box.x + box.width).toBeLessThanOrEqual(390);
    }
    expect(await detail.evaluate((e) => (e as unknown as { scrollWidth: number; clientWidth: number }).scrollWidth - (e as unknown as { clientWidth: number }).clientWidth)).toBe(0);
    expect(watch.errors).toEqual([]);
    await ctx.close();
  });
});
