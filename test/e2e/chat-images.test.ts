import { deflateSync } from 'node:zlib';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { PASSWORD, seedTenant, sys } from '../helpers/identity.js';
import { axeCheck, chatReady, ensureWebBuilt, launchBrowser, ScriptedUpstream, shot, watchPage } from './support.js';

/**
 * Images in the chat (issue 20) in Chromium against a real server: attached by the file
 * picker, by paste and by drag-and-drop; a model whose deployment does not take images is
 * refused before anything is stored or sent (the message and images go back into the box);
 * a vision model receives them as OpenAI image_url parts (earlier turns' images too); the
 * stored message shows them; the upload endpoint takes only raster images and only the
 * conversation's owner reads them back.
 */
vi.setConfig({ testTimeout: 60_000 });

const FAST = { connectMs: 2000, firstTokenMs: 5000, idleMs: 5000, totalMs: 30_000, retryBaseMs: 5, maxRetries: 0, queueMs: 200, breakerFailures: 50, breakerCooldownMs: 1000 };
const CRC = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
const crc32 = (b: Buffer) => (b.reduce((c, x) => CRC[(c ^ x) & 0xff]! ^ (c >>> 8), 0xffffffff) ^ 0xffffffff) >>> 0;
/** A real RGB PNG (a colour gradient), big enough to see in the screenshots. */
function gradientPng(w: number, h: number): Buffer {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) raw.set([40 + Math.round((180 * x) / w), 90 + Math.round((120 * y) / h), 200], y * (w * 3 + 1) + 1 + x * 3);
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}
const PNG = gradientPng(160, 100);
// A 1×1 GIF: another format the sniffer accepts.
const GIF = Buffer.from('R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==', 'base64');

let app: TestApp;
let upstream: ScriptedUpstream;
let browser: Browser;
let seeded: Awaited<ReturnType<typeof seedTenant>>;

beforeAll(async () => {
  ensureWebBuilt();
  [upstream, browser] = await Promise.all([new ScriptedUpstream().start(), launchBrowser()]);
  app = await startTestApp({ env: { ENCLAVE_LOG_LEVEL: 'silent' } });
  const s = app.services;
  seeded = await seedTenant(s, 'acme', ['owner', 'member']);
  await s.gateway.deployments.create(sys(s), { name: 'vision-dep', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'private', models: [{ name: 'gpt-vision', vision: true }], options: FAST });
  await s.gateway.deployments.create(sys(s), { name: 'text-dep', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'private', models: ['gpt-text'], options: FAST });
}, 60_000);

afterAll(async () => {
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

/** Pastes (or drops on the composer) an image file the way the browser delivers it: a DataTransfer with a File. */
async function deliver(page: Page, how: 'paste' | 'drop', name: string, bytes: Buffer, mime: string): Promise<void> {
  await page.evaluate(
    ({ how, name, b64, mime }) => {
      // Runs in the page; typed loosely because the test tsconfig has no DOM lib.
      const w = globalThis as unknown as {
        document: { querySelector(s: string): { dispatchEvent(e: unknown): boolean } };
        DataTransfer: new () => { items: { add(f: unknown): void } };
        File: new (parts: unknown[], name: string, o: { type: string }) => unknown;
        ClipboardEvent: new (t: string, o: object) => unknown;
        DragEvent: new (t: string, o: object) => unknown;
        atob(s: string): string;
        Uint8Array: typeof Uint8Array;
      };
      const bin = w.atob(b64);
      const file = new w.File([w.Uint8Array.from(bin, (c) => c.charCodeAt(0))], name, { type: mime });
      const dt = new w.DataTransfer();
      dt.items.add(file);
      if (how === 'paste') w.document.querySelector('#composer-input').dispatchEvent(new w.ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
      else w.document.querySelector('form.composer').dispatchEvent(new w.DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    },
    { how, name, b64: bytes.toString('base64'), mime },
  );
}

const imageParts = (messages: unknown[]) =>
  messages.flatMap((m) => {
    const c = (m as { content: unknown }).content;
    return Array.isArray(c) ? (c as { type: string; image_url?: { url: string } }[]).filter((p) => p.type === 'image_url').map((p) => p.image_url!.url) : [];
  });

describe('images in the chat', () => {
  it('picker, paste and drop; a text-only model refuses before anything is sent; a vision model gets image_url parts; the stored turn shows them', async () => {
    const s = app.services;
    const { ctx, page, watch } = await signIn(seeded.users.member!.email);
    await chatReady(page);
    const models = page.getByRole('combobox', { name: 'Model' });
    expect(await models.locator('option').allTextContents()).toEqual(expect.arrayContaining([expect.stringMatching(/^gpt-vision .*· images$/), expect.not.stringContaining('images')]));
    await models.selectOption('gpt-text');

    // The file picker: a zip file is named and left out, the image joins the tray.
    await page.locator('form.composer input[type=file]').setInputFiles([
      { name: 'archive.zip', mimeType: 'application/zip', buffer: Buffer.from('PK\x03\x04') },
      { name: 'chart.png', mimeType: 'image/png', buffer: PNG },
    ]);
    const tray = page.getByRole('list', { name: 'Images to send' });
    await expect.poll(() => tray.getByRole('img').count()).toBe(1);
    expect(await page.getByRole('alert').filter({ hasText: /archive\.zip is not (a PNG|an image)/ }).count()).toBe(1);
    expect(await page.getByTestId('vision-warning').textContent()).toContain('gpt-text does not accept images');

    // Sent anyway to the text-only model: refused by the server, nothing upstream, nothing stored, the draft comes back.
    await page.getByRole('textbox', { name: 'Message' }).fill('What does this chart show?');
    await page.getByRole('button', { name: 'Send' }).click();
    await expect.poll(() => page.getByText('The model gpt-text does not accept images.').count()).toBe(1);
    expect(upstream.calls).toHaveLength(0);
    await expect.poll(() => page.getByRole('textbox', { name: 'Message' }).inputValue()).toBe('What does this chart show?');
    expect(await tray.getByRole('img').count()).toBe(1);
    const convId = new URL(page.url()).pathname.split('/').pop()!;
    const stored = await page.evaluate(async (id) => ((await (await fetch(`/api/chat/conversations/${id}`)).json()) as { messages: unknown[] }).messages.length, convId);
    expect(stored).toBe(0);
    await shot(page, 'chat-images-refused-1440');

    // The vision model: the same draft (the image uploaded once) goes through.
    await models.selectOption('gpt-vision');
    await expect.poll(() => page.getByTestId('vision-warning').count()).toBe(0);
    await page.getByRole('button', { name: 'Send' }).click();
    await expect.poll(() => upstream.calls.length).toBe(1);
    const first = upstream.calls[0]!.messages;
    expect(imageParts(first)).toEqual([`data:image/png;base64,${PNG.toString('base64')}`]);
    expect((first.at(-1) as { content: { type: string; text?: string }[] }).content[0]).toEqual({ type: 'text', text: 'What does this chart show?' });
    const sent = page.getByRole('article', { name: 'You said' }).getByRole('list', { name: 'Attached images' }).getByRole('img');
    await expect.poll(() => sent.count()).toBe(1);
    // The stored image loads from the server (same origin, through the CSP).
    await expect.poll(() => sent.evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth)).toBe(160);
    await expect.poll(() => page.getByRole('article', { name: 'Assistant said' }).count()).toBe(1);
    const rows = await s.tenantStore.chatAttachments.list(seeded.ctx);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ mime: 'image/png', name: 'chart.png', bytes: PNG.length, conversationId: convId });
    expect(rows[0]!.messageId).toMatch(/^msg_/);

    // Paste and drop: two more images; the earlier turn's image goes with the history.
    await deliver(page, 'paste', 'screenshot.png', PNG, 'image/png');
    await deliver(page, 'drop', 'photo.gif', GIF, 'image/gif');
    await expect.poll(() => tray.getByRole('img').count()).toBe(2);
    await page.getByRole('textbox', { name: 'Message' }).fill('And these two?');
    expect(await axeCheck(page)).toEqual([]);
    await shot(page, 'chat-images-tray-1440');
    await page.getByRole('button', { name: 'Send' }).click();
    await expect.poll(() => upstream.calls.length).toBe(2);
    expect(imageParts(upstream.calls[1]!.messages)).toEqual([
      `data:image/png;base64,${PNG.toString('base64')}`,
      `data:image/png;base64,${PNG.toString('base64')}`,
      `data:image/gif;base64,${GIF.toString('base64')}`,
    ]);
    await expect.poll(() => page.getByRole('article', { name: 'Assistant said' }).count()).toBe(2);
    await expect.poll(() => page.getByRole('list', { name: 'Attached images' }).getByRole('img').count()).toBe(3);
    expect(await axeCheck(page)).toEqual([]);
    await shot(page, 'chat-images-1440');
    await page.setViewportSize({ width: 390, height: 844 });
    await deliver(page, 'paste', 'another.png', PNG, 'image/png');
    await expect.poll(() => tray.getByRole('img').count()).toBe(1);
    const overflow = await page.evaluate(() => {
      const d = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document;
      return d.documentElement.scrollWidth - d.documentElement.clientWidth;
    });
    expect(overflow).toBe(0);
    expect(await axeCheck(page)).toEqual([]);
    await shot(page, 'chat-images-390');
    await page.getByRole('button', { name: 'Remove image another.png' }).click();
    await expect.poll(() => tray.count()).toBe(0);

    // The upload endpoint: an SVG (script-capable) or text is refused from its bytes, whatever its content-type says.
    const upload = (body: string, type: string) =>
      page.evaluate(
        async ({ id, body, type }) => {
          const session = (await (await fetch('/auth/session')).json()) as { csrf_token: string };
          const r = await fetch(`/api/chat/conversations/${id}/attachments`, { method: 'POST', headers: { 'content-type': type, 'x-csrf-token': session.csrf_token }, body });
          return { status: r.status, code: ((await r.json()) as { error?: { code: string } }).error?.code };
        },
        { id: convId, body, type },
      );
    expect(await upload('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', 'image/png')).toEqual({ status: 415, code: 'invalid_file' });
    expect(await upload('', 'image/png')).toEqual({ status: 400, code: 'invalid_file' });
    expect(watch.errors.filter((e) => !/status of (400|415)/.test(e))).toEqual([]);

    // Another member of the same tenant neither reads the image nor sends it with their own turn.
    const other = await signIn(seeded.users.owner!.email);
    const theirs = await other.page.evaluate(
      async ({ id, att }) => {
        const session = (await (await fetch('/auth/session')).json()) as { csrf_token: string };
        const get = await fetch(`/api/chat/conversations/${id}/attachments/${att}`);
        const mine = (await (await fetch('/api/chat/conversations', { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrf_token }, body: '{}' })).json()) as { id: string };
        const send = await fetch(`/api/chat/conversations/${mine.id}/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrf_token },
          body: JSON.stringify({ model: 'gpt-vision', content: 'describe', attachments: [att] }),
        });
        return { get: get.status, send: send.status };
      },
      { id: convId, att: rows[0]!.id },
    );
    expect(theirs).toEqual({ get: 404, send: 404 });
    expect(upstream.calls).toHaveLength(2);
    await other.ctx.close();
    await ctx.close();
  });
});
