import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { PASSWORD, seedTenant, sys } from '../helpers/identity.js';
import { testLicense } from '../helpers/license.js';
import { axeCheck, chatReady, ensureWebBuilt, launchBrowser, ScriptedUpstream, shot, watchPage } from './support.js';

/**
 * The web UI in Debian's chromium against a real server (127.0.0.1) with a scripted
 * OpenAI-compatible upstream: serving and CSP, sign-in, streamed chat with Stop, policy
 * refusal, rendering safety, admin pages (keys, providers, licence), member refusal, axe.
 */
const SLOW = { connectMs: 2000, firstTokenMs: 5000, idleMs: 5000, totalMs: 30_000, retryBaseMs: 5, maxRetries: 0, queueMs: 200, breakerFailures: 50, breakerCooldownMs: 1000 };

vi.setConfig({ testTimeout: 45_000 });

let app: TestApp;
let upstream: ScriptedUpstream;
let browser: Browser;
let seeded: Awaited<ReturnType<typeof seedTenant>>;
const ADMIN = 'root@enclave.test';

beforeAll(async () => {
  ensureWebBuilt();
  [upstream, browser] = await Promise.all([new ScriptedUpstream().start(), launchBrowser()]);
  app = await startTestApp({ env: { ENCLAVE_LICENSE_MODE: 'test' }, entitlements: unrestricted });
  const s = app.services;
  seeded = await seedTenant(s, 'acme', ['owner', 'member']);
  const admin = await s.identity.users.create(sys(s), { email: ADMIN, password: PASSWORD, platformAdmin: true });
  await s.identity.users.grant(seeded.ctx, admin.id, 'owner');
  // One public-cloud model: fine for internal data, refused for confidential by the default policy.
  await s.gateway.deployments.create(sys(s), { name: 'scripted-public', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'public', models: ['gpt-scripted'], options: SLOW });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await upstream?.close();
});

async function signIn(email: string): Promise<{ ctx: BrowserContext; page: Page; watch: ReturnType<typeof watchPage> }> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  const watch = watchPage(page);
  await page.goto(`${app.url}/login`);
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'New chat' }).waitFor();
  return { ctx, page, watch };
}

describe('serving', () => {
  it('serves the UI with a strict CSP, immutable hashed assets, SPA fallback, and never shadows the API', async () => {
    const res = await fetch(`${app.url}/`, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(res.headers.get('cache-control')).toContain('no-cache');
    const html = await res.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // no inline scripts
    expect(html).not.toMatch(/<style|style="/);
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)![1]!;
    const a = await fetch(`${app.url}${asset}`);
    expect(a.status).toBe(200);
    expect(a.headers.get('cache-control')).toMatch(/max-age=31536000.*immutable/);

    const deep = await fetch(`${app.url}/chat/cnv_whatever`, { headers: { accept: 'text/html' } });
    expect(deep.status).toBe(200);
    expect(await deep.text()).toContain('<div id="root">');
    // API paths keep their JSON answers.
    const v1 = await fetch(`${app.url}/v1/models`, { headers: { accept: 'text/html' } });
    expect(v1.status).toBe(401);
    expect(v1.headers.get('content-type')).toContain('application/json');
    const admin = await fetch(`${app.url}/admin/api/nope`, { headers: { accept: 'text/html' } });
    expect(admin.status).toBe(401);
    const missingAsset = await fetch(`${app.url}/assets/nope.js`);
    expect(missingAsset.status).toBe(404);
    expect((await fetch(`${app.url}/healthz`)).headers.get('content-type')).toContain('application/json');
    // Non-browser clients asking for anything (*/*) get the API's JSON 404, not the UI.
    const plain = await fetch(`${app.url}/no-such-thing`);
    expect(plain.status).toBe(404);
    expect(plain.headers.get('content-type')).toContain('application/json');
  });
});

describe('sign-in', () => {
  it('shows a clear message for a wrong password, passes axe, and signs in locally', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    const watch = watchPage(page);
    await page.goto(`${app.url}/`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    expect(await axeCheck(page)).toEqual([]);
    await shot(page, 'sign-in');
    await page.getByLabel('E-mail').fill(seeded.users.member!.email);
    await page.getByLabel('Password').fill('wrong password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('E-mail or password is wrong');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'New chat' }).waitFor();
    expect(page.url()).toBe(`${app.url}/chat`);
    expect(watch.errors.filter((e) => !/401|Failed to load resource/.test(e))).toEqual([]);
    await ctx.close();
  });

  it('tells a user whose organisation is suspended', async () => {
    const s = app.services;
    const other = await seedTenant(s, 'frozen', ['member']);
    await s.identity.tenants.setStatus(sys(s), other.tenant.id, 'suspended');
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(`${app.url}/login`);
    await page.getByLabel('E-mail').fill(other.users.member!.email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('Your organisation is suspended');
    await ctx.close();
  });
});

describe('tenants and sessions', () => {
  it('a user in several organisations picks one after signing in, and can switch later', async () => {
    const s = app.services;
    const second = await s.identity.tenants.create(sys(s), { slug: 'globex', name: 'Globex' });
    await s.identity.users.grant((await s.identity.tenants.scopeTo(sys(s), second.id)), seeded.users.owner!.id, 'member');
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    await page.goto(`${app.url}/login`);
    await page.getByLabel('E-mail').fill(seeded.users.owner!.email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Choose an organisation' }).waitFor();
    expect(await axeCheck(page)).toEqual([]);
    await shot(page, 'tenant-picker');
    await page.getByRole('button', { name: /Globex/ }).click();
    await page.getByRole('heading', { name: 'New chat' }).waitFor();
    await expect.poll(() => page.getByLabel('Organisation').inputValue()).toBe('globex');
    // A member of Globex: no admin console there.
    expect(await page.getByRole('link', { name: 'Admin' }).count()).toBe(0);
    await page.getByLabel('Organisation').selectOption('acme');
    await page.getByRole('link', { name: 'Admin' }).waitFor();
    await ctx.close();
  });

  it('says so when the session has expired', async () => {
    const { ctx, page } = await signIn(seeded.users.member!.email);
    // Let the page's first requests finish (one still in flight would notice the end first).
    await page.waitForLoadState('networkidle');
    // End every session of the user behind the browser's back.
    await app.services.identity.sessions.logoutAll(sys(app.services), seeded.users.member!.id);
    // Any request now finds the session gone; on a busy machine one of the page's own may get
    // there before the click does, and the sign-in page is then already showing.
    await page.getByRole('link', { name: 'My usage' }).click({ timeout: 5000 }).catch(() => undefined);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await expect.poll(() => page.getByRole('status').first().textContent()).toMatch(/session has (ended|expired)/);
    await ctx.close();
  });
});

describe('chat', () => {
  it('streams an answer incrementally, Stop ends it and keeps the partial answer', async () => {
    const { ctx, page, watch } = await signIn(seeded.users.member!.email);
    // The model list loads after sign-in: wait for it rather than read it at once.
    await expect.poll(() => page.getByRole('combobox', { name: 'Model' }).inputValue()).toBe('gpt-scripted');
    await expect.poll(() => page.locator('#model-boundary').textContent()).toContain('Public cloud');
    await expect.poll(() => page.getByLabel('Data classification').inputValue()).toBe('internal');
    await shot(page, 'chat-empty');
    expect(await axeCheck(page)).toEqual([]);

    // A complete answer first (Enter sends).
    upstream.reply = 'First answer with `code` and a list:\n\n- one\n- two\n\n```js\nconsole.log(1)\n```\n';
    upstream.pieceDelayMs = 0;
    await page.getByRole('textbox', { name: 'Message' }).fill('Hello there');
    await page.getByRole('textbox', { name: 'Message' }).press('Enter');
    // Counted, not waited for as "the" code block: a strict-mode wait fails when it matches more than one.
    await expect.poll(() => page.locator('.msg-assistant').last().locator('.codeblock').count()).toBe(1);
    await expect.poll(() => page.locator('.msg-assistant').last().textContent()).toContain('console.log(1)');
    await expect.poll(() => page.locator('.conv-link').first().textContent()).toBe('Hello there');
    await expect.poll(() => page.getByTestId('conversation-usage').textContent()).toMatch(/This conversation: \d+ tokens · \$\d/);
    await shot(page, 'chat-answer');

    // Now a slow one: text grows while streaming; Stop ends it.
    upstream.reply = 'word '.repeat(40);
    upstream.pieces = 40;
    upstream.pieceDelayMs = 120;
    const calls = upstream.calls.length;
    await page.getByRole('textbox', { name: 'Message' }).fill('Tell me a long story');
    await page.getByRole('button', { name: 'Send' }).click();
    const streaming = page.locator('.msg-assistant[aria-label="Assistant is answering"]');
    await expect.poll(async () => ((await streaming.textContent()) ?? '').split('word').length - 1, { timeout: 5000 }).toBeGreaterThanOrEqual(3);
    const early = ((await streaming.textContent()) ?? '').split('word').length - 1;
    await expect.poll(async () => ((await streaming.textContent()) ?? '').split('word').length - 1, { timeout: 5000 }).toBeGreaterThan(early);
    await shot(page, 'chat-streaming');
    await page.getByRole('button', { name: 'Stop' }).click();
    await page.getByRole('button', { name: 'Send' }).waitFor();
    await expect.poll(() => page.locator('.msg-assistant .tag').last().textContent()).toBe('stopped');
    await expect.poll(() => upstream.calls[calls]?.aborted, { timeout: 5000 }).toBe(true);
    const stored = ((await page.locator('.msg-assistant').last().textContent()) ?? '').split('word').length - 1;
    expect(stored).toBeGreaterThan(0);
    expect(stored).toBeLessThan(40);

    // Regenerate resends the last user message (history had it once).
    upstream.pieceDelayMs = 0;
    upstream.reply = 'Regenerated.';
    await page.getByRole('button', { name: 'Regenerate' }).click();
    await expect.poll(() => page.locator('.msg-assistant').last().textContent()).toContain('Regenerated.');
    const sent = upstream.calls.at(-1)!.messages as { role: string; content: string }[];
    expect(sent.filter((m) => m.content === 'Tell me a long story')).toHaveLength(1);
    expect(watch.errors).toEqual([]);
    await ctx.close();
  });

  it('explains a policy refusal (confidential data may not go to a public-cloud model)', async () => {
    const { ctx, page } = await signIn(seeded.users.member!.email);
    const calls = upstream.calls.length;
    await chatReady(page); // the loaded model list resets the classification to the default
    await page.getByLabel('Data classification').selectOption('confidential');
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'Confidential data may only go to' }).count()).toBe(1);
    await page.getByRole('textbox', { name: 'Message' }).fill('Quarterly numbers, confidential');
    await page.getByRole('button', { name: 'Send' }).click();
    const refusal = page.locator('.note-refusal');
    await refusal.waitFor();
    expect(await refusal.textContent()).toContain('Confidential data may only go to Local or Private cloud models');
    expect(await refusal.textContent()).toContain('pick a Local or Private cloud model');
    expect(upstream.calls.length).toBe(calls); // nothing was sent upstream
    await shot(page, 'chat-refusal');
    await ctx.close();
  });

  it('renders model output safely: no raw HTML, no javascript: links', async () => {
    const { ctx, page, watch } = await signIn(seeded.users.member!.email);
    await page.evaluate(() => {
      (globalThis as unknown as { __xss: number }).__xss = 0;
    });
    upstream.pieceDelayMs = 0;
    upstream.pieces = 3;
    upstream.reply =
      'Look: <img src=x onerror="window.__xss=1"> and <script>window.__xss=2</script> ' +
      '[click me](javascript:window.__xss=3) and <a href="javascript:window.__xss=4">raw</a> ' +
      '![pic](javascript:window.__xss=5) <iframe src="javascript:window.__xss=6"></iframe> done.';
    await chatReady(page);
    await page.getByRole('textbox', { name: 'Message' }).fill('Show me something');
    await page.getByRole('textbox', { name: 'Message' }).press('Enter');
    await expect.poll(() => page.locator('.msg-assistant').last().textContent()).toContain('done.');
    const answer = page.locator('.msg-assistant').last();
    expect(await answer.locator('img, script, iframe').count()).toBe(0);
    const hrefs = await answer.locator('a').evaluateAll((as) => as.map((a) => a.getAttribute('href') ?? ''));
    expect(hrefs.every((h) => !/^\s*javascript:/i.test(h))).toBe(true);
    const link = answer.getByText('click me');
    if (await link.count()) await link.click();
    // A javascript: URL would run in a task the click queued: let the page run its queued tasks (no fixed sleep).
    await page.evaluate(() => new Promise((r) => setTimeout(r, 0)));
    expect(await page.evaluate(() => (globalThis as unknown as { __xss: number }).__xss)).toBe(0);
    expect(watch.dialogs).toEqual([]);
    await ctx.close();
  });
});

describe('admin console', () => {
  it('an admin creates an API key and a provider and sees them listed; overview passes axe', async () => {
    const { ctx, page, watch } = await signIn(ADMIN);
    await page.getByRole('link', { name: 'Admin' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await page.locator('.chart canvas').first().waitFor();
    expect(await axeCheck(page)).toEqual([]);
    await shot(page, 'admin-overview');

    await page.getByRole('navigation', { name: 'Admin console' }).getByRole('link', { name: 'API keys' }).click();
    await page.getByRole('heading', { name: 'API keys' }).waitFor();
    await page.getByLabel('Name', { exact: true }).fill('reporting-app');
    await page.getByRole('button', { name: 'Create key' }).click();
    const secret = await page.getByTestId('new-key-secret').textContent();
    expect(secret).toMatch(/^enk_/);
    await expect.poll(() => page.getByRole('table', { name: 'API keys of this organisation' }).textContent()).toContain('reporting-app');
    // The key works against /v1.
    const models = await fetch(`${app.url}/v1/models`, { headers: { authorization: `Bearer ${secret}` } });
    expect(models.status).toBe(200);
    await shot(page, 'admin-keys');

    await page.getByRole('link', { name: 'Providers & models' }).click();
    await page.getByRole('heading', { name: 'Providers & models' }).waitFor();
    await page.getByLabel('Name', { exact: true }).fill('local-llm');
    await page.getByLabel('Kind').selectOption('openai');
    await page.getByLabel('Base URL').fill(`${upstream.url}/v1`);
    await page.getByLabel('Data boundary').selectOption('local');
    await page.getByLabel('Models (comma-separated)').fill('llama-local');
    await page.getByRole('button', { name: 'Add provider' }).click();
    await expect.poll(() => page.getByRole('table', { name: 'Provider deployments' }).textContent()).toContain('local-llm');
    await page.getByRole('button', { name: 'Test connection to local-llm' }).click();
    await expect.poll(() => page.locator('td [role="status"]').first().textContent()).toMatch(/Connected|model/i);
    await shot(page, 'admin-providers');

    await page.getByRole('link', { name: 'Members & roles' }).click();
    // By name: the page has a second table (pending invitations) when there are any.
    await expect.poll(() => page.getByRole('table', { name: 'Members of this organisation' }).textContent()).toContain(seeded.users.member!.email);
    await shot(page, 'admin-members');

    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByRole('button', { name: 'Verify hash chain' }).click();
    await expect.poll(() => page.locator('.verify').textContent()).toContain('Chain intact');
    await shot(page, 'admin-audit');

    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByLabel(/Delete conversations not used for/).fill('90');
    await page.getByRole('button', { name: 'Save retention' }).click();
    await expect.poll(() => page.getByRole('status').filter({ hasText: '90 days' }).count()).toBe(1);
    expect(watch.errors).toEqual([]);
    await ctx.close();
  });

  it('the licence upload shows the dry-run diff and then the new state', async () => {
    const { ctx, page } = await signIn(ADMIN);
    await page.goto(`${app.url}/admin/license`);
    await page.getByRole('heading', { name: 'Licence', exact: true }).waitFor();
    expect(await page.getByTestId('license-state').textContent()).toBe('unlicensed');
    await page.getByLabel('…or paste the licence text').fill(testLicense({ plan: 'enterprise' }));
    await page.getByRole('button', { name: 'Check (dry run)' }).click();
    const diff = page.getByRole('table', { name: 'What changes if this licence is installed' });
    await diff.waitFor();
    expect(await diff.locator('tr.changed').count()).toBeGreaterThan(0);
    expect(await diff.textContent()).toContain('Acme Corp');
    await shot(page, 'admin-license-dry-run');
    await page.getByRole('button', { name: 'Install' }).click();
    await expect.poll(() => page.getByTestId('license-state').textContent()).toBe('valid');
    await shot(page, 'admin-license');

    // A broken licence is refused with the API's reason.
    await page.getByLabel('…or paste the licence text').fill('-----BEGIN ENCLAVE LICENSE-----\nnope\n-----END ENCLAVE LICENSE-----');
    await page.getByRole('button', { name: 'Check (dry run)' }).click();
    await expect.poll(() => page.getByRole('alert').first().textContent()).toContain('The licence was not accepted');
    await ctx.close();
  });

  it('a member cannot open admin pages, and the API refuses too', async () => {
    const { ctx, page } = await signIn(seeded.users.member!.email);
    expect(await page.getByRole('link', { name: 'Admin' }).count()).toBe(0);
    await page.goto(`${app.url}/admin/keys`);
    await page.getByRole('heading', { name: 'Not allowed' }).waitFor();
    const status = await page.evaluate(async () => {
      const s = (await (await fetch('/auth/session')).json()) as { tenant: { id: string } }; // in the page: same origin
      const r = await fetch(`/admin/api/tenants/${s.tenant.id}/members`);
      const l = await fetch('/admin/api/license');
      return [r.status, l.status];
    });
    expect(status).toEqual([403, 403]);
    await ctx.close();
  });
});
