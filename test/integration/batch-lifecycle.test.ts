import OpenAI, { toFile } from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { startWorker, workerSchedules } from '../../server/jobs/runtime.js';
import { MAX_BATCH_ENQUEUES } from '../../server/jobs/schedules.js';
import type { JobWorker } from '../../server/jobs/worker.js';
import { FakeOpenAI } from '../fakes/fake-openai.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { ManualClock, seedTenant, sys } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';

/**
 * A batch's life outside the happy path, through the official SDK and the real worker:
 * DELETE /v1/files/:id, cancel, expiry of the completion window, and the reconciler that
 * repairs a batch whose job was lost (or never enqueued: the same missing job).
 */
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

async function stack(o: { clock?: ManualClock } = {}) {
  const upstream = await new FakeOpenAI().start();
  const app: TestApp = await startTestApp({ entitlements: unrestricted, ...(o.clock ? { clock: o.clock } : {}) });
  let worker: JobWorker | undefined;
  cleanups.push(async () => {
    await worker?.close(500);
    await app.close();
    await upstream.close();
  });
  const s = app.services;
  await s.gateway.deployments.create(sys(s), { name: 'up', kind: 'openai', base_url: `${upstream.url}/v1`, boundary: 'private', models: ['gpt-fake'], max_concurrency: 8, options: { maxRetries: 0 } });
  const t = await seedTenant(s, 'batcher', ['owner']);
  const { secret } = await s.identity.keys.create(t.ctx, { name: 'k', ownerUserId: t.users.owner!.id, scopes: ['models:invoke', 'batches:write'] });
  const client = new OpenAI({ baseURL: `${app.url}/v1`, apiKey: secret, maxRetries: 0 });
  const submit = async (n: number) => {
    const lines = Array.from({ length: n }, (_, i) => JSON.stringify({ custom_id: `c${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-fake', messages: [{ role: 'user', content: `line ${i}` }] } }));
    const f = await client.files.create({ file: await toFile(Buffer.from(lines.join('\n')), 'in.jsonl'), purpose: 'batch' });
    const b = await client.batches.create({ input_file_id: f.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    return { file: f, batch: b };
  };
  const errorLines = async (b: OpenAI.Batch) => (b.error_file_id ? (await (await client.files.content(b.error_file_id)).text()).trim().split('\n').map((l) => JSON.parse(l)) : []);
  return {
    app,
    upstream,
    client,
    submit,
    errorLines,
    startWorker: async () => (worker = await startWorker(s)),
    // The schedule's own handler (its job and context are not used by it): the wiring a worker runs.
    reconcile: async () => workerSchedules(s).find((x) => x.id === 'batch-reconcile')!.run(undefined as never, undefined as never) as Promise<{ requeued: number; failed: number }>,
    job: (id: string) => s.jobs.queues.queue('ai').getJob(id),
  };
}

describe('files', () => {
  it('DELETE /v1/files/:id removes the file and its content; a batch’s input cannot be deleted while the batch runs', async () => {
    const st = await stack();
    const line = JSON.stringify({ custom_id: 'x', method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-fake', messages: [{ role: 'user', content: 'x' }] } });
    const f = await st.client.files.create({ file: await toFile(Buffer.from(`${line}\n`), 'lone.jsonl'), purpose: 'batch' });
    expect(await st.client.files.delete(f.id)).toMatchObject({ id: f.id, object: 'file', deleted: true });
    await expect(st.client.files.retrieve(f.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(st.client.files.content(f.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(st.client.files.delete(f.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);

    const { file } = await st.submit(2); // no worker: the batch stays open
    const inUse = await st.client.files.delete(file.id).catch((e: unknown) => e);
    expect(inUse).toBeInstanceOf(OpenAI.ConflictError);
    expect((inUse as { error: { code: string } }).error.code).toBe('file_in_use');
    expect((await st.client.files.retrieve(file.id)).id).toBe(file.id);
  });
});

describe('cancel', () => {
  it('an in-progress batch is cancelled: cancelling at once, then cancelled with the lines that never ran listed; cancelling again is idempotent, a finished batch refuses', async () => {
    // More lines than the lane runs at once: the ones not yet started when it is cancelled never run.
    const LINES = 60;
    const st = await stack();
    await st.startWorker();
    const release = st.upstream.hold();
    const { batch } = await st.submit(LINES);
    await waitFor(() => st.upstream.requests.length, { until: (n) => n > 0, what: 'the first line in flight upstream' });
    const c = await st.client.batches.cancel(batch.id);
    expect(c.status).toBe('cancelling');
    expect(c.cancelling_at).toBeGreaterThan(0);
    release();
    const done = await waitFor(() => st.client.batches.retrieve(batch.id), { until: (b) => b.status === 'cancelled', timeout: 20_000, what: 'the batch cancelled' });
    expect(done.cancelled_at).toBeGreaterThan(0);
    expect(done.request_counts!.completed).toBeLessThan(LINES);
    // Every line accounted for once: answered before the cancel, stopped in flight (aborted), or never started.
    const errs = await st.errorLines(done);
    const codes = errs.map((l) => l.error?.code ?? l.response?.body?.error?.code);
    for (const code of codes) expect(['batch_line_aborted', 'batch_cancelled']).toContain(code);
    expect(new Set(errs.map((l) => l.custom_id)).size).toBe(errs.length);
    expect(done.request_counts!.completed + errs.length).toBe(LINES);
    expect(errs.length).toBeGreaterThan(0);
    expect((await st.client.batches.cancel(batch.id)).status).toBe('cancelled');

    const { batch: small } = await st.submit(1);
    await waitFor(() => st.client.batches.retrieve(small.id), { until: (b) => b.status === 'completed', what: 'the small batch completed' });
    const refused = await st.client.batches.cancel(small.id).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.ConflictError);
    expect((refused as { error: { code: string } }).error.code).toBe('batch_not_cancellable');
  });
});

describe('expiry', () => {
  it('a batch whose completion window passed before it ran ends expired, every line listed as batch_expired, nothing sent upstream', async () => {
    const clock = new ManualClock(Date.now());
    const st = await stack({ clock });
    const { batch } = await st.submit(3);
    clock.advance(25 * 3600_000); // past its 24 h window
    await st.startWorker();
    const done = await waitFor(() => st.client.batches.retrieve(batch.id), { until: (b) => b.status === 'expired', what: 'the batch expired' });
    expect(done.expired_at).toBeGreaterThan(0);
    expect(done.output_file_id).toBeNull();
    const errs = await st.errorLines(done);
    expect(errs.map((l) => l.custom_id).sort()).toEqual(['c0', 'c1', 'c2']);
    for (const l of errs) expect(l.error.code).toBe('batch_expired');
    expect(st.upstream.requests.filter((r) => r.path === '/v1/chat/completions')).toHaveLength(0);
  });
});

describe('reconcileBatches', () => {
  it(`a batch whose job keeps getting lost is re-enqueued up to ${MAX_BATCH_ENQUEUES} times, then failed with the reason`, async () => {
    const st = await stack();
    const { batch } = await st.submit(1);
    for (let i = 1; i < MAX_BATCH_ENQUEUES; i++) {
      await (await st.job(batch.id))!.remove(); // lost
      expect(await st.reconcile()).toEqual({ requeued: 1, failed: 0 });
    }
    await (await st.job(batch.id))!.remove();
    expect(await st.reconcile()).toEqual({ requeued: 0, failed: 1 });
    const b = await st.client.batches.retrieve(batch.id);
    expect(b.status).toBe('failed');
    expect(JSON.stringify(b.errors)).toMatch(/batch_job_lost/);
  });
});
