import type { JobsOptions } from 'bullmq';
import type { Config } from '../config/settings.js';

/**
 * The lanes: separate BullMQ queues, each with its own concurrency, timeout, retry policy
 * and retention, so a flood of batch work never delays maintenance (or the reverse).
 *
 * - `ai`: batch and async AI calls. Long jobs (a batch runs until done or its completion
 *   window ends), per-tenant fairness, few retries: lines are idempotent per line anyway.
 * - `ingest`: reserved for document ingestion.
 * - `maintenance`: schedules (session cleanup, licence evaluation, retention, reconciler,
 *   backups). Short jobs, more retries.
 */
export const LANES = ['ai', 'ingest', 'maintenance'] as const;
export type Lane = (typeof LANES)[number];

export interface LaneSpec {
  readonly name: Lane;
  readonly concurrency: number;
  /** Enforced inside the processor (abort signal); a job past it fails with job_timeout. */
  readonly timeoutMs: number;
  /** Per-tenant cap on active jobs (fairness); undefined = no tenant cap on this lane. */
  readonly tenantCap: number | undefined;
  readonly defaults: JobsOptions;
}

export const QUEUE_PREFIX = 'enclave';

const DAY_S = 86_400;

export function laneSpecs(config: Config): Record<Lane, LaneSpec> {
  return {
    ai: {
      name: 'ai',
      concurrency: config.aiLaneConcurrency,
      // A batch job's own deadline is its completion window; this is the outer bound.
      timeoutMs: 25 * 3600_000,
      tenantCap: config.tenantActiveJobs,
      defaults: {
        attempts: 3,
        backoff: { type: 'exponential', delay: 5_000, jitter: 0.5 },
        removeOnComplete: { age: 7 * DAY_S, count: 1000 },
        removeOnFail: { age: 30 * DAY_S, count: 5000 },
      },
    },
    ingest: {
      name: 'ingest',
      concurrency: 2,
      timeoutMs: 30 * 60_000,
      tenantCap: config.tenantActiveJobs,
      defaults: {
        attempts: 3,
        backoff: { type: 'exponential', delay: 10_000, jitter: 0.5 },
        removeOnComplete: { age: 7 * DAY_S, count: 1000 },
        removeOnFail: { age: 30 * DAY_S, count: 5000 },
      },
    },
    maintenance: {
      name: 'maintenance',
      concurrency: 1,
      timeoutMs: 10 * 60_000,
      tenantCap: undefined,
      defaults: {
        attempts: 5,
        backoff: { type: 'exponential', delay: 2_000, jitter: 0.5 },
        removeOnComplete: { age: DAY_S, count: 200 },
        removeOnFail: { age: 30 * DAY_S, count: 1000 },
      },
    },
  };
}

export function isLane(v: unknown): v is Lane {
  return typeof v === 'string' && (LANES as readonly string[]).includes(v);
}
