import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { newId } from '../../server/ids.js';
import { startWorker } from '../../server/jobs/runtime.js';
import type { JobWorker } from '../../server/jobs/worker.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { PASSWORD, seedTenant, sys } from '../helpers/identity.js';
import { axeCheck, ensureWebBuilt, launchBrowser, ScriptedUpstream, shot, watchPage } from './support.js';

/**
 * The second pass of admin and user pages in Debian's chromium against a real server:
 * data-boundary policy (saved, then enforced on /v1), redaction notice in the chat, the Me
 * page from metering, the overview from metering, plans & quotas, SSO providers, jobs,
 * soft-limit banners, and the layout at laptop widths. axe on every new page.
 */
const FAST = { connectMs: 2000, firstTokenMs: 5000, idleMs: 5000, totalMs: 30_000, retryBaseMs: 5, maxRetries: 0, queueMs: 200, breakerFailures: 50, breakerCooldownMs: 1000 };

vi.setConfig({ testTimeout: 45_000 });

let app: TestApp;
let upstream: ScriptedUpstream;
let browser: Browser;
let worker: JobWorker | undefined;
let seeded: Awaited<ReturnType<typeof seedTenant>>;
let ownerKey: string;
const ADMIN = 'root@enclave.test';

beforeAll(async () => {
  ensureWebBuilt();
  [upstream, browser] = await Promise.all([new ScriptedUpstream().start(), launchBrowser()]);
  app = await startTestApp({ env: { ENCLAVE_LICENSE_MODE: 'test', ENCLAVE_OIDC_ALLOW_LOOPBACK_HTTP: 'true' }, entitlements: unrestricted });
  const s = app.services;
  seeded = await seedTenant(s, 'acme', ['owner', 'member']);
  const admin = await s.identity.users.create(sys(s), { email: ADMIN, password: PASSWORD, platformAdmin: true });
  s.identity.users.grant(seeded.ctx, admin.id, 'owner');
  s.gateway.deployments.create(sys(s), { name: 'scripted-public', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'public', models: ['gpt-scripted'], options: FAST });
  const ownerCtx = { ...seeded.ctx, principal: { kind: 'user' as const, id: seeded.users.owner!.id, userId: seeded.users.owner!.id, role: 'owner' as const } };
  ownerKey = (await s.identity.keys.create(ownerCtx, { name: 'policy-probe', scopes: ['models:invoke', 'models:list'] })).secret;
}, 60_000);

afterAll(async () => {
  await worker?.close();
  await browser?.close();
  await app?.close();
  await upstream?.close();
});

async function signIn(email: string, viewport = { width: 1280, height: 800 }): Promise<{ ctx: BrowserContext; page: Page; watch: ReturnType<typeof watchPage> }> {
  const ctx = await browser.newContext({ viewport });
  const page = await ctx.newPage();
  const watch = watchPage(page);
  await page.goto(`${app.url}/login`);
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'New chat' }).waitFor();
  return { ctx, page, watch };
}

async function adminSection(page: Page, label: string, heading = label): Promise<void> {
  await page.getByRole('navigation', { name: 'Admin console' }).getByRole('link', { name: label, exact: true }).click();
  await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
}

/** A confidential request on /v1 to the public-cloud model: the status the gateway answers. */
async function confidentialCall(content = 'Quarterly numbers'): Promise<{ status: number; code?: string; redacted: string | null }> {
  const res = await fetch(`${app.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ownerKey}`, 'content-type': 'application/json', 'x-enclave-classification': 'confidential' },
    body: JSON.stringify({ model: 'gpt-scripted', messages: [{ role: 'user', content }] }),
  });
  const body = (await res.json()) as { error?: { code: string } };
  return { status: res.status, ...(body.error ? { code: body.error.code } : {}), redacted: res.headers.get('x-enclave-redacted') };
}

describe('data-boundary policy', () => {
  it('an owner edits the classification × boundary matrix and content rules; the gateway enforces what was saved', async () => {
    expect((await confidentialCall()).code).toBe('policy_boundary_denied'); // the default policy
    const { ctx, page, watch } = await signIn(seeded.users.owner!.email);
    await page.getByRole('link', { name: 'Admin' }).click();
    await adminSection(page, 'Data-boundary policy');
    const cell = page.getByRole('checkbox', { name: 'Confidential data may go to Public cloud models' });
    expect(await cell.isChecked()).toBe(false);
    expect(await page.getByRole('checkbox', { name: 'Internal data may go to Public cloud models' }).isChecked()).toBe(true);
    expect(await page.getByLabel('E-mail addresses in Confidential data').inputValue()).toBe('redact');
    expect(await axeCheck(page)).toEqual([]);

    // Allow confidential → public cloud: the same request now goes through, with the e-mail redacted.
    await cell.check();
    await page.getByRole('button', { name: 'Save policy' }).click();
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'Policy saved' }).count()).toBe(1);
    await expect.poll(async () => (await confidentialCall('Mail ana@example.com')).status).toBe(200);
    expect((await confidentialCall('Mail ana@example.com')).redacted).toBe('email');
    expect(JSON.stringify(upstream.calls.at(-1)!.messages)).toContain('[REDACTED_EMAIL]');

    // Take it back, and redact e-mail addresses in internal data too (used by the chat test below).
    await cell.uncheck();
    await page.getByLabel('E-mail addresses in Internal data').selectOption('redact');
    await page.getByRole('button', { name: 'Save policy' }).click();
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'Policy saved' }).count()).toBe(1);
    await expect.poll(async () => (await confidentialCall()).code).toBe('policy_boundary_denied');
    // The page shows what is stored after a reload.
    await page.reload();
    await page.getByRole('heading', { name: 'Data-boundary policy' }).waitFor();
    expect(await page.getByRole('checkbox', { name: 'Confidential data may go to Public cloud models' }).isChecked()).toBe(false);
    expect(await page.getByLabel('E-mail addresses in Internal data').inputValue()).toBe('redact');
    await shot(page, 'admin-policy');

    // A key without an admin scope cannot read it (the API refuses).
    const refused = await fetch(`${app.url}/admin/api/gateway/policy`, { headers: { authorization: `Bearer ${ownerKey}` } });
    expect(refused.status).toBe(403);
    expect(watch.errors).toEqual([]);
    await ctx.close();
  });
});

describe('chat and Me page', () => {
  it('the chat says which kinds of data were redacted; the Me page shows usage by day and model, quota and own keys', async () => {
    // The owner gives the member a monthly token limit on the Plans & quotas page first.
    {
      const { ctx, page, watch } = await signIn(seeded.users.owner!.email);
      await page.goto(`${app.url}/admin/plans`);
      await page.getByRole('heading', { name: 'Plans & quotas', level: 1 }).waitFor();
      await expect.poll(() => page.getByTestId('tenant-plan').textContent()).toBe('default');
      const form = page.getByRole('form', { name: 'Set limits for a member or key' });
      await form.getByLabel(/^Member/).selectOption({ label: seeded.users.member!.email });
      await form.getByLabel('Tokens per month').fill('50000');
      await form.getByRole('button', { name: 'Save limits' }).click();
      await expect.poll(() => page.locator('table').first().textContent()).toContain(seeded.users.member!.email);
      expect(await page.locator('table').first().textContent()).toContain('Tokens per month: 50,000');
      expect(await axeCheck(page)).toEqual([]);
      await shot(page, 'admin-plans-tenant');
      expect(watch.errors).toEqual([]);
      await ctx.close();
    }

    const { ctx, page, watch } = await signIn(seeded.users.member!.email);
    upstream.reply = 'Noted.';
    upstream.pieceDelayMs = 0;
    expect(await page.getByLabel('Data classification').inputValue()).toBe('internal');
    await page.getByRole('textbox', { name: 'Message' }).fill('Please write to ana@example.com about it');
    await page.getByRole('textbox', { name: 'Message' }).press('Enter');
    await expect.poll(() => page.locator('.msg-assistant').last().textContent()).toContain('Noted.');
    const notice = page.getByTestId('redaction-notice');
    await notice.waitFor();
    expect(await notice.textContent()).toBe('Some content was redacted before it left for a cloud model (e-mail).');
    expect(JSON.stringify(upstream.calls.at(-1)!.messages)).not.toContain('ana@example.com');
    await shot(page, 'chat-redacted');

    await page.getByRole('link', { name: 'My usage' }).click();
    await page.getByRole('heading', { name: 'My usage' }).waitFor();
    await expect.poll(() => page.getByTestId('my-usage-by-model').textContent()).toContain('gpt-scripted');
    expect(Number((await page.getByTestId('my-tokens').textContent())!.replace(/\D/g, ''))).toBeGreaterThan(0);
    const left = Number((await page.getByTestId('my-remaining').textContent())!.replace(/\D/g, ''));
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThan(50_000);
    await page.locator('.chart canvas').waitFor();
    expect(await page.getByRole('table', { name: 'Monthly quotas that apply to you' }).textContent()).toContain('50,000');

    // Own API keys (the default plan includes self_service_keys).
    await page.getByLabel('Key name').fill('my-laptop');
    await page.getByRole('button', { name: 'Create key' }).click();
    const secret = await page.getByTestId('my-key-secret').textContent();
    expect(secret).toMatch(/^enk_/);
    await expect.poll(() => page.getByRole('table', { name: 'My API keys' }).textContent()).toContain('my-laptop');
    const models = await fetch(`${app.url}/v1/models`, { headers: { authorization: `Bearer ${secret}` } });
    expect(models.status).toBe(200);
    expect(await axeCheck(page)).toEqual([]);
    await shot(page, 'me');

    // The session twin of /v1/enclave/usage answers the same self-service report, plus by day.
    const api = await page.evaluate(async () => {
      const a = (await (await fetch('/api/ui/usage')).json()) as { usage: unknown; by_day: { group: string }[] };
      const b = (await (await fetch('/v1/enclave/usage')).json()) as { usage: unknown };
      return { same: JSON.stringify(a.usage) === JSON.stringify(b.usage), days: a.by_day.length };
    });
    expect(api).toEqual({ same: true, days: 1 });
    expect(watch.errors).toEqual([]);
    await ctx.close();
  });
});

describe('admin overview, plans, SSO, jobs, banners', () => {
  it('the overview charts requests, tokens and cost by day from metering; a soft-limit alert shows as a banner and can be dismissed', async () => {
    const s = app.services;
    s.metering.repo.insertNotification({ id: newId('ntf'), tenantId: seeded.tenant.id, window: '2099-01', limitName: 'monthly_tokens', threshold: 80, used: 80_000, limitValue: 100_000, createdAt: Date.now() });
    const { ctx, page, watch } = await signIn(seeded.users.owner!.email);
    const banner = page.getByTestId('usage-banner');
    await banner.waitFor();
    expect(await banner.textContent()).toContain('80% of its monthly token limit');
    await page.getByRole('link', { name: 'Admin' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    await expect.poll(async () => Number((await page.getByTestId('overview-requests').textContent())!.replace(/\D/g, ''))).toBeGreaterThanOrEqual(2);
    expect(await page.locator('.chart canvas').count()).toBe(3);
    expect(await page.getByRole('img', { name: /Cost per day/ }).count()).toBe(1);
    expect(await axeCheck(page)).toEqual([]);
    await shot(page, 'admin-overview-usage');
    await page.getByRole('button', { name: /Dismiss the 80% monthly token alert/ }).click();
    await expect.poll(() => banner.count()).toBe(0);
    expect(s.metering.repo.notifications(seeded.tenant.id, true)).toHaveLength(0);
    expect(watch.errors).toEqual([]);
    await ctx.close();
  });

  it('a platform admin edits a plan; SSO providers show the last claims view; axe passes', async () => {
    const { ctx, page, watch } = await signIn(ADMIN);
    await page.goto(`${app.url}/admin/plans`);
    await page.getByRole('heading', { name: 'Plans & quotas', level: 1 }).waitFor();
    const form = page.getByRole('form', { name: 'Create or edit a plan' });
    await form.getByLabel('Plan name').fill('team');
    await form.getByLabel('Description').fill('Teams up to 50 people');
    await form.getByLabel('Tokens per month').fill('2000000');
    await form.getByLabel('Self-service API keys').uncheck();
    await form.getByRole('button', { name: 'Save plan' }).click();
    await expect.poll(() => page.getByRole('table', { name: 'Plans' }).textContent()).toContain('Teams up to 50 people');
    expect(await page.getByRole('table', { name: 'Plans' }).textContent()).toContain('Tokens per month: 2,000,000');
    expect(await axeCheck(page)).toEqual([]);
    await shot(page, 'admin-plans');

    await adminSection(page, 'Single sign-on');
    const add = page.getByRole('form', { name: 'Add a sign-in provider' });
    await add.getByLabel('Button label').fill('Acme login');
    await add.getByLabel('Issuer URL').fill('http://127.0.0.1:9/realms/acme');
    await add.getByLabel('Client ID').fill('enclave');
    await add.getByLabel('Client secret (stored encrypted)').fill('s3cret-value');
    await add.getByRole('button', { name: 'Add provider' }).click();
    await expect.poll(() => page.getByRole('table', { name: 'Sign-in providers' }).textContent()).toContain('Acme login');
    await expect.poll(() => page.getByText('No sign-in received through this provider yet').count()).toBe(1);
    const rule = page.getByRole('form', { name: 'Add a mapping rule' });
    await rule.getByLabel('Value').fill('/acme/admins');
    await rule.getByLabel(/^Role/).selectOption('admin');
    await rule.getByRole('button', { name: 'Add rule' }).click();
    await expect.poll(() => page.getByRole('table', { name: 'Mapping rules of Acme login' }).textContent()).toContain('/acme/admins');
    expect(await axeCheck(page)).toEqual([]);
    await shot(page, 'admin-sso');
    expect(watch.errors).toEqual([]);
    await ctx.close();
  });

  it('the jobs page lists a failed job; retry and discard work', async () => {
    const s = app.services;
    worker = await startWorker(s);
    const fail = async (name: string) => {
      const job = await s.jobs.queues.add('maintenance', name, {});
      await expect.poll(() => job.getState(), { timeout: 5000 }).toBe('failed');
      return String(job.id);
    };
    const [a, b] = [await fail('ui-broken-task'), await fail('ui-other-task')];
    await worker.close();
    worker = undefined;
    const { ctx, page, watch } = await signIn(ADMIN);
    await page.goto(`${app.url}/admin/jobs`);
    await page.getByRole('heading', { name: 'Jobs', level: 1 }).waitFor();
    const failed = page.getByRole('table', { name: 'Failed jobs, newest first' });
    await expect.poll(() => failed.textContent()).toContain('ui-broken-task');
    expect(await failed.textContent()).toContain('no handler');
    expect(Number(await page.getByRole('table', { name: 'Jobs per lane' }).getByRole('row', { name: /Maintenance/ }).getByRole('cell').nth(4).textContent())).toBeGreaterThanOrEqual(2);
    expect(await axeCheck(page)).toEqual([]);
    await shot(page, 'admin-jobs');

    await page.getByRole('button', { name: `Retry ui-broken-task #${a}` }).click();
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'is queued again' }).count()).toBe(1);
    expect(await (await s.jobs.queues.queue('maintenance').getJob(a))!.getState()).toBe('waiting');
    await page.getByRole('button', { name: `Discard ui-other-task #${b}` }).click(); // confirm() is accepted by watchPage
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'was discarded' }).count()).toBe(1);
    expect(await s.jobs.queues.queue('maintenance').getJob(b)).toBeUndefined();
    expect(await page.getByText('No failed jobs.').count()).toBe(1);
    await s.jobs.queues.queue('maintenance').remove(a);
    expect(watch.errors).toEqual([]);
    await ctx.close();
  });
});

describe('laptop widths', () => {
  it('the main pages fit 1280 and 1024 px without horizontal scrolling', async () => {
    for (const width of [1280, 1024]) {
      const { ctx, page, watch } = await signIn(ADMIN, { width, height: 760 });
      for (const [path, heading] of [
        ['/chat', 'New chat'],
        ['/me', 'My usage'],
        ['/admin', 'Overview'],
        ['/admin/policy', 'Data-boundary policy'],
        ['/admin/plans', 'Plans & quotas'],
        ['/admin/sso', 'Single sign-on'],
        ['/admin/jobs', 'Jobs'],
        ['/admin/keys', 'API keys'],
        ['/admin/members', 'Members & roles'],
        ['/admin/audit', 'Audit log'],
        ['/admin/providers', 'Providers & models'],
      ] as const) {
        // 1024 px is the hard case: every page there; at 1280 the ones with the widest content.
        if (width === 1280 && !['/chat', '/me', '/admin', '/admin/policy', '/admin/audit', '/admin/jobs'].includes(path)) continue;
        await page.goto(`${app.url}${path}`);
        await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
        await expect.poll(() => page.locator('main [role="status"].spinner').count()).toBe(0);
        const overflow = await page.evaluate(() => {
          const d = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number }; querySelector(s: string): { scrollWidth: number; clientWidth: number } | null } }).document;
          const main = d.querySelector('main');
          return { page: d.documentElement.scrollWidth - d.documentElement.clientWidth, main: main ? main.scrollWidth - main.clientWidth : 0 };
        });
        expect({ width, path, ...overflow }).toEqual({ width, path, page: 0, main: 0 });
        if (width === 1024 && (path === '/admin/policy' || path === '/me' || path === '/chat')) await shot(page, `narrow-1024${path.replace(/\//g, '-')}`);
      }
      expect(watch.errors).toEqual([]);
      await ctx.close();
    }
  });
});
