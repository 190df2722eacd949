import type { Redis } from 'ioredis';

/**
 * Per-tenant cap on active jobs per lane: one tenant's flood cannot take every worker
 * slot. A job holds a lease (member of a sorted set scored by its expiry) while it runs;
 * a job that finds its tenant at the cap goes back to the queue (delayed) and others run.
 * Leases expire on their own when a worker dies, and a job that resumes after a crash
 * takes its own lease back (same member).
 */
const ACQUIRE = `
local key = KEYS[1]
local now = tonumber(ARGV[1])
local cap = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if redis.call('ZSCORE', key, ARGV[2]) or redis.call('ZCARD', key) < cap then
  redis.call('ZADD', key, now + tonumber(ARGV[4]), ARGV[2])
  redis.call('PEXPIRE', key, tonumber(ARGV[4]) * 2)
  return 1
end
return 0
`;

/**
 * A tenant's cap on one lane: the plan's `max_active_jobs` when the plan sets it (at least
 * 1: a cap of 0 would park the tenant's jobs forever — forbid batches with the plan's
 * capabilities instead), else the lane's default (ENCLAVE_TENANT_ACTIVE_JOBS).
 */
export function tenantCapFor(laneDefault: number, planMaxActiveJobs: number | null | undefined): number {
  return typeof planMaxActiveJobs === 'number' ? Math.max(1, planMaxActiveJobs) : laneDefault;
}

export class TenantSlots {
  constructor(
    private readonly redis: Redis,
    private readonly leaseMs: number,
  ) {}

  private key(lane: string, tenantId: string): string {
    return `enclave:slots:${lane}:${tenantId}`;
  }

  async acquire(lane: string, tenantId: string, jobId: string, cap: number): Promise<boolean> {
    const r = await this.redis.eval(ACQUIRE, 1, this.key(lane, tenantId), Date.now(), jobId, cap, this.leaseMs);
    return r === 1;
  }

  /** Keeps the lease while the job runs (call every leaseMs / 3). */
  async renew(lane: string, tenantId: string, jobId: string): Promise<void> {
    await this.redis.zadd(this.key(lane, tenantId), 'XX', Date.now() + this.leaseMs, jobId);
  }

  async release(lane: string, tenantId: string, jobId: string): Promise<void> {
    await this.redis.zrem(this.key(lane, tenantId), jobId);
  }
}
