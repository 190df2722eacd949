import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import OpenAI, { toFile } from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { startWorker } from '../../server/jobs/runtime.js';
import type { JobWorker } from '../../server/jobs/worker.js';
import { findExecutable } from '../../server/redis/embedded.js';
import { freePort, pingTcp } from '../../server/redis/ping.js';
import { FakeOpenAI } from '../fakes/fake-openai.js';
import { startTestApp, tempDir, testConfig, type TestApp } from '../helpers/app.js';
import { seedTenant, sys } from '../helpers/identity.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

function jsonl(n: number, tag: string): Buffer {
  return Buffer.from(
    Array.from({ length: n }, (_, i) => JSON.stringify({ custom_id: `${tag}${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-fake', messages: [{ role: 'user', content: `${tag} ${i}` }] } })).join('\n'),
  );
}

async function setup(app: TestApp, upstream: FakeOpenAI, slugs: string[]): Promise<OpenAI[]> {
  const s = app.services;
  s.gateway.deployments.create(sys(s), { name: 'up', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'private', models: ['gpt-fake'], max_concurrency: 256, options: { maxRetries: 0 } });
  const clients: OpenAI[] = [];
  for (const slug of slugs) {
    const t = await seedTenant(s, slug, ['owner']);
    const { secret } = await s.identity.keys.create(t.ctx, { name: 'k', ownerUserId: t.users.owner!.id, scopes: ['models:invoke', 'batches:write'] });
    clients.push(new OpenAI({ baseURL: `${app.url}/v1`, apiKey: secret, maxRetries: 0 }));
  }
  return clients;
}

async function submit(c: OpenAI, data: Buffer): Promise<string> {
  const f = await c.files.create({ file: await toFile(data, 'in.jsonl'), purpose: 'batch' });
  return (await c.batches.create({ input_file_id: f.id, endpoint: '/v1/chat/completions', completion_window: '24h' })).id;
}

async function until<T>(fn: () => Promise<T | undefined>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('lanes', () => {
  it("fairness: tenant A's 1,000-line batches do not delay tenant B's small batch beyond one job slot", async () => {
    const upstream = await new FakeOpenAI().start();
    // 30 ms a line, 4 lines at a time: A's first batch runs for at least 7.5 s, so it is
    // certainly still running when B's 3-line batch (one round, ~30 ms) is done.
    upstream.latencyMs = 30;
    upstream.record = false;
    const app = await startTestApp({ entitlements: unrestricted, env: { ENCLAVE_AI_LANE_CONCURRENCY: '2', ENCLAVE_TENANT_ACTIVE_JOBS: '1' } });
    let worker: JobWorker | undefined;
    cleanups.push(async () => {
      await worker?.close();
      await app.close();
      await upstream.close();
    });
    const [a, b] = await setup(app, upstream, ['tenant-a', 'tenant-b']);
    worker = await startWorker(app.services);
    // Setup only (the timed part starts below). A's first batch takes A's only slot before the
    // second is submitted: submitted together, either could win the slot, and the test is
    // about which batch runs, not about that race.
    const a1 = await submit(a!, jsonl(1000, 'a'));
    await until(async () => ((await a!.batches.retrieve(a1)).status === 'in_progress' ? true : undefined), 20_000);
    const a2 = await submit(a!, jsonl(1000, 'a'));
    const t0 = Date.now();
    const b1 = await submit(b!, jsonl(3, 'b'));
    const doneB = await until(async () => {
      const x = await b!.batches.retrieve(b1);
      return x.status === 'completed' ? x : undefined;
    }, 15_000);
    const waited = Date.now() - t0;
    expect(doneB.request_counts).toEqual({ total: 3, completed: 3, failed: 0 });
    // B ran in the free slot while A's first batch was still running and its second still waiting.
    const [x1, x2] = [await a!.batches.retrieve(a1), await a!.batches.retrieve(a2)];
    expect(x1.status).toBe('in_progress');
    expect(x1.request_counts!.completed).toBeLessThan(1000);
    expect(['validating', 'in_progress']).toContain(x2.status);
    expect(x2.request_counts!.completed).toBe(0);
    // Well under A's first batch (≥ 7.5 s): B did not wait for it.
    expect(waited).toBeLessThan(4000);
    // The tenant cap kept A to one active job: its second batch is deferred, not run. Polled:
    // while the worker looks at A's second batch (before sending it back) it counts as active.
    await expect.poll(async () => app.services.jobs.metricsText()).toMatch(/enclave_queue_jobs\{queue="ai",state="active"\} 1\n/);
  }, 30_000);

  it('Redis restarted mid-run: the worker reconnects and finishes the batch', async () => {
    const exe = findExecutable('redis-server')!;
    const port = await freePort();
    const dir = tempDir('enclave-redis-');
    let redis: ChildProcess | undefined;
    const startRedis = async (): Promise<void> => {
      redis = spawn(exe, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
      const end = Date.now() + 5000;
      while (!(await pingTcp('127.0.0.1', port, 200))) {
        if (Date.now() > end) throw new Error('redis did not start');
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const stopRedis = async (): Promise<void> => {
      const r = redis!;
      r.kill('SIGTERM');
      await new Promise((res) => (r.exitCode !== null ? res(null) : r.once('exit', res)));
    };
    await startRedis();
    const upstream = await new FakeOpenAI().start();
    upstream.latencyMs = 40;
    const app = await startTestApp({
      entitlements: unrestricted,
      config: testConfig({ REDIS_URL: `redis://127.0.0.1:${port}/0`, ENCLAVE_JOB_LOCK_MS: '2000', ENCLAVE_MASTER_KEY: randomBytes(32).toString('base64') }),
    });
    let worker: JobWorker | undefined;
    cleanups.push(async () => {
      // After a Redis restart BullMQ's Worker.close() may not return; close() forces it after the grace.
      await worker?.close(500);
      await app.close();
      await upstream.close();
      if (redis && redis.exitCode === null) await stopRedis();
    });
    const [c] = await setup(app, upstream, ['solo']);
    worker = await startWorker(app.services);
    const id = await submit(c!, jsonl(60, 'r'));
    await until(async () => ((await c!.batches.retrieve(id)).request_counts!.completed >= 5 ? true : undefined), 10_000);
    await stopRedis();
    await new Promise((r) => setTimeout(r, 700));
    await startRedis();
    const done = await until(async () => {
      const x = await c!.batches.retrieve(id);
      return x.status === 'completed' ? x : undefined;
    }, 30_000);
    expect(done.request_counts!.completed + done.request_counts!.failed).toBe(60);
    const sent = upstream.requests.filter((r) => r.path === '/v1/chat/completions').map((r) => r.body.messages[0].content);
    expect(new Set(sent).size).toBe(sent.length);
  }, 60_000);

  it('refuses to start the worker on a Redis that may evict keys, naming the fix', async () => {
    const exe = findExecutable('redis-server')!;
    const port = await freePort();
    const r = spawn(exe, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--maxmemory-policy', 'allkeys-lru'], { stdio: 'ignore' });
    cleanups.push(() => void r.kill('SIGKILL'));
    while (!(await pingTcp('127.0.0.1', port, 200))) await new Promise((res) => setTimeout(res, 20));
    const app = await startTestApp({ entitlements: unrestricted, config: testConfig({ REDIS_URL: `redis://127.0.0.1:${port}/0` }) });
    cleanups.push(() => app.close());
    await expect(startWorker(app.services)).rejects.toThrow(/maxmemory-policy is "allkeys-lru".*noeviction/);
  });
});
