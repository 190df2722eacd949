import type { Services } from '../app.js';
import { batchProcessor } from '../batch/processor.js';
import { gatewayExecutor, type LineExecutor } from '../batch/gateway-call.js';
import { BATCH_JOB } from '../batch/service.js';
import { scheduledBackup } from '../ops/backup/scheduled.js';
import { ChatService } from '../chat/service.js';
import { ChatRepo } from '../db/repos/chat.js';
import { createContext } from '../context.js';
import { installSchedules, schedules, type Schedule } from './schedules.js';
import { archiveAudit } from './audit-archive.js';
import { reconcileWebhooks, WEBHOOK_JOB, webhookProcessor } from './webhooks.js';
import { egressPolicy } from '../providers/egress.js';
import { JobWorker, type Handlers } from './worker.js';
import { createKnowledge } from '../knowledge/index.js';

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
  const knowledge = createKnowledge(services);
  const scheduleHandlers = await installSchedules(jobs.queues, [...workerSchedules(services), ...knowledge.schedules]);
  const handlers: Handlers = {
    [BATCH_JOB]: { lane: 'ai', run: batchProcessor({ config, repo: jobs.repo, identity: services.identity, execute, clock, afterUsage: (u) => services.gateway.usage.noteWritten({ createdAt: u.createdAt, promptTokens: u.promptTokens ?? 0, completionTokens: u.completionTokens ?? 0 }) }) },
    ...knowledge.handlers,
    [WEBHOOK_JOB]: { lane: 'maintenance', run: webhookProcessor({ repo: services.metering.repo, secrets: services.metering.webhookSecrets, clock, log, egress: egressPolicy(config.tenantProviderNetworks) }) },
    ...scheduleHandlers,
  };
  // Audit streaming to SIEM sinks (server/siem): one forwarder per worker process, one delivering per sink (Redis lock).
  services.siem.startForwarder();
  return JobWorker.start({
    config,
    redisUrl: services.redisUrl,
    queues: jobs.queues,
    handlers,
    log,
    planMaxActiveJobs: planMaxActiveJobs(services),
    telemetry: services.gateway.telemetry,
  });
}

/** Fairness: the tenant plan's max_active_jobs (cached by the plan service, ≤ 500 ms stale). */
export function planMaxActiveJobs(services: Pick<Services, 'metering'>): (tenantId: string) => number | null | undefined {
  return (tenantId) => services.metering.plans.tenant(tenantId)?.plan.limits.max_active_jobs;
}

/** The maintenance schedules over this process's services. */
export function workerSchedules(services: Services): Schedule[] {
  const { config, clock, log, jobs } = services;
  return schedules({
      config,
      clock,
      log,
      repo: jobs.repo,
      queues: jobs.queues,
      licenseRefresh: () => services.license.refresh(),
      enqueueBatch: async (tenantId, batchId) => {
        await jobs.repo.bumpEnqueues(batchId);
        return jobs.batches.enqueue(tenantId, batchId);
      },
      failBatch: (tenantId, batchId, reason) => jobs.failBatch(tenantId, batchId, 'batch_job_lost', reason),
      retention: async () => {
        const ctx = createContext({ requestId: 'sys_retention', log, clock, principal: { kind: 'system', id: 'retention', platformAdmin: true } });
        return {
          chatConversations: await new ChatService(new ChatRepo(services.store, services.tenantStore)).purgeExpired(ctx),
          // Call traces follow each tenant's raw usage retention (server/traces/service.ts).
          callTraces: await services.gateway.traces.purgeExpired(await services.metering.repo.retentionPolicies()),
        };
      },
      contentPurge: () => services.gateway.content.purgeExpired(),
      webhookReconcile: () => reconcileWebhooks({ repo: services.metering.repo, queues: jobs.queues, log, now: clock.now() }),
      ...(config.auditArchiveDays ? { auditArchive: () => archiveAudit(services.store, config.dataDir, clock.now() - config.auditArchiveDays! * 86_400_000) } : {}),
      // Encrypted to ENCLAVE_BACKUP_RECIPIENT when set, verified by reading it back, newest 14 kept.
      ...(config.backupCron ? { backup: () => scheduledBackup(config), backupPattern: config.backupCron } : {}),
    });
}
