import { readFileSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { call, login, PASSWORD, seedTenant, sys } from '../helpers/identity.js';
import { axeCheck, chatReady, ensureWebBuilt, launchBrowser, ScriptedUpstream, shot, watchPage } from './support.js';

/**
 * Issue 21's chat features in Debian's chromium: an assistant picked from its page starts a
 * chat with its model, classification, starters and (sent) instructions; 👍/👎 with a comment
 * reaches the admins' per-model view; the prompt library is inserted with `/` from the
 * keyboard and its history shows who changed what. axe on each page at 1440×900 and
 * 390×844, screenshots in test/e2e/artifacts/.
 */
const FAST = { connectMs: 2000, firstTokenMs: 5000, idleMs: 5000, totalMs: 30_000, retryBaseMs: 5, maxRetries: 0, queueMs: 200, breakerFailures: 50, breakerCooldownMs: 1000 };
vi.setConfig({ testTimeout: 90_000 });

let app: TestApp;
let upstream: ScriptedUpstream;
let browser: Browser;
let t: Awaited<ReturnType<typeof seedTenant>>;
const DESKTOP = { width: 1440, height: 900 };
const PHONE = { width: 390, height: 844 };
const PROMPT_V2 = 'Summarise the meeting notes below in five bullets, with owners and due dates.';

beforeAll(async () => {
  ensureWebBuilt();
  [upstream, browser] = await Promise.all([new ScriptedUpstream().start(), launchBrowser()]);
  app = await startTestApp({ entitlements: unrestricted });
  const s = app.services;
  t = await seedTenant(s, 'features', ['owner', 'member']);
  await s.gateway.deployments.create(sys(s), { name: 'f-local', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'local', models: ['llama-local'], options: FAST });
  await s.gateway.deployments.create(sys(s), { name: 'f-cloud', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'public', models: ['gpt-cloud'], options: FAST });
  const owner = await login(app.url, t.users.owner!.email);
  const a = await call(app.url, `/admin/api/tenants/${t.tenant.id}/assistants`, {
    method: 'POST',
    session: owner,
    body: { name: 'Contract reviewer', description: 'Reads clauses and flags risks.', instructions: 'You review contracts for the legal team. Flag risky clauses.', model: 'llama-local', classification: 'confidential', starters: ['Which clauses are risky?', 'Summarise the termination terms'] },
  });
  expect(a.status).toBe(201);
  const p = await call(app.url, `/admin/api/tenants/${t.tenant.id}/prompts`, { method: 'POST', session: owner, body: { title: 'Meeting summary', body: 'Summarise the meeting notes below.' } });
  expect((await call(app.url, `/admin/api/tenants/${t.tenant.id}/prompts/${p.body.id}`, { method: 'PUT', session: owner, body: { title: 'Meeting summary', body: PROMPT_V2 } })).status).toBe(200);
  await call(app.url, `/admin/api/tenants/${t.tenant.id}/prompts`, { method: 'POST', session: owner, body: { title: 'Polite reply', body: 'Write a polite reply to this e-mail.' } });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await upstream?.close();
});

async function signIn(email: string, viewport = DESKTOP) {
  const ctx = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await ctx.newPage();
  const watch = watchPage(page);
  await page.goto(`${app.url}/login`);
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'New chat' }).waitFor();
  return { ctx, page, watch };
}
const box = (page: Page) => page.getByRole('textbox', { name: 'Message' });
async function noAxe(page: Page, what: string) {
  expect(await axeCheck(page), what).toEqual([]);
}
/** No horizontal page scroll: the page is no wider than the screen. */
async function fits(page: Page, what: string) {
  const w = await page.evaluate(() => {
    const d = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document.documentElement;
    return { scroll: d.scrollWidth, client: d.clientWidth };
  });
  expect(w.scroll, what).toBeLessThanOrEqual(w.client);
}

describe('chat features', () => {
  it('an assistant starts a chat: model, classification, starters; its instructions are sent; feedback; / inserts a library prompt', async () => {
    const { ctx, page, watch } = await signIn(t.users.member!.email);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Assistants' }).click();
    await page.getByRole('heading', { name: 'Assistants' }).waitFor();
    await page.getByText('Reads clauses and flags risks.').waitFor();
    await noAxe(page, 'assistants page');
    await shot(page, 'features-assistants-1440');

    await page.getByRole('link', { name: 'Start a chat with Contract reviewer' }).click();
    await page.getByTestId('assistant-intro').waitFor();
    await chatReady(page);
    await expect.poll(() => page.getByRole('combobox', { name: 'Assistant' }).inputValue()).not.toBe('');
    await expect.poll(() => page.getByRole('combobox', { name: 'Model' }).inputValue()).toBe('llama-local');
    expect(await page.getByRole('combobox', { name: 'Data classification' }).inputValue()).toBe('confidential');
    // Lower classifications than the assistant's are not offered.
    expect(await page.locator('select option[value="public"]').isDisabled()).toBe(true);
    await noAxe(page, 'chat with an assistant picked');
    await shot(page, 'features-chat-assistant-1440');

    upstream.reply = 'Clause 7 is risky: unlimited liability.';
    const before = upstream.calls.length;
    await page.getByRole('button', { name: 'Which clauses are risky?' }).click();
    expect(await box(page).inputValue()).toBe('Which clauses are risky?');
    await box(page).press('Enter');
    await expect.poll(() => page.locator('.msg-assistant').last().textContent()).toContain('unlimited liability');
    expect(upstream.calls[before]!.messages[0]).toEqual({ role: 'system', content: 'You review contracts for the legal team. Flag risky clauses.' });
    await page.getByTestId('conversation-assistant').getByText('Contract reviewer').waitFor();
    // The instructions are not shown as a turn, but can be read.
    expect(await page.locator('.msg-user').count()).toBe(1);
    await page.getByText('Instructions from the assistant').waitFor();

    // 👎 with a comment; the choice survives a reload.
    const answer = page.locator('.msg-assistant').last();
    await answer.getByRole('button', { name: 'Not helpful' }).click();
    await expect.poll(() => answer.getByRole('button', { name: 'Not helpful' }).getAttribute('aria-pressed')).toBe('true');
    await answer.getByRole('textbox', { name: 'Comment on this answer (optional)' }).fill('Missed clause 9 as well.');
    await answer.getByRole('button', { name: 'Save comment' }).click();
    await answer.getByRole('button', { name: 'Edit comment' }).waitFor();
    await noAxe(page, 'chat with feedback');
    await page.reload();
    await expect.poll(() => page.locator('.msg-assistant').last().getByRole('button', { name: 'Not helpful' }).getAttribute('aria-pressed')).toBe('true');

    // `/` opens the prompt library, keyboard only: filter, arrow, Enter inserts the current version.
    await box(page).focus();
    await box(page).press('/');
    const picker = page.getByRole('listbox', { name: 'Prompt library' });
    await picker.waitFor();
    expect(await picker.getByRole('option').count()).toBe(2);
    await box(page).pressSequentially('meet');
    await expect.poll(() => picker.getByRole('option').count()).toBe(1);
    expect(await box(page).getAttribute('aria-activedescendant')).toMatch(/^prompt-picker-prm_/);
    await noAxe(page, 'prompt picker open');
    await shot(page, 'features-prompt-picker-1440');
    await box(page).press('Enter');
    expect(await box(page).inputValue()).toBe(PROMPT_V2);
    expect(await picker.count()).toBe(0);
    // Escape closes the picker and leaves the slash as text.
    await box(page).fill('');
    await box(page).press('/');
    await picker.waitFor();
    await box(page).press('Escape');
    expect(await picker.count()).toBe(0);
    expect(await box(page).inputValue()).toBe('/');
    expect(watch.errors).toEqual([]);
    await ctx.close();
  });

  it('editing an earlier message starts a branch; the old branch stays reachable with ‹ 1/2 ›', async () => {
    const { ctx, page, watch } = await signIn(t.users.member!.email);
    await chatReady(page);
    for (const [q, a] of [
      ['Plan a team offsite', 'Offsite plan A.'],
      ['Add a budget', 'Budget A.'],
    ] as const) {
      upstream.reply = a;
      await box(page).fill(q);
      await box(page).press('Enter');
      await expect.poll(() => page.locator('.msg-assistant').last().textContent()).toContain(a);
    }
    // Edit the first message (not the last): a new branch from there.
    await page.locator('.msg-user').first().getByRole('button', { name: 'Edit' }).click();
    expect(await box(page).inputValue()).toBe('Plan a team offsite');
    await box(page).fill('Plan a team offsite in Lisbon');
    upstream.reply = 'Lisbon plan.';
    const before = upstream.calls.length;
    await page.getByRole('button', { name: 'Resend' }).click();
    await expect.poll(() => page.locator('.msg-assistant').last().textContent()).toContain('Lisbon plan.');
    expect((upstream.calls[before]!.messages as { content: string }[]).map((m) => m.content)).toEqual(['Plan a team offsite in Lisbon']);
    expect(await page.locator('.msg-user').count()).toBe(1);
    const branches = page.getByRole('group', { name: 'Message branches' });
    expect(await branches.textContent()).toContain('2 / 2');
    await noAxe(page, 'chat with branches');
    await shot(page, 'features-branches-1440');
    // Back to the first branch: the old turns are all there.
    await branches.getByRole('button', { name: 'Previous branch' }).click();
    await expect.poll(() => page.locator('.msg-user').count()).toBe(2);
    expect(await branches.textContent()).toContain('1 / 2');
    expect(await page.locator('.msg-assistant').last().textContent()).toContain('Budget A.');
    // Continuing the old branch sends its own history.
    upstream.reply = 'Budget B.';
    await box(page).fill('Cheaper, please');
    await box(page).press('Enter');
    await expect.poll(() => page.locator('.msg-assistant').last().textContent()).toContain('Budget B.');
    expect((upstream.calls.at(-1)!.messages as { content: string }[]).map((m) => m.content)).toEqual(['Plan a team offsite', 'Offsite plan A.', 'Add a budget', 'Budget A.', 'Cheaper, please']);
    expect(await page.locator('.msg-user').count()).toBe(3);
    // The Markdown export holds the branch being viewed; the JSON export every message, with parent ids.
    await page.getByText('Export', { exact: true }).click();
    const [md] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Markdown (.md)' }).click()]);
    const mdText = readFileSync((await md.path())!, 'utf8');
    expect(mdText).toContain('Cheaper, please');
    expect(mdText).not.toContain('Lisbon');
    const [json] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'JSON (.json)' }).click()]);
    const all = JSON.parse(readFileSync((await json.path())!, 'utf8')) as { messages: { content: string; parent_id: string | null }[] };
    expect(all.messages.map((m) => m.content)).toContain('Lisbon plan.');
    expect(all.messages.filter((m) => m.parent_id === null).length).toBe(2); // the first message and its edited branch
    expect(watch.errors).toEqual([]);
    await ctx.close();
  });

  it('admins: feedback per model with comments, the prompt library with its history, shared assistants', async () => {
    const { ctx, page, watch } = await signIn(t.users.owner!.email);
    await page.goto(`${app.url}/admin/feedback`);
    await page.getByRole('heading', { name: 'Answer feedback' }).waitFor();
    const row = page.getByRole('row', { name: /llama-local/ });
    await row.waitFor();
    expect(await row.textContent()).toContain('0');
    await page.getByText('Missed clause 9 as well.').waitFor();
    await noAxe(page, 'feedback page');
    await shot(page, 'features-admin-feedback-1440');

    // Adoption in usage analytics: the member chatted today (1 of 2 members).
    await page.getByRole('navigation', { name: 'Admin console' }).getByRole('link', { name: 'Usage analytics' }).click();
    const adoption = page.getByTestId('adoption-summary');
    await adoption.waitFor();
    expect((await adoption.textContent())?.replace(/\s+/g, ' ')).toContain('Active people in the period1Members2Share of members active50 %');
    await page.getByRole('region', { name: 'Active people per week' }).waitFor();
    await page.getByRole('heading', { name: 'Adoption' }).scrollIntoViewIfNeeded();
    await noAxe(page, 'usage analytics with adoption');
    await shot(page, 'features-admin-adoption-1440');

    await page.getByRole('navigation', { name: 'Admin console' }).getByRole('link', { name: 'Prompt library' }).click();
    await page.getByRole('heading', { name: 'Prompt library' }).waitFor();
    await page.getByRole('button', { name: 'History of Meeting summary' }).click();
    const hist = page.getByRole('region', { name: 'History of “Meeting summary”' });
    await hist.waitFor();
    expect(await hist.getByRole('listitem').count()).toBe(2);
    await hist.getByText('Version 1').waitFor();
    await noAxe(page, 'prompt library with history');
    await shot(page, 'features-admin-prompts-1440');
    // A new version from the form.
    await page.getByRole('button', { name: 'Edit Polite reply' }).click();
    await page.getByRole('form', { name: 'Edit Polite reply' }).locator('textarea').fill('Write a short, polite reply to this e-mail.');
    await page.getByRole('button', { name: 'Save prompt' }).click();
    await page.getByText('Saved “Polite reply” (version 2).').waitFor();

    await page.getByRole('navigation', { name: 'Admin console' }).getByRole('link', { name: 'Assistants' }).click();
    await page.getByRole('heading', { name: 'Assistants' }).waitFor();
    await page.getByRole('button', { name: 'New shared assistant' }).click();
    await page.getByLabel('Name').fill('HR helper');
    await page.getByLabel(/^Instructions/).fill('Answer questions about the HR handbook.');
    await noAxe(page, 'assistant form');
    await page.getByRole('button', { name: 'Save assistant' }).click();
    await page.getByText('Saved “HR helper”.').waitFor();
    await shot(page, 'features-admin-assistants-1440');
    expect(watch.errors).toEqual([]);
    await ctx.close();
  });

  it('at 390×844: assistants, chat with an assistant, feedback and prompts fit the screen and pass axe', async () => {
    const m = await signIn(t.users.member!.email, PHONE);
    await m.page.goto(`${app.url}/assistants`);
    await m.page.getByText('Reads clauses and flags risks.').waitFor();
    await fits(m.page, 'assistants at 390');
    await noAxe(m.page, 'assistants at 390');
    await shot(m.page, 'features-assistants-390');
    await m.page.getByRole('link', { name: 'Start a chat with Contract reviewer' }).click();
    await m.page.getByTestId('assistant-intro').waitFor();
    await chatReady(m.page);
    await fits(m.page, 'chat with assistant at 390');
    await noAxe(m.page, 'chat with assistant at 390');
    await shot(m.page, 'features-chat-assistant-390');
    await box(m.page).focus();
    await box(m.page).press('/');
    await m.page.getByRole('listbox', { name: 'Prompt library' }).waitFor();
    await fits(m.page, 'prompt picker at 390');
    await shot(m.page, 'features-prompt-picker-390');
    expect(m.watch.errors).toEqual([]);
    await m.ctx.close();

    const o = await signIn(t.users.owner!.email, PHONE);
    for (const [path, heading, name] of [
      ['/admin/feedback', 'Answer feedback', 'feedback'],
      ['/admin/prompts', 'Prompt library', 'prompts'],
      ['/admin/assistants', 'Assistants', 'assistants'],
      ['/admin/usage', 'Usage analytics', 'adoption'],
    ] as const) {
      await o.page.goto(`${app.url}${path}`);
      await o.page.getByRole('heading', { name: heading }).waitFor();
      // The usage page shows several panels, each with its own spinner: wait for none, not for "the" one.
      await expect.poll(() => o.page.locator('.spinner').count(), { timeout: 15_000, message: `${path}: spinners gone` }).toBe(0);
      if (name === 'adoption') await o.page.getByTestId('adoption-summary').scrollIntoViewIfNeeded();
      await fits(o.page, `${path} at 390`);
      await noAxe(o.page, `${path} at 390`);
      await shot(o.page, `features-admin-${name}-390`);
    }
    expect(o.watch.errors).toEqual([]);
    await o.ctx.close();
  });
});
