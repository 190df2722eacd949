import { AggregatorRegistry, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Redis } from 'ioredis';
import { LANES } from './lanes.js';
import { JOB_STATES, type JobQueues } from './queues.js';

/**
 * Queue metrics (ops.md §4.4). Two halves:
 * - the worker's own instruments (outcomes, wait and run time), in a registry of their own
 *   that each worker publishes to Redis with its heartbeat (the worker has no HTTP port);
 * - what the API's /metrics adds on each scrape: queue depth per state and the oldest
 *   waiting job's age (read from Redis), the newest worker heartbeat, and the sum of the
 *   published worker registries (prom-client's cluster aggregation).
 * Labels: queue (the three lanes), state, outcome and job name (our own fixed names).
 */
const WAIT_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600];
const RUN_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 14_400];

export const OUTCOMES = ['completed', 'failed', 'retried', 'stalled', 'deferred'] as const;
export type Outcome = (typeof OUTCOMES)[number];

export const WORKERS_KEY = 'enclave:workers';
/** A worker whose last heartbeat is older than this no longer counts. */
export const WORKER_STALE_MS = 60_000;

export class WorkerMetrics {
  readonly registry = new Registry();
  readonly jobs = new Counter({
    name: 'enclave_jobs_total',
    help: 'Jobs finished by the workers, by queue and outcome (completed, failed, retried = failed with attempts left, stalled, deferred = sent back by the tenant cap).',
    labelNames: ['queue', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly wait = new Histogram({
    name: 'enclave_queue_wait_seconds',
    help: 'Time a job waited in its queue before a worker started it (processedOn − timestamp).',
    labelNames: ['queue'] as const,
    buckets: WAIT_BUCKETS,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'enclave_job_duration_seconds',
    help: 'Time a worker spent on one job attempt, by queue and job name.',
    labelNames: ['queue', 'name'] as const,
    buckets: RUN_BUCKETS,
    registers: [this.registry],
  });

  constructor() {
    for (const q of LANES) {
      for (const o of OUTCOMES) this.jobs.labels(q, o).inc(0);
      this.wait.labels(q);
    }
  }

  /** JSON for Redis (prom-client's cluster format). */
  async snapshot(): Promise<object[]> {
    return (await this.registry.getMetricsAsJSON()) as object[];
  }
}

/** The text the API's /metrics appends (never throws: a Redis outage reads as enclave_queue_up 0). */
export async function queueMetricsText(queues: JobQueues, redis: Redis, now: number, timeoutMs = 1000): Promise<string> {
  const reg = new Registry();
  const up = new Gauge({ name: 'enclave_queue_up', help: 'Whether the queue metrics could be read from Redis (1) or not (0).', registers: [reg] });
  try {
    const extra = await withTimeout(collect(queues, redis, now, reg), timeoutMs);
    up.set(1);
    return (await reg.metrics()) + extra;
  } catch {
    up.set(0);
    return reg.metrics();
  }
}

async function collect(queues: JobQueues, redis: Redis, now: number, reg: Registry): Promise<string> {
  const depth = new Gauge({ name: 'enclave_queue_jobs', help: 'Jobs in each queue by state.', labelNames: ['queue', 'state'] as const, registers: [reg] });
  const oldest = new Gauge({
    name: 'enclave_queue_oldest_job_age_seconds',
    help: 'Age of the oldest waiting job in each queue (0 when none waits).',
    labelNames: ['queue'] as const,
    registers: [reg],
  });
  const heartbeat = new Gauge({ name: 'enclave_worker_heartbeat_timestamp_seconds', help: 'Unix time of the newest worker heartbeat (0 if none).', registers: [reg] });
  const workers = new Gauge({ name: 'enclave_workers', help: 'Workers with a heartbeat in the last 60 s.', registers: [reg] });
  const counts = await queues.counts();
  for (const q of LANES) {
    for (const s of JOB_STATES) depth.labels(q, s).set(counts[q][s] ?? 0);
    oldest.labels(q).set(await queues.oldestWaitingAge(q, now));
  }
  const entries = await redis.hgetall(WORKERS_KEY);
  let newest = 0;
  const fresh: object[][] = [];
  for (const [id, raw] of Object.entries(entries)) {
    try {
      const e = JSON.parse(raw) as { at: number; metrics: object[] };
      if (now - e.at > WORKER_STALE_MS) {
        if (now - e.at > 10 * WORKER_STALE_MS) await redis.hdel(WORKERS_KEY, id);
        continue;
      }
      newest = Math.max(newest, e.at);
      fresh.push(e.metrics);
    } catch {
      /* a torn entry: skip */
    }
  }
  heartbeat.set(newest / 1000);
  workers.set(fresh.length);
  if (!fresh.length) fresh.push(await new WorkerMetrics().snapshot()); // pre-exported zeros
  return AggregatorRegistry.aggregate(fresh).metrics();
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Error('timeout')), ms)))]).finally(() => clearTimeout(t));
}
