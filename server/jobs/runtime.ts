import type { Services } from '../app.js';
import { batchProcessor } from '../batch/processor.js';
import { gatewayExecutor, type LineExecutor } from '../batch/gateway-call.js';
import { BATCH_JOB } from '../batch/service.js';
import { createBackup } from '../ops/backup/create.js';
import { installSchedules, schedules } from './schedules.js';
import { JobWorker, type Handlers } from './worker.js';

/**
 * The worker role's composition: handlers (the batch processor on the ai lane, the
 * maintenance schedules) over the process's services, then the lanes. Returns the running
 * worker; close() is graceful (in-flight batch lines finish, the batch job is deferred).
 */
export async function startWorker(services: Services, o: { execute?: LineExecutor } = {}): Promise<JobWorker> {
  const { config, clock, log, jobs } = services;
  const execute =
    o.execute ??
    gatewayExecutor({ gateway: services.gateway });
  const scheduleHandlers = await installSchedules(
    jobs.queues,
    schedules({
      config,
      clock,
      log,
      repo: jobs.repo,
      queues: jobs.queues,
      licenseRefresh: () => services.license.refresh(),
      enqueueBatch: async (tenantId, batchId) => {
        jobs.repo.bumpEnqueues(batchId);
        return jobs.batches.enqueue(tenantId, batchId);
      },
      failBatch: (tenantId, batchId, reason) => jobs.failBatch(tenantId, batchId, 'batch_job_lost', reason),
      ...(config.backupCron ? { backup: () => createBackup(config, { keep: 14 }), backupPattern: config.backupCron } : {}),
    }),
  );
  const handlers: Handlers = {
    [BATCH_JOB]: { lane: 'ai', run: batchProcessor({ config, repo: jobs.repo, identity: services.identity, execute, clock, afterUsage: (u) => services.gateway.usage.noteWritten({ createdAt: u.createdAt, promptTokens: u.promptTokens ?? 0, completionTokens: u.completionTokens ?? 0 }) }) },
    ...scheduleHandlers,
  };
  return JobWorker.start({ config, redisUrl: services.redisUrl, queues: jobs.queues, handlers, log });
}
