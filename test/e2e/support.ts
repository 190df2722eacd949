import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import axe from 'axe-core';
import { chromium, type Browser, type Page } from 'playwright-core';
import { expect } from 'vitest';
import { PACKAGE_ROOT } from '../../server/paths.js';
import { WEB_DIST } from '../../server/web/static.js';

export const ARTIFACTS = path.join(PACKAGE_ROOT, 'test', 'e2e', 'artifacts');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

const WEB_BUILD_LOCK = path.join(PACKAGE_ROOT, 'node_modules', '.cache', 'enclave-web-build.lock');

/**
 * Builds the UI (vite) only when dist/web is missing or older than web/. Two e2e files start at
 * once in a run (two workers): a lock directory lets one build while the other waits, then finds
 * the build fresh (two vite builds into one dist/web at once could serve half-written files).
 */
export function ensureWebBuilt(): void {
  const index = path.join(WEB_DIST, 'index.html');
  const web = path.join(PACKAGE_ROOT, 'web');
  const fresh = () => existsSync(index) && statSync(index).mtimeMs >= newest(web);
  if (fresh()) return;
  mkdirSync(path.dirname(WEB_BUILD_LOCK), { recursive: true });
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      mkdirSync(WEB_BUILD_LOCK);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      // A lock older than any build is left by a killed run.
      const held = statSync(WEB_BUILD_LOCK, { throwIfNoEntry: false });
      if (held && Date.now() - held.mtimeMs > 300_000) rmSync(WEB_BUILD_LOCK, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`the web UI build lock ${WEB_BUILD_LOCK} was held for 3 minutes (remove it if no test run is building)`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200); // poll the lock (this function is synchronous)
    }
  }
  try {
    if (!fresh()) execFileSync(process.execPath, [path.join(PACKAGE_ROOT, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--config', path.join(web, 'vite.config.ts')], { cwd: PACKAGE_ROOT, stdio: 'pipe' });
  } finally {
    rmSync(WEB_BUILD_LOCK, { recursive: true, force: true });
  }
}

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: the e2e tests need Debian's chromium (apt-get install -y chromium)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Collects what would show a broken page: console errors (including CSP violations) and uncaught errors. */
export function watchPage(page: Page): { errors: string[]; dialogs: string[] } {
  const out = { errors: [] as string[], dialogs: [] as string[] };
  page.on('console', (m) => {
    // The sign-in page's session probe answers 401 by design.
    if (m.type() === 'error' && !/status of 401/.test(m.text())) out.errors.push(m.text());
  });
  page.on('pageerror', (e) => out.errors.push(e.message));
  page.on('dialog', (d) => {
    out.dialogs.push(d.message());
    void d.accept();
  });
  return out;
}

/** axe-core in the page; returns the serious and critical violations. */
export async function axeCheck(page: Page): Promise<{ id: string; impact: string | null | undefined; help: string; nodes: string[] }[]> {
  // The CSP forbids inline <script> tags (as it should), so evaluate the source instead.
  await page.evaluate(axe.source);
  const result = (await page.evaluate(async () => {
    // Runs in the page (DOM globals), typed loosely because the test tsconfig has no DOM lib.
    const w = globalThis as unknown as { document: unknown; axe: { run: (ctx: unknown, opts: object) => Promise<unknown> } };
    return w.axe.run(w.document, { resultTypes: ['violations'] });
  })) as { violations: { id: string; impact?: string | null; help: string; nodes: { target: unknown[] }[] }[] };
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => JSON.stringify(n.target)) }));
}

export async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: false });
}

/**
 * A scripted OpenAI-compatible upstream for the UI tests: streams `reply` in pieces with a
 * delay between them (so incremental rendering and Stop can be observed), SSE as OpenAI
 * sends it, usage chunk when asked. Records whether each call was aborted.
 */
/**
 * Waits until the chat page can send: its model list has loaded and a model is chosen. Before
 * that, Enter only answers "Pick a model first." and nothing is sent, and a test then waits
 * for an answer that never comes (a full run timed out that way).
 */
export async function chatReady(page: Page): Promise<void> {
  await expect.poll(() => page.getByRole('combobox', { name: 'Model' }).inputValue()).not.toBe('');
}

export class ScriptedUpstream {
  reply = 'Hello from the **scripted** model.';
  pieceDelayMs = 0;
  pieces = 6;
  calls: { messages: unknown[]; aborted: boolean }[] = [];
  url = '';
  private server: http.Server | undefined;

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }
  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, any>) : {};
    if (req.method === 'GET' && req.url?.startsWith('/v1/models')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'scripted', object: 'model', created: 0, owned_by: 'test' }] }));
      return;
    }
    const call = { messages: body.messages as unknown[], aborted: false };
    this.calls.push(call);
    res.on('close', () => {
      if (!res.writableFinished) call.aborted = true;
    });
    const text = this.reply;
    const size = Math.ceil(text.length / this.pieces);
    const parts: string[] = [];
    for (let i = 0; i < text.length; i += size) parts.push(text.slice(i, i + size));
    const base = { id: 'chatcmpl-scripted', object: 'chat.completion.chunk', created: Math.floor(Date.now() / 1000), model: body.model };
    if (!body.stream) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ...base, object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }], usage: { prompt_tokens: 5, completion_tokens: parts.length, total_tokens: 5 + parts.length } }));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
    res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] })}\n\n`);
    for (const p of parts) {
      if (this.pieceDelayMs) await new Promise((r) => setTimeout(r, this.pieceDelayMs));
      if (res.destroyed) return;
      res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { content: p }, finish_reason: null }] })}\n\n`);
    }
    res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`);
    if (body.stream_options?.include_usage) res.write(`data: ${JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: 5, completion_tokens: parts.length, total_tokens: 5 + parts.length } })}\n\n`);
    res.end('data: [DONE]\n\n');
  }
}

/** Moves the single-page app to `path` as its own links do (history + popstate), without a reload. */
export async function spaNavigate(page: Page, path: string): Promise<void> {
  await page.evaluate((p) => {
    // Runs in the page; typed loosely because the test tsconfig has no DOM lib.
    const w = globalThis as unknown as { history: { pushState(s: unknown, t: string, u: string): void }; dispatchEvent(e: unknown): void; PopStateEvent: new (type: string) => unknown };
    w.history.pushState(null, '', p);
    w.dispatchEvent(new w.PopStateEvent('popstate'));
  }, path);
}
