import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';

/**
 * BullMQ's own Redis connections (never the request-path client). Workers and the blocking
 * connections need `maxRetriesPerRequest: null` (commands wait through a reconnect instead
 * of failing the job); producers use `enableOfflineQueue: false` so an enqueue while Redis
 * is away fails at once and the caller (or the reconciler) decides.
 */
export function bullConnection(url: string, log: Logger, role: 'worker' | 'producer'): Redis {
  const opts: RedisOptions = {
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    ...(role === 'worker' ? { maxRetriesPerRequest: null } : { enableOfflineQueue: false, maxRetriesPerRequest: 1 }),
  };
  const redis = new Redis(url, opts);
  let down = false;
  redis.on('error', (err: Error) => {
    if (!down) log.warn({ err: err.message, role }, 'jobs: redis unavailable');
    down = true;
  });
  redis.on('ready', () => {
    if (down) log.info({ role }, 'jobs: redis available again');
    down = false;
  });
  return redis;
}

/**
 * BullMQ's production rule: `maxmemory-policy noeviction` (any eviction policy may silently
 * drop job keys). Returns the policy and whether it is acceptable.
 */
export async function evictionPolicy(redis: Redis): Promise<{ policy: string; ok: boolean }> {
  const r = (await redis.call('CONFIG', 'GET', 'maxmemory-policy')) as string[];
  const policy = r[1] ?? 'unknown';
  return { policy, ok: policy === 'noeviction' };
}

export const NOEVICTION_FIX =
  'set "maxmemory-policy noeviction" in redis.conf (or run: redis-cli CONFIG SET maxmemory-policy noeviction; CONFIG REWRITE) — any eviction policy can silently drop queued jobs';

