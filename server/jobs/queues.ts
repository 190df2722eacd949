import { Queue, type Job, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../config/settings.js';
import { AppError } from '../errors.js';
import { bullConnection } from './connection.js';
import { LANES, laneSpecs, QUEUE_PREFIX, type Lane, type LaneSpec } from './lanes.js';

/** What every job carries: ids only (job data is plain text in Redis: never prompts). */
export interface JobData {
  /** The tenant the job works for (fairness); absent for platform jobs. */
  readonly tenantId?: string;
  readonly [k: string]: string | number | boolean | undefined;
}

export interface FailedJobView {
  readonly queue: Lane;
  readonly id: string;
  readonly name: string;
  readonly tenant_id: string | null;
  readonly failed_reason: string;
  readonly attempts_made: number;
  readonly created_at: number;
  readonly failed_at: number | null;
}

/**
 * The producer side of the lanes, used by every process (the API enqueues batches, the CLI
 * and admin API manage failed jobs, the worker schedules): one Queue per lane on one shared
 * producer connection (no offline queue: enqueueing while Redis is away fails at once).
 */
export class JobQueues {
  readonly specs: Record<Lane, LaneSpec>;
  readonly connection: Redis;
  private readonly queues: Record<Lane, Queue>;
  /** Called when an admin discards a failed job (e.g. to fail the batch it ran). */
  private readonly discardHooks = new Map<string, (job: Job) => void | Promise<void>>();

  constructor(
    config: Config,
    redisUrl: string,
    private readonly log: Logger,
  ) {
    this.specs = laneSpecs(config);
    this.connection = bullConnection(redisUrl, log, 'producer');
    const qs = {} as Record<Lane, Queue>;
    for (const lane of LANES) {
      qs[lane] = new Queue(lane, { connection: this.connection, prefix: QUEUE_PREFIX, defaultJobOptions: this.specs[lane].defaults });
      qs[lane].on('error', (e) => log.debug({ err: e.message, queue: lane }, 'jobs: queue error'));
    }
    this.queues = qs;
  }

  queue(lane: Lane): Queue {
    return this.queues[lane];
  }

  /** Enqueues a job; `jobId` makes it idempotent (an existing job with that id is kept). */
  async add(lane: Lane, name: string, data: JobData, opts: JobsOptions = {}): Promise<Job> {
    try {
      return await this.queues[lane].add(name, data, opts);
    } catch (e) {
      throw new AppError(503, 'jobs_unavailable', `The job queue is unavailable (${(e as Error).message}); try again shortly.`, { cause: e });
    }
  }

  onDiscard(jobName: string, hook: (job: Job) => void | Promise<void>): void {
    this.discardHooks.set(jobName, hook);
  }

  // ---- failed jobs (admin API and `enclave jobs`) -------------------------------------

  async listFailed(opts: { queue?: Lane; limit?: number } = {}): Promise<FailedJobView[]> {
    const limit = Math.min(Math.max(opts.limit ?? 50, 1), 500);
    const out: FailedJobView[] = [];
    for (const lane of opts.queue ? [opts.queue] : LANES) {
      const jobs = await this.queues[lane].getFailed(0, limit - 1);
      for (const j of jobs) if (j) out.push(view(lane, j));
    }
    return out.sort((a, b) => (b.failed_at ?? 0) - (a.failed_at ?? 0)).slice(0, limit);
  }

  private async failedJob(lane: Lane, id: string): Promise<Job> {
    const job = await this.queues[lane].getJob(id);
    if (!job || (await job.getState()) !== 'failed') throw new AppError(404, 'job_not_found', `No failed job ${id} in the ${lane} queue.`);
    return job;
  }

  /** Moves a failed job back to waiting (its attempts start again). */
  async retry(lane: Lane, id: string): Promise<FailedJobView> {
    const job = await this.failedJob(lane, id);
    await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    this.log.info({ queue: lane, jobId: id }, 'jobs: failed job retried');
    return view(lane, job);
  }

  /** Removes a failed job for good (and tells its owner, e.g. the batch fails). */
  async discard(lane: Lane, id: string): Promise<FailedJobView> {
    const job = await this.failedJob(lane, id);
    const v = view(lane, job);
    await this.discardHooks.get(job.name)?.(job);
    await job.remove();
    this.log.info({ queue: lane, jobId: id }, 'jobs: failed job discarded');
    return v;
  }

  async counts(): Promise<Record<Lane, Record<string, number>>> {
    const out = {} as Record<Lane, Record<string, number>>;
    for (const lane of LANES) out[lane] = await this.queues[lane].getJobCounts(...JOB_STATES);
    return out;
  }

  /** now − timestamp of the oldest waiting job, in seconds (0 when none waits). */
  async oldestWaitingAge(lane: Lane, now: number): Promise<number> {
    const [head] = await this.queues[lane].getJobs(['wait', 'prioritized'], 0, 0, true);
    return head ? Math.max(0, (now - head.timestamp) / 1000) : 0;
  }

  async close(): Promise<void> {
    await Promise.allSettled(LANES.map((l) => this.queues[l].close()));
    this.connection.disconnect();
  }
}

export const JOB_STATES = ['waiting', 'prioritized', 'active', 'delayed', 'failed', 'completed'] as const;

function view(lane: Lane, j: Job): FailedJobView {
  const data = (j.data ?? {}) as JobData;
  return {
    queue: lane,
    id: String(j.id),
    name: j.name,
    tenant_id: typeof data.tenantId === 'string' ? data.tenantId : null,
    failed_reason: j.failedReason ?? '',
    attempts_made: j.attemptsMade,
    created_at: j.timestamp,
    failed_at: j.finishedOn ?? null,
  };
}
