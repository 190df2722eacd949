import { randomBytes } from 'node:crypto';
import OpenAI, { toFile } from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { startWorker } from '../../server/jobs/runtime.js';
import type { JobWorker } from '../../server/jobs/worker.js';
import { FakeOpenAI } from '../fakes/fake-openai.js';
import { startTestApp, testConfig, type TestApp } from '../helpers/app.js';
import { seedTenant, sys } from '../helpers/identity.js';
import { startPrivateRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

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
  await s.gateway.deployments.create(sys(s), { name: 'up', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'private', models: ['gpt-fake'], max_concurrency: 256, options: { maxRetries: 0 } });
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
    await waitFor(async () => (await a!.batches.retrieve(a1)).status, { until: (st) => st === 'in_progress', timeout: 20_000, what: 'A’s first batch in progress' });
    const a2 = await submit(a!, jsonl(1000, 'a'));
    const t0 = Date.now();
    const b1 = await submit(b!, jsonl(3, 'b'));
    const doneB = await waitFor(() => b!.batches.retrieve(b1), { until: (x) => x.status === 'completed', timeout: 15_000, what: 'B’s batch completed' });
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
    // AOF on: the jobs survive the restart, as with the product's Redis.
    const redis = await startPrivateRedis({ args: ['--appendonly', 'yes', '--maxmemory-policy', 'noeviction'] });
    const upstream = await new FakeOpenAI().start();
    upstream.latencyMs = 40;
    const app = await startTestApp({
      entitlements: unrestricted,
      config: testConfig({ REDIS_URL: redis.url(), ENCLAVE_JOB_LOCK_MS: '2000', ENCLAVE_MASTER_KEY: randomBytes(32).toString('base64') }),
    });
    let worker: JobWorker | undefined;
    cleanups.push(async () => {
      // After a Redis restart BullMQ's Worker.close() may not return; close() forces it after the grace.
      await worker?.close(500);
      await app.close();
      await upstream.close();
      await redis.close();
    });
    const [c] = await setup(app, upstream, ['solo']);
    worker = await startWorker(app.services);
    const id = await submit(c!, jsonl(60, 'r'));
    await waitFor(async () => (await c!.batches.retrieve(id)).request_counts!.completed, { until: (n) => n >= 5, what: '5 lines completed' });
    await redis.stop('SIGTERM');
    // Down long enough that the app noticed (its connection is not ready), then back.
    await waitFor(() => app.services.redis.status, { until: (st) => st !== 'ready', what: 'the app’s Redis connection lost' });
    await redis.start();
    const done = await waitFor(() => c!.batches.retrieve(id), { until: (x) => x.status === 'completed', timeout: 30_000, what: 'the batch completed after the restart' });
    expect(done.request_counts!.completed + done.request_counts!.failed).toBe(60);
    const sent = upstream.requests.filter((r) => r.path === '/v1/chat/completions').map((r) => r.body.messages[0].content);
    expect(new Set(sent).size).toBe(sent.length);
  }, 60_000);

  it('refuses to start the worker on a Redis that may evict keys, naming the fix', async () => {
    const r = await startPrivateRedis({ args: ['--maxmemory-policy', 'allkeys-lru'] });
    cleanups.push(() => r.close());
    const app = await startTestApp({ entitlements: unrestricted, config: testConfig({ REDIS_URL: r.url() }) });
    cleanups.push(() => app.close());
    await expect(startWorker(app.services)).rejects.toThrow(/maxmemory-policy is "allkeys-lru".*noeviction/);
  });
});
