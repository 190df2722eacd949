import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/settings.js';
import { newId } from '../ids.js';
import { bullConnection, evictionPolicy, NOEVICTION_FIX } from './connection.js';
import { TenantSlots, tenantCapFor } from './fairness.js';
import { LANES, QUEUE_PREFIX, type Lane } from './lanes.js';
import { WORKERS_KEY, WorkerMetrics } from './metrics.js';
import type { JobData, JobQueues } from './queues.js';
import type { Telemetry } from '../telemetry/index.js';

/** What a job handler gets besides the job. */
export interface JobContext {
  /** Aborts on the lane timeout, on cancellation and on shutdown. */
  readonly signal: AbortSignal;
  /** Aborts only on shutdown: stop taking new work, save progress, then defer(). */
  readonly shutdown: AbortSignal;
  readonly log: Logger;
  /** Puts the job back in its queue to run again in `ms` (not a failed attempt). Never returns. */
  defer(ms: number): Promise<never>;
}

export type JobHandler = (job: Job<JobData>, jc: JobContext) => Promise<unknown>;
export type Handlers = Readonly<Record<string, { readonly lane: Lane; readonly run: JobHandler }>>;

export class WorkerStartError extends Error {
  override readonly name = 'WorkerStartError';
}

export const HEARTBEAT_FILE = 'worker.heartbeat';
const HEARTBEAT_MS = 5000;
export const CLOSE_GRACE_MS = 10_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());

/**
 * The worker role: one BullMQ Worker per lane (own connection, concurrency, lock), the
 * handlers by job name, per-tenant fairness, the lane timeout as an abort signal, outcome
 * and timing metrics, and the heartbeat (a file for the compose health check, and an entry
 * in Redis carrying this worker's metrics for the API's /metrics).
 */
export class JobWorker {
  readonly id = `wrk_${hostname()}_${process.pid}_${newId('w').slice(-6)}`;
  readonly metrics = new WorkerMetrics();
  private readonly workers: Worker[] = [];
  private readonly connections: Redis[] = [];
  private readonly shutdownCtl = new AbortController();
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private slots!: TenantSlots;
  private control!: Redis;
  lastHeartbeat = 0;

  private constructor(
    private readonly config: Config,
    private readonly redisUrl: string,
    private readonly queues: JobQueues,
    private readonly handlers: Handlers,
    private readonly log: Logger,
    private readonly planCap: ((tenantId: string) => number | null | undefined) | undefined,
    private readonly telemetry: Telemetry | undefined,
  ) {}

  /**
   * Starts the lanes. Refuses (WorkerStartError) when Redis may evict keys: BullMQ needs
   * `maxmemory-policy noeviction`.
   */
  static async start(o: {
    config: Config;
    redisUrl: string;
    queues: JobQueues;
    handlers: Handlers;
    log: Logger;
    /** The tenant plan's max_active_jobs (fairness; wins over ENCLAVE_TENANT_ACTIVE_JOBS when set). */
    planMaxActiveJobs?: (tenantId: string) => number | null | undefined;
    /** OpenTelemetry: a span per job (server/telemetry); absent = none. */
    telemetry?: Telemetry | undefined;
  }): Promise<JobWorker> {
    const w = new JobWorker(o.config, o.redisUrl, o.queues, o.handlers, o.log.child({ component: 'worker' }), o.planMaxActiveJobs, o.telemetry);
    await w.init();
    return w;
  }

  private async init(): Promise<void> {
    this.control = bullConnection(this.redisUrl, this.log, 'worker');
    this.connections.push(this.control);
    let policy: { policy: string; ok: boolean };
    try {
      policy = await evictionPolicy(this.control);
    } catch (e) {
      this.control.disconnect();
      throw new WorkerStartError(`cannot read Redis maxmemory-policy (${(e as Error).message}); check REDIS_URL and that Redis is running`);
    }
    if (!policy.ok) {
      this.control.disconnect();
      throw new WorkerStartError(`Redis maxmemory-policy is "${policy.policy}", the worker needs "noeviction": ${NOEVICTION_FIX}`);
    }
    this.slots = new TenantSlots(this.control, Math.max(this.config.jobLockMs * 2, 10_000));
    for (const lane of LANES) {
      const spec = this.queues.specs[lane];
      const conn = bullConnection(this.redisUrl, this.log, 'worker');
      this.connections.push(conn);
      const worker = new Worker<JobData>(lane, (job, token, signal) => this.process(lane, job, token, signal), {
        connection: conn,
        prefix: QUEUE_PREFIX,
        concurrency: spec.concurrency,
        lockDuration: this.config.jobLockMs,
        stalledInterval: this.config.jobLockMs,
        // Handlers are idempotent (progress lives in SQLite), so a stalled job may run again;
        // past this the reconciler repairs the rows of jobs that failed as stalled.
        maxStalledCount: 3,
        name: this.id,
      });
      worker.on('error', (e) => this.log.warn({ err: e.message, queue: lane }, 'jobs: worker error'));
      worker.on('completed', () => this.metrics.jobs.labels(lane, 'completed').inc());
      worker.on('failed', (job, err) => {
        if (!job || err instanceof DelayedError || err?.name === 'DelayedError') return;
        const attempts = job.opts.attempts ?? 1;
        const final = job.attemptsMade >= attempts || err instanceof UnrecoverableError;
        this.metrics.jobs.labels(lane, final ? 'failed' : 'retried').inc();
        this.log.warn({ queue: lane, jobId: job.id, name: job.name, attempt: job.attemptsMade, err: err?.message }, final ? 'jobs: job failed' : 'jobs: job failed, will retry');
      });
      worker.on('stalled', (jobId) => {
        this.metrics.jobs.labels(lane, 'stalled').inc();
        this.log.warn({ queue: lane, jobId }, 'jobs: job stalled (its worker stopped); it runs again');
      });
      this.workers.push(worker);
    }
    this.beat();
    this.heartbeatTimer = setInterval(() => this.beat(), HEARTBEAT_MS);
    this.heartbeatTimer.unref();
    this.log.info({ worker: this.id, lanes: LANES }, 'worker started');
  }

  private async process(lane: Lane, job: Job<JobData>, token: string | undefined, bullSignal: AbortSignal | undefined): Promise<unknown> {
    const handler = this.handlers[job.name];
    if (!handler || handler.lane !== lane) throw new UnrecoverableError(`no handler for job "${job.name}" on the ${lane} lane`);
    const spec = this.queues.specs[lane];
    const defer = async (ms: number): Promise<never> => {
      await job.moveToDelayed(Date.now() + ms, token);
      this.metrics.jobs.labels(lane, 'deferred').inc();
      throw new DelayedError();
    };
    const tenantId = typeof job.data.tenantId === 'string' ? job.data.tenantId : undefined;
    const jobId = String(job.id);
    let renew: NodeJS.Timeout | undefined;
    if (spec.tenantCap !== undefined && tenantId) {
      let planCap: number | null | undefined;
      try {
        planCap = this.planCap?.(tenantId);
      } catch {
        /* unknown tenant or unreadable plan: the lane default */
      }
      if (!(await this.slots.acquire(lane, tenantId, jobId, tenantCapFor(spec.tenantCap, planCap)))) {
        // The tenant is at its cap: back of the line (with jitter), other tenants go first.
        return defer(500 + Math.floor(Math.random() * 500));
      }
      renew = setInterval(() => void this.slots.renew(lane, tenantId, jobId).catch(() => {}), Math.max(1000, this.config.jobLockMs / 2));
      renew.unref();
    }
    if (job.processedOn) this.metrics.wait.labels(lane).observe(Math.max(0, job.processedOn - job.timestamp) / 1000);
    const timeout = AbortSignal.timeout(spec.timeoutMs);
    const signals = [timeout, this.shutdownCtl.signal, ...(bullSignal ? [bullSignal] : [])];
    const end = this.metrics.duration.startTimer({ queue: lane, name: job.name });
    const run = (): Promise<unknown> =>
      handler.run(job, {
        signal: AbortSignal.any(signals),
        shutdown: this.shutdownCtl.signal,
        log: this.log.child({ queue: lane, jobId, job: job.name }),
        defer,
      });
    try {
      // Traced: the job in its span, the gateway calls it makes (batch lines, embeddings) inside it.
      return await (this.telemetry ? this.telemetry.job({ lane, name: job.name, id: jobId, tenantId, attempt: job.attemptsMade + 1 }, run) : run());
    } catch (e) {
      if (timeout.aborted && !(e instanceof DelayedError)) throw new Error(`job_timeout: the job ran longer than ${spec.timeoutMs} ms`);
      throw e;
    } finally {
      end();
      if (renew) clearInterval(renew);
      if (tenantId && spec.tenantCap !== undefined) await this.slots.release(lane, tenantId, jobId).catch(() => {});
    }
  }

  private beat(): void {
    const now = Date.now();
    this.lastHeartbeat = now;
    try {
      mkdirSync(this.config.dataDir, { recursive: true });
      writeFileSync(path.join(this.config.dataDir, HEARTBEAT_FILE), String(now));
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'cannot write the worker heartbeat file');
    }
    void this.metrics
      .snapshot()
      .then((m) => this.control.hset(WORKERS_KEY, this.id, JSON.stringify({ at: now, metrics: m })))
      .catch(() => {
        /* Redis away: the next beat publishes */
      });
  }

  /** Graceful: handlers see `shutdown`, save progress and defer; then the Workers close. */
  async close(graceMs = CLOSE_GRACE_MS): Promise<void> {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.shutdownCtl.abort(new Error('worker shutting down'));
    // Bounded: a Worker whose blocking connection is stuck (e.g. across a Redis restart) is
    // closed by force after the grace period; its job (if any) is picked up again as stalled.
    await Promise.allSettled(
      this.workers.map(async (w) => {
        const ok = await Promise.race([w.close().then(() => true), sleep(graceMs).then(() => false)]);
        if (!ok) {
          this.log.warn({ queue: w.name }, 'jobs: worker did not close in time; forcing');
          await Promise.race([w.close(true), sleep(1000)]);
        }
      }),
    );
    await this.control.hdel(WORKERS_KEY, this.id).catch(() => {});
    for (const c of this.connections) c.disconnect();
    this.log.info({ worker: this.id }, 'worker stopped');
  }
}
