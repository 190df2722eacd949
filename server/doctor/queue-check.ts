import pino from 'pino';
import type { Config } from '../config/settings.js';
import { LANES, type Lane } from '../jobs/lanes.js';
import { WORKERS_KEY, WORKER_STALE_MS } from '../jobs/metrics.js';
import { JobQueues } from '../jobs/queues.js';
import type { CheckOutcome } from './checks.js';

/** Oldest waiting job older than this warns (ops.md §4.4: age over the queue's SLO). */
export const QUEUE_AGE_WARN_S = 15 * 60;

export interface QueueSnapshot {
  readonly counts: Record<Lane, Record<string, number>>;
  readonly oldestWaitingSeconds: Record<Lane, number>;
  readonly workersAlive: number;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}

/** Reads queue depth, oldest waiting age and live workers from Redis (the same data /metrics exports). */
export async function queueSnapshot(config: Config, redisUrl: string, now: number, timeoutMs = 3000): Promise<QueueSnapshot> {
  const queues = new JobQueues(config, redisUrl, pino({ level: 'silent' }));
  try {
    return await withTimeout(
      (async () => {
        if (queues.connection.status !== 'ready') await new Promise((r) => queues.connection.once('ready', r));
        const counts = await queues.counts();
        const oldest = {} as Record<Lane, number>;
        for (const lane of LANES) oldest[lane] = Math.round(await queues.oldestWaitingAge(lane, now));
        const entries = await queues.connection.hgetall(WORKERS_KEY);
        let alive = 0;
        for (const raw of Object.values(entries)) {
          try {
            if (now - (JSON.parse(raw) as { at: number }).at <= WORKER_STALE_MS) alive++;
          } catch {
            /* torn entry */
          }
        }
        return { counts, oldestWaitingSeconds: oldest, workersAlive: alive };
      })(),
      timeoutMs,
    );
  } finally {
    await queues.close();
  }
}

/**
 * Queue health: jobs waiting with no live worker, the oldest waiting job past 15 minutes, and
 * failed jobs (each with its fix). Queues that are merely empty, or a worker that is not
 * running while nothing waits, are fine.
 */
export async function queueCheck(config: Config, redisUrl: string | undefined, now: number): Promise<CheckOutcome> {
  if (!redisUrl) return { id: 'queues', status: 'ok', message: 'Redis is not running (embedded mode, server stopped): no queues to inspect' };
  let s: QueueSnapshot;
  try {
    s = await queueSnapshot(config, redisUrl, now);
  } catch (e) {
    return { id: 'queues', status: 'warn', message: `cannot read the job queues (${(e as Error).message}); fix Redis first (see the redis check)` };
  }
  const data = { ...s } as unknown as Record<string, unknown>;
  const waiting = LANES.reduce((n, l) => n + (s.counts[l].waiting ?? 0) + (s.counts[l].prioritized ?? 0) + (s.counts[l].delayed ?? 0), 0);
  const failed = LANES.reduce((n, l) => n + (s.counts[l].failed ?? 0), 0);
  const stale = LANES.filter((l) => s.oldestWaitingSeconds[l] > QUEUE_AGE_WARN_S);
  const problems: string[] = [];
  if (waiting > 0 && s.workersAlive === 0) problems.push(`${waiting} job(s) waiting and no worker alive; start the worker (docker compose up -d worker, or --role worker)`);
  if (stale.length) problems.push(`oldest waiting job in ${stale.map((l) => `${l} is ${Math.round(s.oldestWaitingSeconds[l] / 60)} min`).join(', ')} old; add worker capacity or look for a stuck job`);
  if (failed > 0) problems.push(`${failed} failed job(s); inspect them with enclave jobs list, then enclave jobs retry|discard <queue> <id>`);
  if (problems.length) return { id: 'queues', status: 'warn', message: problems.join('; '), data };
  return { id: 'queues', status: 'ok', message: `${waiting} waiting, ${LANES.reduce((n, l) => n + (s.counts[l].active ?? 0), 0)} active, ${s.workersAlive} worker(s) alive`, data };
}
