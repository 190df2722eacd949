import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { startWorker } from '../../server/jobs/runtime.js';
import type { JobWorker } from '../../server/jobs/worker.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { runCliOk } from '../helpers/cli.js';
import { call, login, PASSWORD, seedTenant, sys } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';

let app: TestApp;
let worker: JobWorker;
let cliEnv: Record<string, string>;

beforeAll(async () => {
  app = await startTestApp({ entitlements: unrestricted });
  await app.services.identity.users.create(sys(app.services), { email: 'root@platform.test', password: PASSWORD, platformAdmin: true });
  worker = await startWorker(app.services);
  const c = app.services.config;
  cliEnv = { ...process.env, ENCLAVE_DATA_DIR: c.dataDir, ENCLAVE_MASTER_KEY: c.masterKey!, REDIS_URL: c.redisUrl!, ENCLAVE_LOG_LEVEL: 'silent' } as Record<string, string>;
});
afterAll(async () => {
  await worker?.close();
  await app?.close();
});

const cli = (...args: string[]) => runCliOk(['jobs', ...args], cliEnv);

async function failedJob(name: string): Promise<string> {
  // No handler for this name: the worker fails it at once (UnrecoverableError).
  const job = await app.services.jobs.queues.add('maintenance', name, {});
  await waitFor(() => job.getState(), { until: (st) => st === 'failed', what: `job ${name} failed` });
  return String(job.id);
}

describe('failed jobs: admin API and enclave jobs', () => {
  it('list, retry and discard through the admin API (platform admins only)', async () => {
    const id = await failedJob('no-such-task');
    const admin = await login(app.url, 'root@platform.test');
    const list = await call(app.url, '/admin/api/jobs/failed?queue=maintenance', { session: admin });
    expect(list.status).toBe(200);
    const row = list.body.data.find((j: any) => j.id === id);
    expect(row).toMatchObject({ queue: 'maintenance', name: 'no-such-task' });
    expect(row.failed_reason).toContain('no handler');

    const counts = await call(app.url, '/admin/api/jobs/counts', { session: admin });
    expect(counts.body.queues.maintenance.failed).toBeGreaterThanOrEqual(1);

    const retried = await call(app.url, `/admin/api/jobs/maintenance/${id}/retry`, { method: 'POST', session: admin });
    expect(retried.status).toBe(200);
    // it fails again (still no handler), then is discarded for good
    const job = await app.services.jobs.queues.queue('maintenance').getJob(id);
    await waitFor(() => job!.getState(), { until: (st) => st === 'failed', what: 'the retried job failed again' });
    const discarded = await call(app.url, `/admin/api/jobs/maintenance/${id}/discard`, { method: 'POST', session: admin });
    expect(discarded.status).toBe(200);
    expect(await app.services.jobs.queues.queue('maintenance').getJob(id)).toBeUndefined();
    expect((await call(app.url, `/admin/api/jobs/maintenance/${id}/discard`, { method: 'POST', session: admin })).status).toBe(404);

    // a tenant owner is not a platform admin
    const t = await seedTenant(app.services, 'acme', ['owner']);
    const owner = await login(app.url, t.users.owner!.email);
    expect((await call(app.url, '/admin/api/jobs/failed', { session: owner })).status).toBe(403);
  });

  it('enclave jobs list|retry|discard', async () => {
    const id = await failedJob('cli-broken-task');
    const listed = JSON.parse((await cli('list', '--queue', 'maintenance', '--json')).stdout) as any[];
    expect(listed.map((j) => j.id)).toContain(id);
    expect((await cli('retry', 'maintenance', id)).stdout).toContain(`retried maintenance job ${id}`);
    const job = await app.services.jobs.queues.queue('maintenance').getJob(id);
    await waitFor(() => job!.getState(), { until: (st) => st === 'failed', what: 'the retried job failed again' });
    expect((await cli('discard', 'maintenance', id, '--json')).stdout).toContain('cli-broken-task');
    expect(await app.services.jobs.queues.queue('maintenance').getJob(id)).toBeUndefined();
  }, 40_000);
});
