import Database from 'better-sqlite3';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import OpenAI, { toFile } from 'openai';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServices } from '../../server/app.js';
import { FakeOpenAI } from '../fakes/fake-openai.js';
import { testConfig } from '../helpers/app.js';
import { seedTenant, sys } from '../helpers/identity.js';
import { spawnServer, type ServerProcess } from '../helpers/process.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The worker as a real process next to an API process (shared data dir and Redis), killed
 * with SIGKILL mid-batch: the job resumes on restart, no line reaches the upstream twice,
 * no usage record is written twice, every line is accounted for once.
 */
const LINES = 24;
let upstream: FakeOpenAI;
let env: Record<string, string>;
let dataDir: string;
let secret: string;
let api: ServerProcess;
const started: ServerProcess[] = [];

beforeAll(async () => {
  upstream = await new FakeOpenAI().start();
  upstream.latencyMs = 120;
  const config = testConfig({ ENCLAVE_JOB_LOCK_MS: '1500' });
  dataDir = config.dataDir;
  env = {
    ENCLAVE_DATA_DIR: dataDir,
    REDIS_URL: config.redisUrl!,
    ENCLAVE_MASTER_KEY: config.masterKey!,
    ENCLAVE_JOB_LOCK_MS: '1500',
  };
  // Seed the database (tenant, key, provider) with the same code, then hand it to the processes.
  const s = await createServices(config, { log: pino({ level: 'silent' }), passwordLogN: 10 });
  const t = await seedTenant(s, 'acme', ['owner']);
  secret = (await s.identity.keys.create(t.ctx, { name: 'batch', ownerUserId: t.users.owner!.id, scopes: ['models:invoke', 'batches:write'] })).secret;
  await s.gateway.deployments.create(sys(s), { name: 'up-1', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'private', models: ['gpt-fake'], options: { maxRetries: 0, totalMs: 5000, firstTokenMs: 5000 } });
  await s.close();
  api = await spawnServer({ role: 'api', env });
  started.push(api);
});

afterAll(async () => {
  for (const p of started) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await upstream?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

async function worker(): Promise<ServerProcess> {
  const w = await spawnServer({ role: 'worker', env: { ...env, ENCLAVE_DATA_DIR: dataDir } });
  started.push(w);
  return w;
}

describe('worker process', () => {
  it('SIGKILL mid-batch: resumes on restart, no line executed or metered twice; SIGTERM exits 0', async () => {
    const client = new OpenAI({ baseURL: `${api.url}/v1`, apiKey: secret, maxRetries: 0 });
    const lines = Array.from({ length: LINES }, (_, i) =>
      JSON.stringify({ custom_id: `c${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-fake', messages: [{ role: 'user', content: `line ${i}` }] } }),
    ).join('\n');
    const file = await client.files.create({ file: await toFile(Buffer.from(lines), 'in.jsonl'), purpose: 'batch' });
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });

    const w1 = await worker();
    expect(existsSync(path.join(dataDir, 'worker.heartbeat'))).toBe(true);
    // Let a few lines finish, then kill it with lines in flight: the upstream holds its
    // answers, so at least one line is certainly in flight at the kill.
    await waitFor(async () => (await client.batches.retrieve(batch.id)).request_counts!.completed, { until: (n) => n >= 6, what: '6 lines completed' });
    const upstreamCalls = () => upstream.requests.filter((r) => r.path === '/v1/chat/completions').length;
    const release = upstream.hold();
    const atHold = upstreamCalls();
    await waitFor(upstreamCalls, { until: (n) => n > atHold, what: 'a line in flight upstream' });
    w1.child.kill('SIGKILL');
    await w1.exited();
    release();
    const atKill = (await client.batches.retrieve(batch.id)).request_counts!;
    expect(atKill.completed).toBeLessThan(LINES);

    const w2 = await worker();
    const done = await waitFor(() => client.batches.retrieve(batch.id), { until: (b) => b.status === 'completed', timeout: 30_000, what: 'the batch completed after the restart' });
    expect(done.request_counts!.total).toBe(LINES);
    expect(done.request_counts!.completed + done.request_counts!.failed).toBe(LINES);

    // No prompt reached the upstream twice.
    const sent = upstream.requests.filter((r) => r.path === '/v1/chat/completions').map((r) => r.body.messages[0].content as string);
    expect(new Set(sent).size).toBe(sent.length);

    // Every custom_id exactly once across the output and error files.
    const ids: string[] = [];
    for (const f of [done.output_file_id, done.error_file_id]) {
      if (!f) continue;
      const text = await (await client.files.content(f)).text();
      for (const l of text.trim().split('\n')) ids.push(JSON.parse(l).custom_id);
    }
    expect(ids.sort()).toEqual(Array.from({ length: LINES }, (_, i) => `c${i}`).sort());
    // Lines in flight at the kill (there was at least one) are failed with batch_line_interrupted (never re-run).
    expect(done.error_file_id).toBeTruthy();
    const errs = (await (await client.files.content(done.error_file_id!)).text()).trim().split('\n').map((l) => JSON.parse(l));
    expect(errs.length).toBeGreaterThan(0);
    expect(done.request_counts!.failed).toBe(errs.length);
    for (const e of errs) expect(e.error?.code ?? e.response?.body?.error?.code).toBe('batch_line_interrupted');

    // Usage: one record per line that ran to an answer, none twice.
    const db = new Database(path.join(dataDir, 'enclave.db'), { readonly: true });
    try {
      const usage = db.prepare('SELECT request_id FROM usage_records WHERE workflow = ?').all(batch.id) as { request_id: string }[];
      expect(new Set(usage.map((u) => u.request_id)).size).toBe(usage.length);
      expect(usage.length).toBe(done.request_counts!.completed);
      const lineRows = db.prepare("SELECT count(*) AS n FROM batch_lines WHERE batch_id = ? AND status = 'completed'").get(batch.id) as { n: number };
      expect(lineRows.n).toBe(done.request_counts!.completed);
    } finally {
      db.close();
    }

    // Graceful stop: exit 0, heartbeat entry removed.
    const before = Number(readFileSync(path.join(dataDir, 'worker.heartbeat'), 'utf8'));
    expect(Date.now() - before).toBeLessThan(10_000);
    w2.child.kill('SIGTERM');
    expect((await w2.exited()).code).toBe(0);
  }, 60_000);

  it('/metrics of the API shows queue depth, worker heartbeat and outcomes', async () => {
    const w = await worker();
    const text = await (await fetch(`${api.url}/metrics`)).text();
    expect(text).toMatch(/enclave_queue_up 1/);
    expect(text).toMatch(/enclave_queue_jobs\{queue="ai",state="waiting"\} \d+/);
    expect(text).toMatch(/enclave_queue_oldest_job_age_seconds\{queue="maintenance"\} [\d.]+/);
    expect(text).toMatch(/enclave_workers [1-9]/);
    expect(text).toMatch(/enclave_jobs_total\{queue="ai",outcome="completed"\} \d+/);
    expect(text).toMatch(/# TYPE enclave_job_duration_seconds histogram/);
    const hb = Number(/enclave_worker_heartbeat_timestamp_seconds ([\d.e+]+)/.exec(text)![1]);
    expect(Date.now() / 1000 - hb).toBeLessThan(30);
    w.child.kill('SIGTERM');
    expect((await w.exited()).code).toBe(0);
  }, 30_000);
});
