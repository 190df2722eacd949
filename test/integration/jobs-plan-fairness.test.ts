import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unrestricted } from '../../server/access/entitlements.js';
import { tenantCapFor } from '../../server/jobs/fairness.js';
import { planMaxActiveJobs } from '../../server/jobs/runtime.js';
import { JobWorker } from '../../server/jobs/worker.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { seedTenant, sys } from '../helpers/identity.js';
import { waitFor } from '../helpers/wait.js';

let app: TestApp;
let worker: JobWorker | undefined;
beforeAll(async () => {
  app = await startTestApp({ entitlements: unrestricted, env: { ENCLAVE_AI_LANE_CONCURRENCY: '6', ENCLAVE_TENANT_ACTIVE_JOBS: '1' } });
});
afterAll(async () => {
  await worker?.close();
  await app?.close();
});

describe('fairness cap from the plan', () => {
  it('tenantCapFor: the plan value wins when set (at least 1), the setting is the default', () => {
    expect(tenantCapFor(1, undefined)).toBe(1);
    expect(tenantCapFor(1, null)).toBe(1);
    expect(tenantCapFor(1, 3)).toBe(3);
    expect(tenantCapFor(4, 2)).toBe(2);
    expect(tenantCapFor(4, 0)).toBe(1);
  });

  it("a tenant whose plan sets max_active_jobs: 3 runs 3 jobs at once; a tenant on the default plan runs ENCLAVE_TENANT_ACTIVE_JOBS (1)", async () => {
    const s = app.services;
    const a = await seedTenant(s, 'wide', ['owner']);
    const b = await seedTenant(s, 'narrow', ['owner']);
    await s.metering.plans.upsert(sys(s), { name: 'wide', limits: { max_active_jobs: 3 } });
    await s.metering.plans.assign(sys(s), a.tenant.id, 'wide');

    const active: Record<string, number> = {};
    const peak: Record<string, number> = {};
    let done = 0;
    worker = await JobWorker.start({
      config: s.config,
      redisUrl: s.redisUrl,
      queues: s.jobs.queues,
      log: s.log,
      planMaxActiveJobs: planMaxActiveJobs(s),
      handlers: {
        probe: {
          lane: 'ai',
          run: async (job) => {
            const t = String(job.data.tenantId);
            active[t] = (active[t] ?? 0) + 1;
            peak[t] = Math.max(peak[t] ?? 0, active[t]!);
            await new Promise((r) => setTimeout(r, 400));
            active[t]!--;
            done++;
          },
        },
      },
    });
    for (let i = 0; i < 3; i++) {
      await s.jobs.queues.add('ai', 'probe', { tenantId: a.tenant.id }, { attempts: 1 });
      await s.jobs.queues.add('ai', 'probe', { tenantId: b.tenant.id }, { attempts: 1 });
    }
    await waitFor(() => done, { until: (d) => d === 6, timeout: 15_000, what: '6 probe jobs done' });
    expect(peak[a.tenant.id]).toBe(3);
    expect(peak[b.tenant.id]).toBe(1);
  }, 20_000);
});
