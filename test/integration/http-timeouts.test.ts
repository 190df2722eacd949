import { connect, type Socket } from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../server/app.js';
import { DEFAULT_HTTP_LIMITS, listen, type RunningServer } from '../../server/http/server.js';
import { gatewayEnv, type GatewayEnv } from './gateway-env.js';

/**
 * Issue 16: HTTP timeouts with real slow sockets. Slow headers and slow bodies are closed
 * within a bound; a streaming /v1 answer that lasts longer than every one of these limits is
 * not cut (they limit receiving a request, never a response).
 */
let env: GatewayEnv;
/** The same app with short limits, so the mechanisms are tested in about a second each. */
let short: RunningServer;
const SHORT = { headersTimeoutMs: 800, requestTimeoutMs: 1500, bodyGraceMs: 500, bodyMinBytesPerSec: 1024, checkIntervalMs: 100 };

beforeAll(async () => {
  env = await gatewayEnv();
  short = await listen(buildApp(env.app.services), 0, '127.0.0.1', SHORT);
});
afterAll(async () => {
  await short?.close(1000);
  await env?.close();
});

interface Slow {
  readonly socket: Socket;
  /** Resolves when the server closed the connection: ms since open and what it answered. */
  readonly closed: Promise<{ ms: number; answer: string }>;
}

/** A raw connection that sends `head`, then one byte of body every `everyMs` until closed. */
function slowClient(port: number, head: string, everyMs: number): Slow {
  const socket = connect(port, '127.0.0.1');
  const t0 = performance.now();
  let answer = '';
  let timer: NodeJS.Timeout | undefined;
  socket.on('connect', () => {
    socket.write(head);
    if (everyMs > 0) timer = setInterval(() => socket.writable && socket.write('a'), everyMs);
  });
  socket.on('data', (d) => (answer += d.toString()));
  socket.on('error', () => undefined);
  const closed = new Promise<{ ms: number; answer: string }>((resolve) =>
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ ms: performance.now() - t0, answer });
    }),
  );
  return { socket, closed };
}

const loginHead = (port: number) => `POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"email":"`;

describe('HTTP timeouts', () => {
  it('closes 5 slow-body connections to /auth/login with 408 within the default grace period plus one check (real limits), while the server keeps answering', async () => {
    const port = env.app.server.port;
    const clients = Array.from({ length: 5 }, () => slowClient(port, loginHead(port), 500));
    // The server keeps serving others meanwhile.
    const health = await fetch(`${env.app.url}/healthz`);
    expect(health.status).toBe(200);
    const results = await Promise.all(clients.map((c) => c.closed));
    // Promised: a body below 1 KiB/s is cut once the 10 s grace is over (checked every second).
    // Lower bound: not before the grace; upper bound: grace + check interval + a generous 8 s for a busy machine.
    for (const r of results) {
      expect(r.answer).toMatch(/^HTTP\/1\.1 408/);
      expect(r.answer).toContain('request_timeout');
      expect(r.ms).toBeGreaterThanOrEqual(DEFAULT_HTTP_LIMITS.bodyGraceMs - 50);
      expect(r.ms).toBeLessThan(DEFAULT_HTTP_LIMITS.bodyGraceMs + DEFAULT_HTTP_LIMITS.checkIntervalMs + 8000);
    }
  }, 40_000);

  it('sets finite headers and request timeouts by default', () => {
    expect(env.app.server.server.headersTimeout).toBe(DEFAULT_HTTP_LIMITS.headersTimeoutMs);
    expect(env.app.server.server.requestTimeout).toBe(DEFAULT_HTTP_LIMITS.requestTimeoutMs);
    expect(DEFAULT_HTTP_LIMITS.headersTimeoutMs).toBeLessThanOrEqual(20_000);
    expect(DEFAULT_HTTP_LIMITS.requestTimeoutMs).toBeGreaterThan(0);
  });

  it('closes a connection whose headers never finish (slowloris) after headersTimeout', async () => {
    const c = slowClient(short.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ', 0);
    const timer = setInterval(() => c.socket.writable && c.socket.write('a'), 100);
    const r = await c.closed;
    clearInterval(timer);
    expect(r.answer).toMatch(/^HTTP\/1\.1 408/);
    expect(r.ms).toBeGreaterThanOrEqual(SHORT.headersTimeoutMs - 50);
    expect(r.ms).toBeLessThan(SHORT.headersTimeoutMs + 5000);
  });

  it('a body that keeps a fair rate is accepted even when it takes longer than the grace period', async () => {
    // 1.2 s of body at ~4 KiB/s: above the minimum rate, under the request timeout.
    const port = short.port;
    const body = JSON.stringify({ email: 'nobody@example.test', password: 'x'.repeat(4800) });
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (d) => (answer += d.toString()));
    socket.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    await new Promise<void>((resolve) => socket.on('connect', () => resolve()));
    socket.write(`POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
    for (let i = 0; i < body.length && socket.writable; i += 400) {
      socket.write(body.slice(i, i + 400));
      await new Promise((r) => setTimeout(r, 100)); // pacing the client's own upload, not waiting for the server
    }
    await closed;
    expect(answer).toMatch(/^HTTP\/1\.1 (400|401)/);
  });

  it('does not cut a streaming /v1 answer that lasts longer than every limit', async () => {
    const model = 'stream-long';
    await env.addProvider({ name: 'slow-stream', kind: 'openai', base_url: `${env.openai.url}/v1`, boundary: 'private', models: [model], options: { idleMs: 5000, firstTokenMs: 5000, totalMs: 30_000 } });
    env.openai.chunkDelayMs = 350;
    const client = new OpenAI({ baseURL: `http://127.0.0.1:${short.port}/v1`, apiKey: env.key, maxRetries: 0 });
    const t0 = performance.now();
    const stream = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], stream: true });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
    const ms = performance.now() - t0;
    env.openai.chunkDelayMs = 0;
    expect(text).toBe('Hello from the fake model.');
    expect(ms).toBeGreaterThan(SHORT.requestTimeoutMs + SHORT.checkIntervalMs);
  });
});
