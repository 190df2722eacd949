import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import { sql } from 'drizzle-orm';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { FakeOpenAI } from '../fakes/fake-openai.js';
import { startTestApp, tempDir, testConfig, type TestApp } from '../helpers/app.js';
import { seedTenant, sys } from '../helpers/identity.js';
import { freshDatabase } from '../helpers/postgres.js';
import { spawnServer, type ServerProcess } from '../helpers/process.js';
import { rawRows } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Batches with two `--role worker` processes and two api replicas on one PostgreSQL + Redis
 * (issue 22). A batch is one job on the ai lane (its lines run inside that job, four at a
 * time), so one batch's lines never spread over workers; batches do. Each worker here runs
 * one ai job at a time (ENCLAVE_AI_LANE_CONCURRENCY=1) and the upstream holds its answers
 * until both batches are in flight, so the second batch can only be taken by the other
 * worker: both workers work, deterministically. Every line reaches the upstream once, has one
 * usage record and one output line. Uploaded files live on a volume the processes share (the
 * data dir's files/, as docs/postgres.md says).
 */
const LINES = 10;
let a: TestApp;
let b: TestApp;
let upstream: FakeOpenAI;
let secret: string;
let redisUrl: string;
const workers: ServerProcess[] = [];

beforeAll(async () => {
  upstream = await new FakeOpenAI().start();
  const shared = { ENCLAVE_DATABASE_URL: await freshDatabase('replicas_workers'), ENCLAVE_MASTER_KEY: randomBytes(32).toString('base64'), ENCLAVE_DATA_DIR: tempDir(), ENCLAVE_TENANT_ACTIVE_JOBS: '4' };
  const first = testConfig(shared);
  redisUrl = first.redisUrl!;
  a = await startTestApp({ config: first, entitlements: unrestricted });
  b = await startTestApp({ config: testConfig({ ...shared, REDIS_URL: redisUrl }), entitlements: unrestricted });
  const t = await seedTenant(a.services, 'batches', ['owner']);
  secret = (await a.services.identity.keys.create(t.ctx, { name: 'batch', ownerUserId: t.users.owner!.id, scopes: ['models:invoke', 'batches:write'] })).secret;
  await a.services.gateway.deployments.create(sys(a.services), { name: 'up-w', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'private', models: ['gpt-fake'], options: { maxRetries: 0, totalMs: 20_000, firstTokenMs: 20_000 } });
  const env = { ...shared, REDIS_URL: redisUrl, ENCLAVE_AI_LANE_CONCURRENCY: '1' };
  workers.push(...(await Promise.all([spawnServer({ role: 'worker', env }), spawnServer({ role: 'worker', env })])));
}, 90_000);

afterAll(async () => {
  for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
  await b?.close();
  await a?.close();
  await upstream?.close();
});

async function submit(base: string, tag: string) {
  const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: secret, maxRetries: 0 });
  const lines = Array.from({ length: LINES }, (_, i) => JSON.stringify({ custom_id: `${tag}-${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-fake', messages: [{ role: 'user', content: `${tag} line ${i}` }] } })).join('\n');
  const file = await client.files.create({ file: await toFile(Buffer.from(lines), `${tag}.jsonl`), purpose: 'batch' });
  const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
  return { client, batch };
}

describe('batches with two worker processes on one PostgreSQL', () => {
  it('two batches (one through each api replica) run on both workers; every line once upstream, one usage record and one output line each', async () => {
    const sent = (tag: string) => upstream.requests.filter((r) => r.path === '/v1/chat/completions' && String(r.body?.messages?.[0]?.content).startsWith(`${tag} `));
    const release = upstream.hold();
    const one = await submit(a.url, 'b1');
    await waitFor(() => sent('b1').length, { what: "a line of batch 1 in flight (one worker's only ai slot busy)", timeout: 30_000 });
    const two = await submit(b.url, 'b2');
    await waitFor(() => sent('b2').length, { what: 'a line of batch 2 in flight (on the other worker)', timeout: 30_000 });
    release();

    const done = await Promise.all(
      [one, two].map(({ client, batch }) => waitFor(() => client.batches.retrieve(batch.id), { until: (x) => x.status === 'completed', timeout: 60_000, what: `batch ${batch.id} completed` })),
    );
    for (const [i, d] of done.entries()) {
      const tag = `b${i + 1}`;
      expect(d.request_counts).toMatchObject({ total: LINES, completed: LINES, failed: 0 });
      // Each line reached the upstream exactly once.
      expect(sent(tag).map((r) => r.body.messages[0].content).sort()).toEqual(Array.from({ length: LINES }, (_, k) => `${tag} line ${k}`).sort());
      // One output line per custom_id (read through the other replica than the one it was made on).
      const reader = i === 0 ? two.client : one.client;
      const out = (await (await reader.files.content(d.output_file_id!)).text()).trim().split('\n').map((l) => JSON.parse(l).custom_id as string);
      expect(out.sort()).toEqual(Array.from({ length: LINES }, (_, k) => `${tag}-${k}`).sort());
      // One usage record per line.
      const usage = await rawRows(a.services.store, sql`SELECT count(*) AS n, count(DISTINCT request_id) AS d FROM usage_records WHERE workflow = ${d.id}`);
      expect(usage.map((u) => [Number(u.n), Number(u.d)])).toEqual([[LINES, LINES]]);
    }

    // Which worker ran which batch job: BullMQ records the worker's name (its id, logged at start).
    const ids = workers.map((w) => String(w.logs.find((l) => l.msg === 'worker started')?.worker));
    const queue = new Queue('ai', { connection: { url: redisUrl }, prefix: 'enclave' });
    try {
      const jobs = await queue.getJobs(['completed']);
      const byBatch = new Map(jobs.map((j) => [String(j.data.batchId), j.processedBy]));
      const ran = [one.batch.id, two.batch.id].map((id) => byBatch.get(id));
      expect(new Set(ran).size, `batch jobs processed by ${ran.join(', ')}`).toBe(2);
      expect(ids).toEqual(expect.arrayContaining(ran as string[]));
    } finally {
      await queue.close();
    }
  }, 120_000);
});
