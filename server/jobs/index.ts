import type { Logger } from 'pino';
import type { Redis } from 'ioredis';
import type { Access } from '../access/authorize.js';
import type { Clock } from '../clock.js';
import type { Config } from '../config/settings.js';
import type { Store } from '../db/store.js';
import { JobsRepo } from '../db/repos/jobs.js';
import type { TenantStore } from '../db/tenant-store.js';
import type { KeyService } from '../keys/service.js';
import { BATCH_JOB, BatchService } from '../batch/service.js';
import { failBatch } from '../batch/processor.js';
import { queueMetricsText } from './metrics.js';
import { JobQueues, type JobData } from './queues.js';
import { systemCtxFor } from './schedules.js';

/**
 * Background execution as every process sees it: the lanes' producer side (enqueue, failed
 * jobs admin, queue metrics), the jobs repository and the Batch API service. The worker
 * role adds the consumers (server/jobs/runtime.ts: startWorker).
 */
export interface Jobs {
  readonly queues: JobQueues;
  readonly repo: JobsRepo;
  readonly batches: BatchService;
  /** Text appended to /metrics: queue depth, oldest age, worker heartbeat and outcomes. */
  metricsText(): Promise<string>;
  failBatch(tenantId: string, batchId: string, code: string, message: string): Promise<void>;
  close(): Promise<void>;
}

export function createJobs(o: {
  config: Config;
  redisUrl: string;
  redis?: Redis;
  store: Store;
  tenantStore: TenantStore;
  access: Access;
  keys: KeyService;
  clock: Clock;
  log: Logger;
}): Jobs {
  const queues = new JobQueues(o.config, o.redisUrl, o.log);
  const repo = new JobsRepo(o.store, o.tenantStore);
  const batches = new BatchService({ config: o.config, repo, queues, access: o.access, keys: o.keys, clock: o.clock, log: o.log });
  const fail = async (tenantId: string, batchId: string, code: string, message: string): Promise<void> => {
    const tenant = await repo.batchTenant(batchId);
    if (!tenant || tenant.id !== tenantId) return;
    await failBatch({ config: o.config, repo, clock: o.clock }, systemCtxFor(o, tenant, 'jobs'), batchId, code, message);
  };
  queues.onDiscard(BATCH_JOB, (job) => {
    const d = job.data as JobData;
    if (typeof d.tenantId === 'string' && typeof d.batchId === 'string') {
      // The discard has happened; a failed write leaves the batch open for the reconciler.
      void fail(d.tenantId, d.batchId, 'batch_job_discarded', 'An administrator discarded the failed batch job.').catch((e: Error) => o.log.warn({ batchId: d.batchId, err: e.message }, 'could not fail the discarded batch'));
    }
  });
  return {
    queues,
    repo,
    batches,
    // BullMQ stamps jobs with wall-clock time, so ages are measured against it (not the injected clock).
    metricsText: () => queueMetricsText(queues, queues.connection, Date.now()),
    failBatch: fail,
    close: () => queues.close(),
  };
}
