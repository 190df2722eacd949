import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { newId } from '../../server/ids.js';
import { startWorker } from '../../server/jobs/runtime.js';
import type { JobWorker } from '../../server/jobs/worker.js';
import { idpMetadataXml, makeSamlKey } from '../fakes/saml-idp.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { call, login, PASSWORD, seedTenant, sys } from '../helpers/identity.js';
import { ARTIFACTS, axeCheck, chatReady, ensureWebBuilt, launchBrowser, ScriptedUpstream, shot, watchPage } from './support.js';

/**
 * The second pass of admin and user pages in Debian's chromium against a real server:
 * data-boundary policy (saved, then enforced on /v1), redaction notice in the chat, the Me
 * page from metering, the overview from metering, plans & quotas, SSO providers, jobs,
 * soft-limit banners, prices (and the chat's cost from them), the tenant's metering settings
 * (webhook secret shown once), and the layout at laptop widths. axe on every new page.
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
  await s.identity.users.grant(seeded.ctx, admin.id, 'owner');
  await s.gateway.deployments.create(sys(s), { name: 'scripted-public', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'public', models: ['gpt-scripted'], options: FAST });
  const ownerCtx = await ({ ...seeded.ctx, principal: { kind: 'user' as const, id: seeded.users.owner!.id, userId: seeded.users.owner!.id, role: 'owner' as const } });
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

describe('our providers (tenant-private deployments)', () => {
  it("an owner adds the organisation's own provider; a loopback address is refused with the reason; the list shows only the tenant's own", async () => {
    const { ctx, page, watch } = await signIn(seeded.users.owner!.email);
    try {
      await page.getByRole('link', { name: 'Admin' }).click();
      await adminSection(page, 'Our providers');
      await page.getByText('No providers of your own yet.').waitFor();
      const form = page.getByRole('form', { name: 'Add a provider' });
      const fill = async (name: string, url: string) => {
        await form.getByLabel('Name').fill(name);
        await form.getByLabel('Base URL').fill(url);
        await form.getByLabel('Models (comma-separated)').fill(`${name}-model`);
        await form.getByRole('button', { name: 'Add provider' }).click();
      };
      // The appliance's own loopback: refused, and the page says why.
      await fill('acme-sneaky', 'http://127.0.0.1:9/v1');
      await page.getByRole('alert').filter({ hasText: 'tenant-private deployments may not reach' }).waitFor();
      // A LAN address: added, and listed (the platform's own deployment is not).
      await fill('acme-lan', 'http://10.255.255.1:8000/v1');
      await page.getByRole('status').filter({ hasText: 'Provider acme-lan added.' }).waitFor();
      const table = page.getByRole('table', { name: 'Provider deployments' });
      await expect.poll(() => table.getByRole('row').count()).toBe(2); // header + acme-lan
      const text = (await table.textContent()) ?? '';
      expect(text).toContain('acme-lan');
      expect(text).toContain('http://10.255.255.1:8000/v1');
      expect(text).not.toContain('scripted-public');
      expect((await app.services.gateway.deployments.get('acme-lan')).tenant_id).toBe(seeded.tenant.id);
      expect(await axeCheck(page)).toEqual([]);
      await shot(page, 'admin-our-providers');
      expect(watch.errors.filter((e) => !/status of 400/.test(e))).toEqual([]);
    } finally {
      await ctx.close();
      // The later chat tests must not see an unreachable model of this tenant's.
      if (await app.services.gateway.deployments.find('acme-lan')) await app.services.gateway.deployments.remove(sys(app.services), 'acme-lan');
    }
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
    await chatReady(page);
    await expect.poll(() => page.getByLabel('Data classification').inputValue()).toBe('internal');
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
    // Tokens and requests per day: two charts, each with its own axis.
    await page.locator('.chart canvas').first().waitFor();
    expect(await page.getByRole('img', { name: /My tokens per day/ }).count()).toBe(1);
    expect(await page.getByRole('img', { name: /My requests per day/ }).count()).toBe(1);
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
    await s.metering.repo.insertNotification({ id: newId('ntf'), tenantId: seeded.tenant.id, window: '2099-01', limitName: 'monthly_tokens', threshold: 80, used: 80_000, limitValue: 100_000, createdAt: Date.now() });
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
    expect(await s.metering.repo.notifications(seeded.tenant.id, true)).toHaveLength(0);
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

  it('SAML IdPs: added from imported metadata, their entity id, SSO URL and certificates shown, edited with the IdP-initiated opt-in; fits 390 px; the audit filters fit one row at 1440', async () => {
    const key = makeSamlKey('Acme ADFS');
    const fingerprint = new X509Certificate(key.certPem).fingerprint256;
    const { ctx, page, watch } = await signIn(ADMIN, { width: 1440, height: 900 });
    await page.goto(`${app.url}/admin/sso`);
    await page.getByRole('heading', { name: 'Single sign-on', level: 1 }).waitFor();
    await page.getByRole('radio', { name: 'SAML 2.0' }).check();
    const add = page.getByRole('form', { name: 'Add a SAML provider' });
    await add.getByLabel('Button label').fill('Acme ADFS');
    // The metadata file is read in the browser into the XML box.
    await add.getByLabel('Metadata file').setInputFiles({ name: 'idp.xml', mimeType: 'application/xml', buffer: Buffer.from(idpMetadataXml('https://adfs.acme.test/adfs/services/trust', 'https://adfs.acme.test/adfs/ls/', key)) });
    await expect.poll(() => add.getByLabel('Metadata XML').inputValue()).toContain('EntityDescriptor');
    await add.getByLabel('Name attribute').fill('displayName');
    await add.getByRole('button', { name: 'Add SAML provider' }).click();
    const table = page.getByRole('table', { name: 'Sign-in providers' });
    await expect.poll(() => table.textContent()).toContain('Acme ADFS');
    expect(await table.getByRole('row', { name: /Acme ADFS/ }).textContent()).toContain('SAML 2.0');
    // Selected after adding: the IdP's fields and what to give its administrator.
    const settings = page.getByRole('form', { name: 'SAML settings of Acme ADFS' });
    await settings.waitFor();
    expect(await settings.getByLabel('IdP entity ID').inputValue()).toBe('https://adfs.acme.test/adfs/services/trust');
    expect(await settings.getByLabel('SSO URL (HTTP-Redirect)').inputValue()).toBe('https://adfs.acme.test/adfs/ls/');
    expect(await settings.getByLabel('Name attribute').inputValue()).toBe('displayName');
    expect(await settings.getByLabel(/Allow IdP-initiated/).isChecked()).toBe(false);
    const certs = page.getByRole('list', { name: 'Certificates of Acme ADFS' });
    expect(await certs.textContent()).toContain(fingerprint);
    expect(await certs.textContent()).toContain('CN=Acme ADFS');
    const idp = (await app.services.sso.listIdps(seeded.ctx)).find((i) => i.name === 'Acme ADFS')!;
    expect(await page.locator('dl.facts').last().textContent()).toContain(`/auth/saml/${idp.id}/acs`);
    expect(await axeCheck(page)).toEqual([]);
    await shot(page, 'admin-sso-saml-1440');

    await settings.getByLabel('SSO URL (HTTP-Redirect)').fill('https://adfs2.acme.test/adfs/ls/');
    await settings.getByLabel(/Allow IdP-initiated/).check();
    await settings.getByRole('button', { name: 'Save SAML settings' }).click();
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'SAML settings saved.' }).count()).toBe(1);
    const saved = (await app.services.sso.listIdps(seeded.ctx)).find((i) => i.id === idp.id)!;
    expect(JSON.parse(saved.saml!)).toMatchObject({ sso_url: 'https://adfs2.acme.test/adfs/ls/', allow_idp_initiated: true, name_attribute: 'displayName' });
    expect(saved.issuer).toBe('https://adfs.acme.test/adfs/services/trust');

    // A broken certificate gets the API's reason and changes nothing.
    await settings.getByLabel(/Replace the certificates/).fill('-----BEGIN CERTIFICATE-----\nnot-a-cert\n-----END CERTIFICATE-----');
    await settings.getByRole('button', { name: 'Save SAML settings' }).click();
    await expect.poll(() => settings.getByRole('alert').textContent()).toContain('invalid_certificate');
    expect((await app.services.sso.listIdps(seeded.ctx)).find((i) => i.id === idp.id)!.saml).toBe(saved.saml);

    // Issue 21: at 1440x900 the audit filters (a platform admin's, the widest set) stay on one row; "To" wrapped alone.
    await page.goto(`${app.url}/admin/audit`);
    await page.getByRole('heading', { name: 'Audit log', level: 1 }).waitFor();
    const filters = page.getByRole('form', { name: 'Filter audit events' });
    // The fields align at their bottoms (align-items: flex-end); a wrapped one sits a row lower.
    const bottoms = await filters.locator('.field').evaluateAll((els) => els.map((e) => Math.round((e as unknown as { getBoundingClientRect(): { bottom: number } }).getBoundingClientRect().bottom)));
    await shot(page, 'admin-audit-1440');
    expect(bottoms.length).toBe(6);
    expect(new Set(bottoms).size).toBe(1);

    await page.goto(`${app.url}/admin/sso`);
    await page.getByRole('button', { name: 'Settings & mapping of Acme ADFS' }).click();
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByRole('heading', { name: "For the IdP's administrator" }).scrollIntoViewIfNeeded();
    await shot(page, 'admin-sso-saml-390-top');
    await settings.getByRole('button', { name: 'Save SAML settings' }).scrollIntoViewIfNeeded();
    expect(await page.evaluate(() => {
      const d = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document;
      return d.documentElement.scrollWidth - d.documentElement.clientWidth;
    })).toBe(0);
    expect(await axeCheck(page)).toEqual([]);
    await shot(page, 'admin-sso-saml-390');
    expect(watch.errors.filter((e) => !/status of 400/.test(e))).toEqual([]); // the refused certificate
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

describe('prices and metering settings', () => {
  it('a platform admin sets a price on the prices page; the chat then shows the metered, non-zero cost', async () => {
    const s = app.services;
    const { ctx, page, watch } = await signIn(ADMIN);
    await page.getByRole('link', { name: 'Admin' }).click();
    await adminSection(page, 'Prices');
    const table = page.getByRole('table', { name: 'Current prices' });
    await expect.poll(() => table.textContent()).toContain('gpt-4o-mini'); // bundled defaults
    expect(await table.textContent()).not.toContain('gpt-scripted');
    const form = page.getByRole('form', { name: 'Set a price' });
    await form.getByLabel('Model').fill('gpt-scripted');
    await form.getByLabel('Deployment').selectOption({ label: 'scripted-public' });
    await form.getByLabel('Input per 1M tokens').fill('2.5');
    await form.getByLabel('Output per 1M tokens').fill('10');
    await form.getByLabel('Fee per request (optional)').fill('0.002');
    await form.getByLabel('Currency').fill('USD');
    await form.getByRole('button', { name: 'Save price' }).click();
    await expect.poll(() => page.getByRole('status').filter({ hasText: /Price of gpt-scripted \(scripted-public\) saved as version \d+/ }).count()).toBe(1);
    const row = table.getByRole('row', { name: /gpt-scripted/ });
    await expect.poll(() => row.textContent()).toContain('2.50 USD');
    expect(await row.textContent()).toContain('10.00 USD');
    expect(await row.textContent()).toContain('0.002 USD');
    expect(await row.textContent()).toContain('scripted-public');
    const stored = (await s.metering.pricing.list()).find((p) => p.model === 'gpt-scripted')!;
    expect(stored).toMatchObject({ inputMicrosPerMTok: 2_500_000, outputMicrosPerMTok: 10_000_000, requestMicros: 2_000, currency: 'USD', source: 'admin' });
    // Edit fills the form with the row; History lists the versions.
    await page.getByRole('button', { name: 'Price history of gpt-scripted' }).click();
    await expect.poll(() => page.getByRole('table', { name: 'Price history of gpt-scripted' }).textContent()).toContain(`v${stored.version}`);
    await page.getByRole('button', { name: 'Edit the price of gpt-scripted (scripted-public)' }).click();
    expect(await form.getByLabel('Output per 1M tokens').inputValue()).toBe('10');
    expect(await axeCheck(page)).toEqual([]);
    await shot(page, 'admin-prices');

    // The chat: the answer is costed with that price, and the header shows the conversation's cost.
    await page.getByRole('link', { name: 'Chat', exact: true }).click();
    await page.getByRole('heading', { name: 'New chat' }).waitFor();
    await chatReady(page);
    upstream.reply = 'A priced answer.';
    upstream.pieceDelayMs = 0;
    await page.getByRole('textbox', { name: 'Message' }).fill('What does this cost?');
    await page.getByRole('textbox', { name: 'Message' }).press('Enter');
    await expect.poll(() => page.locator('.msg-assistant').last().textContent()).toContain('A priced answer.');
    const cost = page.getByTestId('conversation-cost');
    await expect.poll(() => cost.textContent()).toMatch(/^\$0\.\d*[1-9]\d*$/);
    expect(await page.getByTestId('conversation-tokens').textContent()).toMatch(/^[1-9][\d,]* tokens$/);
    const conv = await page.evaluate(async () => {
      const list = (await (await fetch('/api/chat/conversations')).json()) as { data: { id: string; usage: { cost_micros: number } }[] };
      return list.data[0]!;
    });
    await s.gateway.usage.flush();
    const recs = ((await s.tenantStore.usageRecords.list(seeded.ctx)) as { workflow: string | null; model: string | null; costMicros: number; priceVersion: number | null; userId: string | null }[]).filter(
      (u) => u.workflow === 'chat' && u.model === 'gpt-scripted' && u.priceVersion === stored.version,
    );
    expect(recs).toHaveLength(1);
    expect(conv.usage.cost_micros).toBeGreaterThan(0);
    expect(conv.usage.cost_micros).toBe(recs[0]!.costMicros);
    expect(await cost.textContent()).toBe(`$${(recs[0]!.costMicros / 1_000_000).toFixed(4)}`);
    await shot(page, 'chat-cost');
    expect(watch.errors).toEqual([]);
    await ctx.close();
  });

  it('an owner saves the time zone and a webhook URL; the signing secret is shown once, with copy and rotate', async () => {
    const s = app.services;
    const { ctx, page, watch } = await signIn(seeded.users.owner!.email);
    await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: app.url });
    // Prices are the platform's: an owner has no prices page, and the API refuses.
    await page.getByRole('link', { name: 'Admin' }).click();
    await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
    expect(await page.getByRole('navigation', { name: 'Admin console' }).getByRole('link', { name: 'Prices' }).count()).toBe(0);
    const owner = await login(app.url, seeded.users.owner!.email);
    expect((await call(app.url, '/admin/api/prices', { session: owner })).status).toBe(403);
    expect((await call(app.url, '/admin/api/prices', { method: 'PUT', session: owner, body: { model: 'x', input_micros_per_mtok: 1, output_micros_per_mtok: 1 } })).status).toBe(403);

    await adminSection(page, 'Settings');
    const form = page.getByRole('form', { name: 'Usage metering settings' });
    await expect.poll(() => form.getByLabel('Time zone').inputValue()).toBe('UTC');
    expect(await form.getByLabel('Alert thresholds (% of monthly limits)').inputValue()).toBe('80, 100');
    await form.getByLabel('Time zone').fill('Europe/Berlin');
    await form.getByLabel('Alert thresholds (% of monthly limits)').fill('50, 90, 100');
    await form.getByLabel('Keep raw usage records for (days)').fill('400');
    await form.getByLabel('Webhook URL for usage alerts').fill('http://10.20.30.40/hooks/enclave');
    await form.getByRole('button', { name: 'Save metering settings' }).click();
    const secret = page.getByTestId('webhook-secret');
    await secret.waitFor();
    const first = (await secret.textContent())!;
    expect(first).toMatch(/^whsec_/);
    expect(await page.getByTestId('webhook-secret-note').textContent()).toContain('shown only once');
    await page.getByRole('button', { name: 'Copy secret' }).click();
    await page.getByRole('button', { name: 'Copied' }).waitFor();
    expect(await page.evaluate(() => (globalThis as unknown as { navigator: { clipboard: { readText(): Promise<string> } } }).navigator.clipboard.readText())).toBe(first);
    expect(await axeCheck(page)).toEqual([]);
    await shot(page, 'admin-settings-metering');
    const t = s.metering.plans.tenant(seeded.tenant.id)!;
    expect(t).toMatchObject({ timezone: 'Europe/Berlin', alertThresholds: [50, 90, 100], rawRetentionDays: 400, webhookUrl: 'http://10.20.30.40/hooks/enclave' });
    expect(await s.metering.webhookSecrets.has(seeded.tenant.id)).toBe(true);

    // Shown once: after a reload the form shows the saved values and no secret.
    await page.reload();
    await page.getByRole('heading', { name: 'Settings', level: 1 }).waitFor();
    await expect.poll(() => form.getByLabel('Time zone').inputValue()).toBe('Europe/Berlin');
    expect(await form.getByLabel('Webhook URL for usage alerts').inputValue()).toBe('http://10.20.30.40/hooks/enclave');
    expect(await form.getByLabel('Keep raw usage records for (days)').inputValue()).toBe('400');
    expect(await page.getByTestId('webhook-secret').count()).toBe(0);
    expect(await form.textContent()).toContain('A signing secret is set.');
    expect(await page.content()).not.toContain(first);
    // Saving again (same URL) issues no new secret; Rotate does (confirm() is accepted by watchPage).
    await form.getByLabel('Alert thresholds (% of monthly limits)').fill('80, 100');
    await form.getByRole('button', { name: 'Save metering settings' }).click();
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'Metering settings saved.' }).count()).toBe(1);
    expect(await page.getByTestId('webhook-secret').count()).toBe(0);
    await form.getByRole('button', { name: 'Rotate signing secret' }).click();
    await secret.waitFor();
    const second = (await secret.textContent())!;
    expect(second).toMatch(/^whsec_/);
    expect(second).not.toBe(first);
    expect(watch.dialogs.some((d) => d.includes('new signing secret'))).toBe(true);
    // A bad time zone: the API's error is shown.
    await form.getByLabel('Time zone').fill('Mars/Olympus');
    await form.getByRole('button', { name: 'Save metering settings' }).click();
    await expect.poll(() => page.getByRole('alert').filter({ hasText: 'IANA time zone' }).count()).toBe(1);
    expect(s.metering.plans.tenant(seeded.tenant.id)!.timezone).toBe('Europe/Berlin');
    // The browser logs the refused PUT (400) as a console error; nothing else may be logged.
    expect(watch.errors.filter((e) => !/status of 400/.test(e))).toEqual([]);
    expect(watch.errors).toHaveLength(1);
    await ctx.close();

    // A member: the API refuses both the read and the write.
    const member = await login(app.url, seeded.users.member!.email);
    expect((await call(app.url, '/api/ui/metering', { session: member })).status).toBe(403);
    expect((await call(app.url, `/admin/api/tenants/${seeded.tenant.id}/metering`, { method: 'PUT', session: member, body: { timezone: 'UTC' } })).status).toBe(403);
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
        ['/admin/prices', 'Prices'],
        ['/admin/settings', 'Settings'],
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

describe('provider kinds in the console (issue 19)', () => {
  it("each new kind's own fields at 1440 and 390 px; an Azure OpenAI provider added through the form (a vision model) stores its settings and encrypted credentials", async () => {
    const s = app.services;
    const { ctx, page, watch } = await signIn(ADMIN, { width: 1440, height: 900 });
    await page.goto(`${app.url}/admin/providers`);
    await page.getByRole('heading', { name: 'Providers & models', level: 1 }).waitFor();
    const form = page.getByRole('form', { name: 'Add a provider' });
    const kinds = [
      ['anthropic', 'Anthropic', ['API version']],
      ['azure-openai', 'Azure OpenAI', ['Resource name', 'Entra client secret (secret)']],
      ['bedrock', 'AWS Bedrock', ['Secret access key (secret)', "Use the container's role"]],
      ['vertex', 'Google Vertex AI', ['Project id', 'Service-account key (JSON) (secret)']],
      ['gemini', 'Google Gemini API', []],
    ] as const;
    for (const width of [1440, 390]) {
      // At 390 px the form is taller than the screen: a tall window so the shot holds all of it.
      await page.setViewportSize({ width, height: width === 390 ? 2000 : 900 });
      for (const [kind, label, fields] of kinds) {
        await form.getByLabel('Kind').selectOption(kind);
        if (fields.length) await form.getByRole('group', { name: `${label} settings` }).waitFor();
        for (const f of fields) expect(await form.getByLabel(f, { exact: true }).count()).toBe(1);
        const overflow = await page.evaluate(() => {
          const d = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document;
          return d.documentElement.scrollWidth - d.documentElement.clientWidth;
        });
        expect({ kind, width, overflow }).toEqual({ kind, width, overflow: 0 });
        await form.screenshot({ path: path.join(ARTIFACTS, `provider-form-${kind}-${width}.png`) });
      }
      expect(await axeCheck(page)).toEqual([]);
    }
    await page.setViewportSize({ width: 390, height: 844 });
    await shot(page, 'admin-providers-bedrock-390');

    await page.setViewportSize({ width: 1440, height: 900 });
    await form.getByLabel('Kind').selectOption('azure-openai');
    await form.getByLabel('Name', { exact: true }).fill('azure-eu');
    await form.getByLabel('Base URL (optional)').fill('http://127.0.0.1:9/openai');
    await form.getByLabel('Models (comma-separated)').fill('gpt-4o-azure');
    await form.getByLabel('Resource name').fill('acme-eu');
    await form.getByLabel(/These models accept images/).check();
    await form.getByLabel(/^API key \(api-key header/).fill('azure-key-value-123');
    await form.getByRole('button', { name: 'Add provider' }).click();
    const table = page.getByRole('table', { name: 'Provider deployments' });
    await expect.poll(() => table.textContent()).toContain('azure-eu');
    expect(await table.getByRole('row', { name: /azure-eu/ }).textContent()).toContain('Azure OpenAI');
    const row = (await s.gateway.deployments.list()).find((d) => d.name === 'azure-eu')!;
    expect(row).toMatchObject({ kind: 'azure-openai', settings: { resource: 'acme-eu' }, models: [{ name: 'gpt-4o-azure', vision: true }] });
    expect(await table.getByRole('row', { name: /azure-eu/ }).textContent()).toContain('gpt-4o-azureimages');
    expect(JSON.stringify(row)).not.toContain('azure-key-value-123');
    await shot(page, 'admin-providers-azure-1440');
    // Removed again so the chat in other cases of this file keeps its one model.
    await page.getByRole('button', { name: 'Remove azure-eu' }).click();
    await expect.poll(() => table.textContent()).not.toContain('azure-eu');
    expect(watch.errors).toEqual([]);
    await ctx.close();
  });
});
