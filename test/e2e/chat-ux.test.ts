import { readFileSync } from 'node:fs';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { call, login, PASSWORD, seedTenant, sys } from '../helpers/identity.js';
import { axeCheck, chatReady, ensureWebBuilt, launchBrowser, ScriptedUpstream, spaNavigate, watchPage } from './support.js';

/**
 * Issue 21's chat and console bugs in Debian's chromium, each a test that failed before the
 * fix: a stream stays in its conversation when the user switches; refused sends show as not
 * sent (and stay so after a reload) with Retry; the quota refusal speaks in the user's
 * locale and agrees with My usage; a platform admin without an organisation gets a home and
 * a picker and the console never calls /tenants/null; tab title, focus, growing box, drafts,
 * Copy key; a viewer is told they cannot send.
 */
const SLOW = { connectMs: 2000, firstTokenMs: 5000, idleMs: 5000, totalMs: 30_000, retryBaseMs: 5, maxRetries: 0, queueMs: 200, breakerFailures: 50, breakerCooldownMs: 1000 };
vi.setConfig({ testTimeout: 60_000 });

let app: TestApp;
let upstream: ScriptedUpstream;
let browser: Browser;
let t: Awaited<ReturnType<typeof seedTenant>>;
const ROOT = 'root@ux.test';
const QUOTA = 'quota@ux.test';

beforeAll(async () => {
  ensureWebBuilt();
  [upstream, browser] = await Promise.all([new ScriptedUpstream().start(), launchBrowser()]);
  app = await startTestApp({ env: { ENCLAVE_LICENSE_MODE: 'test' }, entitlements: unrestricted });
  const s = app.services;
  t = await seedTenant(s, 'ux', ['owner', 'member', 'viewer']);
  await s.identity.users.create(sys(s), { email: ROOT, password: PASSWORD, platformAdmin: true });
  const q = await s.identity.users.create(sys(s), { email: QUOTA, password: PASSWORD });
  await s.identity.users.grant(t.ctx, q.id, 'member');
  await s.gateway.deployments.create(sys(s), { name: 'ux-public', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'public', models: ['gpt-cloud'], options: SLOW });
  await s.gateway.deployments.create(sys(s), { name: 'ux-local', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'local', models: ['llama-local'], options: SLOW });
  // The quota user's monthly budget: one token (set by the owner through the admin API).
  const owner = await login(app.url, t.users.owner!.email);
  const put = await call(app.url, `/admin/api/tenants/${t.tenant.id}/limits/user/${q.id}`, { method: 'PUT', session: owner, body: { monthly_tokens: 1 } });
  expect(put.status).toBe(200);
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await upstream?.close();
});

async function open(email: string, viewport = { width: 1280, height: 800 }): Promise<{ ctx: BrowserContext; page: Page; watch: ReturnType<typeof watchPage>; urls: string[] }> {
  const ctx = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await ctx.newPage();
  const watch = watchPage(page);
  const urls: string[] = [];
  page.on('request', (r) => urls.push(r.url()));
  await page.goto(`${app.url}/login`);
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  return { ctx, page, watch, urls };
}
async function signIn(email: string) {
  const r = await open(email);
  await r.page.getByRole('heading', { name: 'New chat' }).waitFor();
  await chatReady(r.page);
  return r;
}
const nav = (page: Page, name: string) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true });
const box = (page: Page) => page.getByRole('textbox', { name: 'Message' });

describe('chat: streams, refusals, quota', () => {
  it('an answer streams in its own conversation: switching away shows the other conversation only, and the answer is there on return', async () => {
    const { ctx, page, watch } = await signIn(t.users.member!.email);
    upstream.pieceDelayMs = 0;
    upstream.pieces = 3;
    upstream.reply = 'Answer for B.';
    await page.getByRole('combobox', { name: 'Model' }).selectOption('llama-local');
    await box(page).fill('Conversation B');
    await box(page).press('Enter');
    await expect.poll(() => page.locator('.msg-assistant').last().textContent()).toContain('Answer for B.');
    const urlB = page.url();

    await page.getByRole('button', { name: 'New chat' }).click();
    await page.getByRole('combobox', { name: 'Model' }).selectOption('gpt-cloud');
    upstream.reply = 'streamed '.repeat(30);
    upstream.pieces = 30;
    upstream.pieceDelayMs = 100;
    await box(page).fill('Conversation A, a long answer');
    await box(page).press('Enter');
    const streaming = page.getByTestId('streaming-answer');
    await expect.poll(async () => ((await streaming.textContent()) ?? '').split('streamed').length - 1).toBeGreaterThanOrEqual(2);
    const urlA = page.url();
    expect(urlA).not.toBe(urlB);

    // Switch to B while A streams: B's view only, with B's model.
    await page.locator('.conv-link', { hasText: 'Conversation B' }).click();
    await page.getByRole('heading', { name: 'Conversation B' }).waitFor();
    expect(await streaming.count()).toBe(0);
    expect(await page.getByRole('combobox', { name: 'Model' }).inputValue()).toBe('llama-local');
    expect(await page.locator('.chat-log').textContent()).not.toContain('streamed');
    // A finishes in the background: B stays on screen, at B's address.
    await expect.poll(() => page.locator('.live-dot').count(), { timeout: 15_000 }).toBe(0);
    expect(page.url()).toBe(urlB);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Conversation B');
    expect(await page.locator('.chat-log').textContent()).not.toContain('streamed');

    // Back in A: the whole answer, under A's model.
    await page.locator('.conv-link', { hasText: 'Conversation A' }).click();
    await expect.poll(() => page.locator('.msg-assistant').last().textContent()).toContain('streamed streamed');
    expect(await page.locator('.msg-assistant .msg-who').last().textContent()).toContain('gpt-cloud');
    expect(watch.errors).toEqual([]);
    await ctx.close();
  });

  it('a refused send shows as not sent (also after a reload), keeps the classification unsaved, and Retry sends it', async () => {
    const { ctx, page } = await signIn(t.users.member!.email);
    upstream.pieceDelayMs = 0;
    upstream.pieces = 2;
    await page.getByRole('combobox', { name: 'Model' }).selectOption('gpt-cloud');
    await page.getByLabel('Data classification').selectOption('confidential');
    const calls = upstream.calls.length;
    await box(page).fill('Confidential figures');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.locator('.note-refusal').waitFor();
    const notSent = page.locator('.msg-not-sent');
    await expect.poll(() => notSent.count()).toBe(1);
    expect(await notSent.locator('.tag').textContent()).toBe('not sent');
    expect(upstream.calls.length).toBe(calls);

    await page.reload();
    await chatReady(page);
    await expect.poll(() => page.locator('.msg-not-sent').count()).toBe(1);
    expect(await page.getByLabel('Data classification').inputValue()).not.toBe('confidential');
    expect(await page.locator('.msg-assistant').count()).toBe(0);

    // Retry with a model the policy allows for confidential data.
    upstream.reply = 'Figures handled locally.';
    await page.getByRole('combobox', { name: 'Model' }).selectOption('llama-local');
    await page.getByLabel('Data classification').selectOption('confidential');
    await page.getByRole('button', { name: 'Retry' }).click();
    await expect.poll(() => page.locator('.msg-assistant').last().textContent()).toContain('Figures handled locally.');
    expect(await page.locator('.msg-not-sent').count()).toBe(0);
    expect(await page.locator('.msg-user').count()).toBe(1);

    // Regenerate keeps the earlier answer as a version: ‹ 1 / 2 ›.
    upstream.reply = 'A second version.';
    await page.getByRole('button', { name: 'Regenerate' }).click();
    await expect.poll(() => page.locator('.msg-assistant').last().textContent()).toContain('A second version.');
    const versions = page.getByRole('group', { name: 'Answer versions' });
    expect(await versions.textContent()).toContain('2 / 2');
    await versions.getByRole('button', { name: 'Previous version' }).click();
    await expect.poll(() => page.locator('.msg-assistant').last().textContent()).toContain('Figures handled locally.');
    expect(await versions.textContent()).toContain('1 / 2');
    expect(await page.locator('.msg-assistant').count()).toBe(1);

    // Export as Markdown and JSON (a download made in the browser).
    await page.getByText('Export', { exact: true }).click();
    const [md] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Markdown (.md)' }).click()]);
    expect(md.suggestedFilename()).toBe('Confidential-figures.md');
    const mdText = readFileSync((await md.path())!, 'utf8');
    expect(mdText).toContain('# Confidential figures');
    expect(mdText).toContain('## llama-local\n\nA second version.');
    const [json] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'JSON (.json)' }).click()]);
    const exported = JSON.parse(readFileSync((await json.path())!, 'utf8')) as { messages: { role: string; content: string }[] };
    expect(exported.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'assistant']);
    await ctx.close();
  });

  it('a quota refusal names the budget, agrees with My usage and gives the reset date in words', async () => {
    const { ctx, page } = await signIn(QUOTA);
    await nav(page, 'My usage').click();
    const left = ((await page.getByTestId('my-remaining').textContent()) ?? '').trim();
    await nav(page, 'Chat').click();
    await chatReady(page);
    await box(page).fill('Anything at all');
    await box(page).press('Enter');
    const refusal = page.locator('.note-refusal');
    await refusal.waitFor();
    const text = (await refusal.textContent()) ?? '';
    expect(text).toContain('monthly token budget (1 tokens)');
    expect(text).toMatch(left === '0' ? /is used up/ : new RegExp(`has ${left} tokens left`));
    expect(text).toContain('It resets on');
    expect(text).not.toMatch(/\d{4}-\d{2}-\d{2}T/); // no ISO timestamps
    expect(text).not.toContain('sending too fast');
    await ctx.close();
  });

  it('a viewer is told they may read but not send', async () => {
    const { ctx, page } = await open(t.users.viewer!.email);
    await page.getByRole('heading', { name: 'New chat' }).waitFor();
    await page.getByRole('status').filter({ hasText: 'not send messages' }).waitFor();
    await box(page).fill('hello');
    expect(await page.getByRole('button', { name: 'Send' }).isDisabled()).toBe(true);
    await ctx.close();
  });
});

describe('platform admin without an organisation', () => {
  it('lands on a platform overview, gets a picker instead of tenant pages, and no call names a missing tenant', async () => {
    const { ctx, page, watch, urls } = await open(ROOT);
    await page.getByRole('heading', { name: 'Platform overview' }).waitFor();
    expect(new URL(page.url()).pathname).toBe('/admin');
    await expect.poll(() => page.getByTestId('platform-tenants').textContent()).toMatch(/^\d+$/);
    expect(await axeCheck(page)).toEqual([]);
    for (const [path, heading] of [
      ['/admin/members', 'Members & roles'],
      ['/admin/keys', 'API keys'],
      ['/admin/settings', 'Settings'],
      ['/admin/audit', 'Audit log'],
      ['/admin/plans', 'Plans & quotas'],
      ['/chat', 'Chat'],
      ['/me', 'My usage'],
    ] as const) {
      await spaNavigate(page, path);
      await page.getByRole('heading', { name: heading, exact: true }).waitFor();
    }
    await page.getByTestId('no-organisation').waitFor();
    expect(urls.filter((u) => /\/tenants\/(null|undefined)\b/.test(u))).toEqual([]);
    expect(await page.locator('body').textContent()).not.toContain('tenant_required');

    // Suspending an organisation asks first, naming the consequence (the test's dialog handler accepts); Resume undoes it.
    await spaNavigate(page, '/admin/tenants');
    await page.getByRole('button', { name: 'Suspend ux', exact: true }).click();
    await page.getByRole('button', { name: 'Resume ux', exact: true }).waitFor();
    expect(watch.dialogs.at(-1)).toContain('API keys are refused until you resume it');
    await page.getByRole('button', { name: 'Resume ux', exact: true }).click();
    await page.getByRole('button', { name: 'Suspend ux', exact: true }).waitFor();
    await spaNavigate(page, '/me');
    await page.getByRole('heading', { name: 'My usage' }).waitFor();

    // The picker enters an organisation.
    await page.locator('#org-picker').selectOption('ux');
    await page.getByRole('heading', { name: 'My usage' }).waitFor();
    await expect.poll(() => page.getByTestId('no-organisation').count()).toBe(0);
    expect(watch.errors.filter((e) => !/Failed to load resource/.test(e))).toEqual([]);
    await ctx.close();
  });
});

describe('usage analytics', () => {
  it('shows usage by member with names, by model, sortable, with per-day bars and a CSV export; axe passes', async () => {
    const { ctx, page } = await signIn(t.users.owner!.email);
    upstream.pieceDelayMs = 0;
    upstream.reply = 'Counted.';
    await page.getByRole('combobox', { name: 'Model' }).selectOption('llama-local');
    await box(page).fill('Something to count');
    await box(page).press('Enter');
    await expect.poll(() => page.locator('.msg-assistant').last().textContent()).toContain('Counted.');
    await app.services.gateway.usage.flush();
    await nav(page, 'Admin').click();
    await page.getByRole('navigation', { name: 'Admin console' }).getByRole('link', { name: 'Usage analytics' }).click();
    await page.getByRole('heading', { name: 'Usage analytics' }).waitFor();
    const table = page.getByTestId('usage-table');
    await expect.poll(() => table.textContent()).toContain(t.users.owner!.email);
    expect(await table.textContent()).not.toMatch(/usr_/);
    expect(await page.locator('.chart-grid .chart canvas').count()).toBe(2); // the adoption view below has its own chart
    // Sorted by tokens, largest first; a click on the header reverses it.
    const tokens = async () => (await table.locator('tbody tr td:nth-child(3)').allTextContents()).map((x) => Number(x.replace(/\D/g, '')));
    const before = await tokens();
    expect(before).toEqual([...before].sort((a, b) => b - a));
    await table.getByRole('button', { name: /^Tokens/ }).click();
    await expect.poll(tokens).toEqual([...before].sort((a, b) => a - b));
    expect(await axeCheck(page)).toEqual([]);

    await page.getByLabel('Group by').selectOption('model');
    await expect.poll(() => table.textContent()).toContain('llama-local');
    const [csv] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Export CSV' }).click()]);
    const text = readFileSync((await csv.path())!, 'utf8');
    expect(text.split('\n')[0]).toMatch(/^model,/);
    expect(text).toContain('llama-local');

    // The audit log names people instead of ids and filters by actor and date.
    await page.getByRole('navigation', { name: 'Admin console' }).getByRole('link', { name: 'Audit log' }).click();
    await page.getByRole('heading', { name: 'Audit log' }).waitFor();
    const rows = page.locator('table tbody tr');
    await expect.poll(() => rows.count()).toBeGreaterThan(0);
    await expect.poll(() => page.locator('table tbody').textContent()).toContain(t.users.owner!.email);
    const ownerLabel = await page.getByLabel('Actor').locator('option', { hasText: t.users.owner!.email }).getAttribute('value');
    await page.getByLabel('Actor').selectOption(ownerLabel!);
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect.poll(async () => (await rows.locator('td:nth-child(5)').allTextContents()).every((c) => c.includes(t.users.owner!.email))).toBe(true);
    const tomorrow = new Date(Date.now() + 2 * 86_400_000).toISOString().slice(0, 10);
    await page.getByLabel('From').fill(tomorrow);
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect.poll(() => rows.count()).toBe(0);
    await ctx.close();
  });
});

describe('audit log paging', () => {
  it('pages through the API (50 a page, newest first, cursor to the next): no search box or sort buttons pretend to cover one page', async () => {
    const s = app.services;
    for (let i = 0; i < 60; i++) (await s.identity.audit.record(sys(s), { action: 'test.paging', tenantId: t.tenant.id, details: { i } }));
    const { ctx, page } = await signIn(t.users.owner!.email);
    await page.goto(`${app.url}/admin/audit`);
    await page.getByRole('heading', { name: 'Audit log' }).waitFor();
    await page.getByLabel('Action').fill('test.paging');
    await page.getByRole('button', { name: 'Filter' }).click();
    const table = page.getByRole('table', { name: 'Audit events, newest first' });
    const pager = page.getByRole('navigation', { name: 'Pages of audit events, newest first' });
    const seqs = async () => (await table.locator('tbody tr td:nth-child(1)').allTextContents()).map(Number);
    await expect.poll(() => pager.textContent()).toContain('1–50');
    const first = await seqs();
    expect(first).toHaveLength(50);
    expect(first).toEqual([...first].sort((a, b) => b - a));
    expect(await table.locator('thead button').count()).toBe(0);
    expect(await page.getByRole('searchbox').count()).toBe(0);
    await pager.getByRole('button', { name: 'Next page' }).click();
    await expect.poll(() => pager.textContent()).toContain('51–60');
    const second = await seqs();
    expect(second).toHaveLength(10);
    expect(Math.max(...second)).toBeLessThan(Math.min(...first));
    expect(await pager.getByRole('button', { name: 'Next page' }).isDisabled()).toBe(true);
    await pager.getByRole('button', { name: 'Previous page' }).click();
    await expect.poll(seqs).toEqual(first);
    await ctx.close();
  });
});

describe('providers', () => {
  it('shows a failing deployment as down with its last error; disable and remove ask first and then act', async () => {
    const s = app.services;
    const down = await s.gateway.deployments.create(sys(s), { name: 'ux-down', kind: 'openai', base_url: 'http://127.0.0.1:9/v1', boundary: 'local', models: ['down-model'], options: { ...SLOW, connectMs: 500, breakerFailures: 1, breakerCooldownMs: 600_000 } });
    try {
      const owner = await login(app.url, t.users.owner!.email);
      const conv = (await call(app.url, '/api/chat/conversations', { method: 'POST', session: owner, body: {} })).body.id as string;
      const failed = await call(app.url, `/api/chat/conversations/${conv}/completions`, { method: 'POST', session: owner, body: { content: 'hello?', model: 'down-model' } });
      expect(failed.status).toBeGreaterThanOrEqual(500);

      const { ctx, page, watch } = await open(ROOT);
      // Signed in (where it lands depends on the organisation last used, which another test may have chosen).
      await page.getByRole('navigation', { name: 'Main' }).waitFor();
      await spaNavigate(page, '/admin/providers');
      await page.getByRole('heading', { name: 'Providers & models' }).waitFor();
      const health = page.getByTestId('health-ux-down');
      await expect.poll(() => health.textContent()).toContain('down');
      expect(await health.textContent()).toContain('Last error');
      expect(await page.getByTestId('health-ux-local').textContent()).toMatch(/up|no calls yet/);
      expect(await axeCheck(page)).toEqual([]);
      if (process.env.ENCLAVE_SHOTS) {
        await page.screenshot({ path: `${process.env.ENCLAVE_SHOTS}/providers-1280.png` });
        await page.setViewportSize({ width: 390, height: 844 });
        await page.screenshot({ path: `${process.env.ENCLAVE_SHOTS}/providers-390.png`, fullPage: true });
        await page.setViewportSize({ width: 1280, height: 800 });
      }

      const row = page.locator('tr', { has: health });
      await row.getByRole('button', { name: 'Disable' }).click();
      await expect.poll(() => row.locator('.tag').first().textContent()).toBe('disabled');
      expect(watch.dialogs.at(-1)).toContain('Nobody is offered its models');
      await row.getByRole('button', { name: 'Remove ux-down' }).click();
      await expect.poll(() => health.count()).toBe(0);
      expect(watch.dialogs.at(-1)).toContain('down-model');
      await ctx.close();
    } finally {
      try {
        await s.gateway.deployments.remove(sys(s), down.id);
      } catch {
        /* removed by the test */
      }
    }
  });
});

describe('dark mode', () => {
  it('follows the system preference, passes axe on the main pages in dark, and the toggle overrides it (kept after a reload)', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'dark' });
    const page = await ctx.newPage();
    await page.goto(`${app.url}/login`);
    await page.getByLabel('E-mail').fill(t.users.owner!.email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'New chat' }).waitFor();
    await chatReady(page);
    const theme = () => page.evaluate(() => (globalThis as unknown as { document: { documentElement: { dataset: { theme?: string } } } }).document.documentElement.dataset.theme);
    const bg = () => page.evaluate(() => (globalThis as any).getComputedStyle((globalThis as any).document.body.parentElement).backgroundColor as string);
    expect(await theme()).toBe('dark');
    expect(await bg()).toBe('rgb(15, 20, 27)');
    upstream.pieceDelayMs = 0;
    upstream.reply = 'Dark answer with `code` and a [link](https://example.com).';
    await box(page).fill('Hello in the dark');
    await box(page).press('Enter');
    await expect.poll(() => page.locator('.msg-assistant').last().textContent()).toContain('Dark answer');
    for (const path of ['/chat', '/me', '/admin', '/admin/audit', '/admin/policy', '/admin/keys']) {
      if (path !== '/chat')
        await spaNavigate(page, path);
      await page.waitForLoadState('networkidle');
      expect(await axeCheck(page), path).toEqual([]);
      if (process.env.ENCLAVE_SHOTS) await page.screenshot({ path: `${process.env.ENCLAVE_SHOTS}/dark${path.replace(/\//g, '-')}.png` });
    }
    // System → light (the toggle wins over the system preference), remembered across a reload.
    await page.getByRole('button', { name: /Colour theme: System/ }).click();
    expect(await theme()).toBe('light');
    await page.reload();
    await page.getByRole('button', { name: /Colour theme: Light/ }).waitFor();
    expect(await theme()).toBe('light');
    await page.getByRole('button', { name: /Colour theme: Light/ }).click();
    expect(await theme()).toBe('dark');
    await ctx.close();
  });
});

describe('small things', () => {
  it('tab title, focus in the message box after sign-in, a growing box, drafts that survive navigation, Copy key', async () => {
    const { ctx, page } = await signIn(t.users.member!.email);
    await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: app.url });
    await expect.poll(() => page.title()).toBe('New chat · Enclave');
    await expect.poll(() => page.evaluate(() => (globalThis as unknown as { document: { activeElement: { id: string } | null } }).document.activeElement?.id)).toBe('composer-input');

    const h1 = (await box(page).boundingBox())!.height;
    await box(page).fill('one\ntwo\nthree\nfour\nfive\nsix\nseven');
    await expect.poll(async () => (await box(page).boundingBox())!.height).toBeGreaterThan(h1 + 40);

    await box(page).fill('A half-written thought');
    await nav(page, 'My usage').click();
    await page.getByRole('heading', { name: 'My usage' }).waitFor();
    await expect.poll(() => page.title()).toBe('My usage · Enclave');
    await nav(page, 'Chat').click();
    await expect.poll(() => box(page).inputValue()).toBe('A half-written thought');

    // Code in answers is highlighted (as elements, never HTML), quotes are styled, Copy copies the plain code.
    upstream.pieceDelayMs = 0;
    upstream.reply = '> A quoted line\n\n```python\ndef greet(name):\n    return "<b>hi</b> " + name  # friendly\n```\n';
    await box(page).fill('Show me some Python');
    await box(page).press('Enter');
    const code = page.locator('.msg-assistant .codeblock').last();
    await code.waitFor();
    await expect.poll(() => code.locator('.hljs-keyword').count()).toBeGreaterThanOrEqual(2);
    expect(await code.locator('.hljs-string').first().textContent()).toBe('"<b>hi</b> "');
    expect(await code.locator('b').count()).toBe(0);
    expect(await page.locator('.msg-assistant blockquote').last().textContent()).toContain('A quoted line');
    await code.getByRole('button', { name: 'Copy code' }).click();
    await expect.poll(() => page.evaluate(() => (globalThis as unknown as { navigator: { clipboard: { readText(): Promise<string> } } }).navigator.clipboard.readText())).toBe('def greet(name):\n    return "<b>hi</b> " + name  # friendly');

    await nav(page, 'My usage').click();
    await page.getByLabel('Key name').fill('laptop');
    await page.getByRole('button', { name: 'Create key' }).click();
    const secret = ((await page.getByTestId('my-key-secret').textContent()) ?? '').trim();
    await page.getByRole('button', { name: 'Copy key' }).click();
    await expect.poll(() => page.evaluate(() => (globalThis as unknown as { navigator: { clipboard: { readText(): Promise<string> } } }).navigator.clipboard.readText())).toBe(secret);
    await ctx.close();
  });
});
