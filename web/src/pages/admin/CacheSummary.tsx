import { api } from '../../api.js';
import { formatCost, formatNumber } from '../../components/ui.js';
import { tenantPath, useLoad } from './common.js';

/** GET /admin/api/tenants/:id/response-cache (server/gateway/cache/routes.ts). */
interface CacheView {
  enabled: boolean;
  keys: Record<string, boolean>;
  ttl_seconds: number;
  stats: { days: number; hits: number; misses: number; bypasses: number; hit_ratio: number | null; saved_cost_micros: number };
}

/**
 * The response cache's effect for the tenant (docs/cache.md): hit ratio and the cost the hits
 * saved over the last 30 days. Nothing is shown to a caller who may not read settings, nor
 * while the cache has never been on.
 */
export function CacheSummary({ tenantId }: { tenantId: string | null }) {
  const view = useLoad(() => api<CacheView>(tenantPath(tenantId, '/response-cache?days=30')), [tenantId]);
  const v = view.data;
  if (!v) return null;
  const on = v.enabled || Object.values(v.keys).some(Boolean);
  const s = v.stats;
  if (!on && s.hits + s.misses === 0) return null;
  return (
    <p className="muted" data-testid="cache-summary">
      Response cache ({on ? (v.enabled ? 'on' : 'on for some keys') : 'off'}), last {s.days} days: hit ratio {s.hit_ratio === null ? '—' : `${Math.round(s.hit_ratio * 100)}%`} ({formatNumber(s.hits)} hits, {formatNumber(s.misses)} misses), saved{' '}
      {formatCost(s.saved_cost_micros)}
    </p>
  );
}
