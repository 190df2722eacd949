import { UnrecoverableError, type Job, type JobsOptions } from 'bullmq';
import type { Logger } from 'pino';
import { deliverNotification, type DeliverDeps } from '../metering/webhooks.js';
import type { JobData, JobQueues } from './queues.js';
import type { JobContext } from './worker.js';

/**
 * Soft-limit webhooks on the `maintenance` lane: one job per notification (job id
 * `whk_<notification id>`, so raising it twice — or the reconciler — enqueues it once). Job
 * data holds ids only; the processor reads the URL, the secret and the notification from
 * SQLite at each attempt, so a URL changed meanwhile is honoured. A failed attempt (network
 * error, timeout, non-2xx) is retried with exponential backoff and jitter; a final failure
 * shows in the failed-jobs view (`enclave jobs list`, retry/discard).
 */
export const WEBHOOK_JOB = 'quota-webhook';

/** ~1 s, 2 s, 4 s … 17 min between attempts: about 70 minutes of retries in all. */
export const WEBHOOK_JOB_OPTS: JobsOptions = {
  attempts: 13,
  backoff: { type: 'exponential', delay: 1_000, jitter: 0.5 },
};

export function webhookJobId(notificationId: string): string {
  return `whk_${notificationId}`;
}

export async function enqueueWebhook(queues: JobQueues, n: { tenantId: string; notificationId: string }, opts: JobsOptions = {}): Promise<Job> {
  return queues.add('maintenance', WEBHOOK_JOB, { tenantId: n.tenantId, notificationId: n.notificationId }, { ...WEBHOOK_JOB_OPTS, ...opts, jobId: webhookJobId(n.notificationId) });
}

export function webhookProcessor(d: DeliverDeps): (job: Job<JobData>, jc: JobContext) => Promise<unknown> {
  return async (job, jc) => {
    const { tenantId, notificationId } = job.data;
    if (typeof tenantId !== 'string' || typeof notificationId !== 'string') return { status: 'skipped', reason: 'bad_job_data' };
    const r = await deliverNotification(d, tenantId, notificationId, jc.signal);
    // A URL without a readable secret cannot be signed: no point retrying (the failed job shows it).
    if (r.status === 'skipped' && r.reason === 'no_secret') throw new UnrecoverableError('webhook_no_secret: the tenant has a webhook URL but no readable signing secret; set the URL again or rotate the secret');
    if (r.status === 'skipped') jc.log.info({ notificationId, reason: r.reason }, 'quota webhook skipped');
    return r;
  };
}

/**
 * Re-enqueues notifications of the last `withinMs` not delivered yet (an enqueue that failed
 * while Redis was away, a job removed by retention). Jobs that exist (waiting, delayed,
 * failed) keep their id, so this never duplicates one; delivery itself is idempotent.
 */
export async function reconcileWebhooks(d: { repo: Pick<DeliverDeps['repo'], 'undeliveredWebhooks'>; queues: JobQueues; log: Logger; now: number; withinMs?: number }): Promise<{ queued: number }> {
  let queued = 0;
  const q = d.queues.queue('maintenance');
  for (const n of await d.repo.undeliveredWebhooks(d.now - (d.withinMs ?? 7 * 86_400_000))) {
    const existing = await q.getJob(webhookJobId(n.id));
    if (existing) {
      const state = await existing.getState();
      if (state !== 'completed' && state !== 'unknown') continue;
      await existing.remove().catch(() => {});
    }
    await enqueueWebhook(d.queues, { tenantId: n.tenantId, notificationId: n.id });
    queued++;
  }
  if (queued) d.log.info({ queued }, 'webhook reconciler: undelivered notifications re-enqueued');
  return { queued };
}
