import type { Job } from 'bullmq';
import type { Logger } from 'pino';
import { rmSync } from 'node:fs';
import path from 'node:path';
import type { Clock } from '../clock.js';
import type { Config } from '../config/settings.js';
import { createContext } from '../context.js';
import type { JobsRepo } from '../db/repos/jobs.js';
import type { JobData, JobQueues } from './queues.js';
import type { Handlers, JobContext } from './worker.js';

/**
 * The schedules: BullMQ job schedulers on the maintenance lane. A scheduler lives in Redis
 * under its id, so every worker upserting it at start leaves exactly one schedule and each
 * run is one job (one owner, however many workers).
 */
export interface Schedule {
  readonly id: string;
  readonly every?: number;
  readonly pattern?: string;
  readonly run: (job: Job<JobData>, jc: JobContext) => Promise<unknown>;
}

export interface ScheduleDeps {
  readonly config: Config;
  readonly clock: Clock;
  readonly log: Logger;
  readonly repo: JobsRepo;
  readonly queues: JobQueues;
  /** Licence: re-evaluate (expiry, grace, trusted time). */
  readonly licenseRefresh?: () => Promise<void> | void;
  /** Re-enqueue a batch whose job was lost or failed as stalled. */
  readonly enqueueBatch: (tenantId: string, batchId: string) => Promise<unknown>;
  readonly failBatch: (tenantId: string, batchId: string, reason: string) => Promise<void>;
  /** Other parts' retention (chat conversations past the tenant's setting): returns counts. */
  readonly retention?: () => Promise<Record<string, number>>;
  /** Deletes stored call contents (opt-in content logging) past their expiry: returns the count. */
  readonly contentPurge?: () => Promise<number>;
  /** Scheduled backups (server/ops/backup), when configured. */
  readonly backup?: () => Promise<unknown>;
  readonly backupPattern?: string;
  /** Re-enqueues soft-limit webhooks not delivered yet (server/jobs/webhooks.ts). */
  readonly webhookReconcile?: () => Promise<unknown>;
  /** Exports audit entries past ENCLAVE_AUDIT_ARCHIVE_DAYS to <dataDir>/audit-archive (server/jobs/audit-archive.ts). */
  readonly auditArchive?: () => unknown;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** A batch whose job was lost is re-enqueued at most this many times before it fails. */
export const MAX_BATCH_ENQUEUES = 5;

export function schedules(d: ScheduleDeps): Schedule[] {
  const list: Schedule[] = [
    {
      id: 'session-cleanup',
      every: HOUR,
      run: async () => {
        const n = await d.repo.purgeSessions(d.clock.now(), d.config.sessionIdleMinutes * MINUTE, 7 * DAY);
        return { purged: n };
      },
    },
    {
      id: 'batch-reconcile',
      every: MINUTE,
      run: async () => reconcileBatches(d),
    },
    {
      id: 'retention',
      every: DAY,
      run: async () => {
        const now = d.clock.now();
        let files = 0;
        for (const f of await d.repo.expiredFiles(now)) {
          rmSync(path.join(d.config.dataDir, f.path), { force: true });
          await d.repo.deleteFileById(f.id);
          files++;
        }
        const lines = await d.repo.purgeBatchLines(now - 30 * DAY);
        return { files, batchLines: lines, ...(await d.retention?.()) };
      },
    },
  ];
  if (d.contentPurge) {
    // Hourly, not with the daily retention: customer content should not outlive its
    // retention by more than an hour (reads already stop at the expiry).
    const purge = d.contentPurge;
    list.push({ id: 'content-retention', every: HOUR, run: async () => ({ callContents: await purge() }) });
  }
  if (d.licenseRefresh) {
    const refresh = d.licenseRefresh;
    list.push({
      id: 'license-evaluate',
      every: DAY,
      run: async () => {
        await refresh();
        return { ok: true };
      },
    });
  }
  if (d.webhookReconcile) {
    const reconcile = d.webhookReconcile;
    list.push({ id: 'webhook-reconcile', every: HOUR, run: async () => reconcile() });
  }
  if (d.auditArchive) {
    const archive = d.auditArchive;
    list.push({ id: 'audit-archive', every: DAY, run: async () => archive() });
  }
  if (d.backup && d.backupPattern) {
    const backup = d.backup;
    list.push({ id: 'backup', pattern: d.backupPattern, run: async () => backup() });
  }
  return list;
}

/**
 * Repairs batch rows whose job is gone (Redis lost it, or an enqueue failed while Redis was
 * away) or failed without running the processor (stalled past the limit): re-enqueue while
 * under MAX_BATCH_ENQUEUES, else fail the batch. Lines are idempotent, so re-running is safe.
 */
export async function reconcileBatches(d: Pick<ScheduleDeps, 'repo' | 'queues' | 'enqueueBatch' | 'failBatch' | 'log'>): Promise<{ requeued: number; failed: number }> {
  let requeued = 0;
  let failed = 0;
  const q = d.queues.queue('ai');
  for (const b of await d.repo.openBatches()) {
    const job = await q.getJob(b.id);
    const state = job ? await job.getState() : 'missing';
    if (state !== 'missing' && state !== 'failed' && state !== 'unknown' && state !== 'completed') continue;
    if (b.enqueues >= MAX_BATCH_ENQUEUES) {
      await d.failBatch(b.tenantId, b.id, `the batch job was lost or failed ${b.enqueues} times (last: ${job?.failedReason ?? state})`);
      failed++;
      continue;
    }
    if (job && (state === 'failed' || state === 'completed')) await job.remove().catch(() => {});
    await d.enqueueBatch(b.tenantId, b.id);
    d.log.warn({ batchId: b.id, state }, 'reconciler: batch job re-enqueued');
    requeued++;
  }
  return { requeued, failed };
}

/** Upserts the schedulers (idempotent) and returns their handlers. */
export async function installSchedules(queues: JobQueues, list: Schedule[]): Promise<Handlers> {
  const handlers: Record<string, { lane: 'maintenance'; run: Schedule['run'] }> = {};
  const q = queues.queue('maintenance');
  const wanted = new Set(list.map((s) => s.id));
  for (const s of list) {
    await q.upsertJobScheduler(s.id, s.every ? { every: s.every } : { pattern: s.pattern! }, { name: s.id, data: {} });
    handlers[s.id] = { lane: 'maintenance', run: s.run };
  }
  // A schedule no longer configured (e.g. backups turned off) is removed.
  for (const existing of await q.getJobSchedulers()) {
    const id = existing.key ?? existing.id;
    if (id && !wanted.has(id)) await q.removeJobScheduler(id);
  }
  return handlers;
}

export function systemCtxFor(d: { log: Logger; clock: Clock }, tenant: { id: string; slug: string }, name: string) {
  return createContext({ requestId: `sys_${name}`, log: d.log, clock: d.clock, tenant, principal: { kind: 'system', id: name, platformAdmin: true } });
}
