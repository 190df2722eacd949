import type { Clock } from '../clock.js';
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
 * both processes) do not repeat it; concurrent scrapes share one read. Labelled by tenant
 * slug, bounded by the tenants.
 */
export function quotaRatios(o: { repo: MeteringRepo; plans: PlanService; clock: Clock; ttlMs?: number }): () => Promise<readonly QuotaRatio[]> {
  const ttl = o.ttlMs ?? 5000;
  let cached: { at: number; rows: Promise<QuotaRatio[]> } | undefined;
  const read = async (now: number): Promise<QuotaRatio[]> => {
    const rows: QuotaRatio[] = [];
    for (const id of await o.repo.activeTenantIds()) {
      const t = await o.plans.tenantFresh(id);
      if (!t) continue;
      const w = monthWindow(now, t.timezone);
      let used: { tokens: number; cost: number } | undefined;
      for (const [limit, field] of LIMITS) {
        const max = t.plan.limits[limit];
        if (typeof max !== 'number' || max <= 0) continue;
        used ??= await o.repo.usageSince(id, w.start, w.end);
        rows.push({ tenant: t.slug, limit, ratio: used[field] / max });
      }
    }
    return rows;
  };
  return () => {
    const now = o.clock.now();
    if (cached && now - cached.at < ttl && now >= cached.at) return cached.rows;
    const c = { at: now, rows: read(now) };
    cached = c;
    // A failed read is not cached: the next scrape tries again.
    c.rows.catch(() => {
      if (cached === c) cached = undefined;
    });
    return c.rows;
  };
}
