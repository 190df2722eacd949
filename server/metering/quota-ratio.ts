import type { Clock } from '../clock.js';
import type { Db } from '../db/connection.js';
import type { MeteringRepo } from '../db/repos/metering.js';
import type { QuotaRatio } from '../metrics/registry.js';
import { monthWindow } from './limits.js';
import type { PlanService } from './plans.js';

const LIMITS = [
  ['monthly_tokens', 'tokens'],
  ['monthly_cost_micros', 'cost'],
] as const;

/**
 * enclave_quota_used_ratio at scrape time: for every active tenant whose plan sets a
 * monthly token or cost limit, this month's usage (the rollups, in the tenant's time zone)
 * over that limit. One small query per tenant, cached for `ttlMs` so frequent scrapes (or
 * both processes) do not repeat it. Labelled by tenant slug, bounded by the tenants.
 */
export function quotaRatios(o: { db: Db; repo: MeteringRepo; plans: PlanService; clock: Clock; ttlMs?: number }): () => readonly QuotaRatio[] {
  const ttl = o.ttlMs ?? 5000;
  const active = o.db.$client.prepare("SELECT id FROM tenants WHERE status = 'active' ORDER BY slug").pluck();
  let cached: { at: number; rows: QuotaRatio[] } | undefined;
  return () => {
    const now = o.clock.now();
    if (cached && now - cached.at < ttl && now >= cached.at) return cached.rows;
    const rows: QuotaRatio[] = [];
    for (const id of active.all() as string[]) {
      const t = o.plans.tenant(id);
      if (!t) continue;
      const w = monthWindow(now, t.timezone);
      let used: { tokens: number; cost: number } | undefined;
      for (const [limit, field] of LIMITS) {
        const max = t.plan.limits[limit];
        if (typeof max !== 'number' || max <= 0) continue;
        used ??= o.repo.usageSince(id, w.start, w.end);
        rows.push({ tenant: t.slug, limit, ratio: used[field] / max });
      }
    }
    cached = { at: now, rows };
    return rows;
  };
}
