import { PDFDocument, StandardFonts } from 'pdf-lib';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startWorker } from '../../server/jobs/runtime.js';
import type { JobWorker } from '../../server/jobs/worker.js';
import { FakeOpenAI } from '../fakes/fake-openai.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { PASSWORD, seedTenant, sys } from '../helpers/identity.js';
import { axeCheck, chatReady, ensureWebBuilt, launchBrowser, shot, watchPage } from './support.js';

/**
 * The Knowledge page (issue 20) in Chromium against a real server and worker (ingest lane,
 * embeddings through the gateway to a fake OpenAI upstream): a collection is created and
 * shared, documents upload with progress, their status moves to ready (or failed with the
 * reason for a broken PDF), the search finds a planted fact, a file and the collection are
 * deleted. axe and screenshots at 1440 and 390 px.
 */
vi.setConfig({ testTimeout: 60_000 });

const FAST = { connectMs: 2000, firstTokenMs: 5000, idleMs: 5000, totalMs: 30_000, retryBaseMs: 5, maxRetries: 0, queueMs: 200, breakerFailures: 50, breakerCooldownMs: 1000 };
const PLANTED = 'The vault code of the Zanzibar office is 4417-QX.';

let app: TestApp;
let upstream: FakeOpenAI;
let browser: Browser;
let worker: JobWorker;
let seeded: Awaited<ReturnType<typeof seedTenant>>;

beforeAll(async () => {
  ensureWebBuilt();
  [upstream, browser] = await Promise.all([new FakeOpenAI().start(), launchBrowser()]);
  upstream.wordEmbeddings = true;
  app = await startTestApp({ env: { ENCLAVE_LOG_LEVEL: 'silent' } });
  const s = app.services;
  seeded = await seedTenant(s, 'acme', ['owner', 'member']);
  await s.gateway.deployments.create(sys(s), { name: 'private-1', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'private', models: ['gpt-fake', { name: 'text-embedding-fake', type: 'embedding' }], options: FAST });
  worker = await startWorker(s);
}, 60_000);

afterAll(async () => {
  await worker?.close();
  await browser?.close();
  await app?.close();
  await upstream?.close();
});

async function signIn(email: string, viewport = { width: 1440, height: 900 }): Promise<{ ctx: BrowserContext; page: Page; watch: ReturnType<typeof watchPage> }> {
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

const status = (page: Page, file: string) => page.getByTestId(`file-status-${file}`);

describe('Knowledge page', () => {
  it('create a shared collection, upload with progress, ready and failed files, search, delete', async () => {
    const { ctx, page, watch } = await signIn(seeded.users.member!.email);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Knowledge' }).click();
    await page.getByRole('heading', { name: 'Knowledge', level: 1 }).waitFor();
    await expect.poll(() => page.getByText('No collections yet.').count()).toBe(1);

    const create = page.getByRole('form', { name: 'Create a collection' });
    await create.getByLabel('Name').fill('Handbook');
    await create.getByLabel('Shared with').selectOption('tenant');
    await create.getByRole('button', { name: 'Create collection' }).click();
    const table = page.getByRole('table', { name: 'Knowledge collections' });
    await expect.poll(() => table.textContent()).toContain('Handbook');
    expect(await table.getByRole('row', { name: /Handbook/ }).textContent()).toContain('Organisation');

    const upload = page.getByRole('form', { name: 'Upload to Handbook' });
    await upload.getByLabel(/^Documents/).setInputFiles([
      { name: 'policy.md', mimeType: 'text/markdown', buffer: Buffer.from(`# Offices\n\n## Zanzibar\n\n${PLANTED}\n\n## Lisbon\n\nThe Lisbon office opens at nine.\n`) },
      { name: 'broken.pdf', mimeType: 'application/pdf', buffer: Buffer.from('%PDF-1.7\nthis is not really a PDF\n%%EOF') },
    ]);
    await upload.getByRole('button', { name: 'Upload' }).click();
    await expect.poll(() => status(page, 'policy.md').textContent(), { timeout: 30_000 }).toContain('ready');
    await expect.poll(() => status(page, 'broken.pdf').textContent(), { timeout: 30_000 }).toMatch(/failed./);
    expect(await axeCheck(page)).toEqual([]);
    await shot(page, 'knowledge-1440');

    const search = page.getByRole('form', { name: 'Search Handbook' });
    await search.getByLabel('Try a search').fill('vault code Zanzibar');
    await search.getByRole('button', { name: 'Search' }).click();
    const hits = page.getByRole('list', { name: 'Passages found' });
    await expect.poll(() => hits.textContent()).toContain(PLANTED);

    await page.getByRole('button', { name: 'Delete broken.pdf' }).click(); // confirm() is accepted by watchPage
    await expect.poll(() => status(page, 'broken.pdf').count()).toBe(0);

    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => {
      const d = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document;
      return d.documentElement.scrollWidth - d.documentElement.clientWidth;
    });
    expect(overflow).toBe(0);
    expect(await axeCheck(page)).toEqual([]);
    await shot(page, 'knowledge-390');

    // Another member of the organisation sees the shared collection, read-only.
    const owner = await signIn(seeded.users.owner!.email);
    await owner.page.goto(`${app.url}/knowledge`);
    await expect.poll(() => owner.page.getByRole('table', { name: 'Knowledge collections' }).textContent()).toContain('Handbook');
    await owner.ctx.close();

    expect(watch.errors).toEqual([]);
    await ctx.close();
  });

  it('in the chat: pick the collection, the answer cites the passage (opens it), the model saw the passages; then the collection is deleted', async () => {
    const { ctx, page, watch } = await signIn(seeded.users.member!.email);
    await chatReady(page);
    const picker = page.locator('details.knowledge-picker');
    await picker.locator('summary').click();
    await picker.getByLabel(/Handbook/).check();
    expect(await picker.locator('summary').textContent()).toBe('Knowledge: Handbook');
    // Asked at confidential: internal passages must not lower the turn (only ever raised).
    await page.getByRole('combobox', { name: 'Data classification' }).selectOption('confidential');
    const before = upstream.requests.filter((r) => r.path === '/v1/chat/completions').length;
    await page.getByRole('textbox', { name: 'Message' }).fill('What is the vault code of the Zanzibar office?');
    await page.getByRole('textbox', { name: 'Message' }).press('Enter');
    const answer = page.getByRole('article', { name: 'Assistant said' });
    await expect.poll(() => answer.count()).toBe(1);
    const sources = answer.getByRole('list', { name: 'Sources' });
    await expect.poll(() => sources.count()).toBe(1);
    expect(await sources.textContent()).toContain('[1] policy.md');
    await sources.getByText('[1] policy.md').click();
    await expect.poll(() => sources.locator('blockquote').first().textContent()).toContain(PLANTED);
    const calls = upstream.requests.filter((r) => r.path === '/v1/chat/completions');
    expect(calls.length).toBe(before + 1);
    const sent = calls.at(-1)!.body.messages as { role: string; content: string }[];
    expect(sent[0]!.role).toBe('system');
    expect(sent[0]!.content).toContain(`[1] policy.md\n`);
    expect(sent[0]!.content).toContain(PLANTED);
    const convId = new URL(page.url()).pathname.split('/').pop()!;
    const conv = await page.evaluate(async (id) => ((await (await fetch(`/api/chat/conversations/${id}`)).json()) as { classification: string }).classification, convId);
    expect(conv).toBe('confidential');
    expect(await axeCheck(page)).toEqual([]);
    await shot(page, 'chat-knowledge-1440');
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await axeCheck(page)).toEqual([]);
    await shot(page, 'chat-knowledge-390');

    await page.setViewportSize({ width: 1440, height: 900 });
    await page.goto(`${app.url}/knowledge`);
    await page.getByRole('button', { name: 'Delete Handbook' }).click();
    await expect.poll(() => page.getByText('No collections yet.').count()).toBe(1);
    expect(watch.errors).toEqual([]);
    await ctx.close();
  });

  it('a PDF attached in the chat is indexed for the conversation; the answer cites its page', async () => {
    const doc = await PDFDocument.create();
    const font = await doc.embedFont(StandardFonts.Helvetica);
    doc.addPage().drawText('Lisbon office: general information about opening hours.', { x: 50, y: 760, size: 12, font });
    doc.addPage().drawText('The Lisbon office keeps the spare keys in locker 88.', { x: 50, y: 760, size: 12, font });
    const pdf = Buffer.from(await doc.save());
    const { ctx, page, watch } = await signIn(seeded.users.member!.email);
    await chatReady(page);
    await page.locator('form.composer input[type=file]').setInputFiles({ name: 'lisbon.pdf', mimeType: 'application/pdf', buffer: pdf });
    await page.getByRole('list', { name: 'Documents to answer from' }).getByText('lisbon.pdf').waitFor();
    await page.getByRole('textbox', { name: 'Message' }).fill('Where are the spare keys of the Lisbon office?');
    await shot(page, 'chat-pdf-attached-1440');
    await page.getByRole('button', { name: 'Send' }).click();
    const answer = page.getByRole('article', { name: 'Assistant said' });
    await expect.poll(() => answer.count(), { timeout: 30_000 }).toBe(1);
    const sources = answer.getByRole('list', { name: 'Sources' });
    await expect.poll(() => sources.textContent()).toContain('lisbon.pdf, page 2');
    const sent = upstream.requests.filter((r) => r.path === '/v1/chat/completions').at(-1)!.body.messages as { role: string; content: string }[];
    expect(sent[0]!.content).toContain('locker 88');
    expect(await axeCheck(page)).toEqual([]);
    expect(watch.errors).toEqual([]);
    await ctx.close();
  });
});
