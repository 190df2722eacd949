import { useCallback, useEffect, useState } from 'react';
import { api } from '../api.js';
import { isAdmin, useSession } from '../session.js';

interface BannerItem {
  level: 'info' | 'warning' | 'critical';
  message: string;
}

/** A metering soft-limit alert (GET /admin/api/tenants/:id/notifications, not dismissed). */
interface UsageNotification {
  id: string;
  window: string;
  limit: string;
  threshold: number;
  used: number;
  limit_value: number;
}

const LIMIT_LABEL: Record<string, string> = {
  monthly_tokens: 'monthly token',
  monthly_cost_micros: 'monthly cost',
  requests_per_minute: 'requests-per-minute',
  tokens_per_minute: 'tokens-per-minute',
  concurrent_requests: 'concurrent-request',
};

function usageMessage(n: UsageNotification): string {
  const cost = n.limit === 'monthly_cost_micros';
  const fmt = (v: number) => (cost ? `$${(v / 1_000_000).toFixed(2)}` : v.toLocaleString());
  return `Usage alert: your organisation has reached ${n.threshold}% of its ${LIMIT_LABEL[n.limit] ?? n.limit} limit for ${n.window} (${fmt(n.used)} of ${fmt(n.limit_value)}).${n.threshold >= 100 ? ' Requests beyond the limit are refused.' : ''}`;
}

/**
 * Licence banners (expiring, grace, lapsed, test mode) for the people they are meant for,
 * and, for tenant admins, metering's soft-limit alerts (dismissable).
 */
export function Banner() {
  const { session } = useSession();
  const tenantId = session.tenant?.id ?? null;
  const admin = isAdmin(session);
  const [items, setItems] = useState<BannerItem[]>([]);
  const [usage, setUsage] = useState<UsageNotification[]>([]);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    api<{ banners: BannerItem[] }>('/api/ui/banners')
      .then((r) => setItems(r.banners))
      .catch(() => setItems([]));
  }, []);
  useEffect(() => {
    setUsage([]);
    if (!admin || !tenantId) return;
    api<{ data: UsageNotification[] }>(`/admin/api/tenants/${encodeURIComponent(tenantId)}/notifications`)
      .then((r) => setUsage(r.data))
      .catch(() => setUsage([]));
  }, [admin, tenantId]);

  const dismiss = useCallback(
    async (n: UsageNotification) => {
      setError(null);
      try {
        await api(`/admin/api/tenants/${encodeURIComponent(tenantId!)}/notifications/${encodeURIComponent(n.id)}/dismiss`, { body: {} });
        setUsage((cur) => cur.filter((x) => x.id !== n.id));
      } catch (e) {
        setError((e as Error).message);
      }
    },
    [tenantId],
  );

  if (!items.length && !usage.length) return null;
  return (
    <div className="banners">
      {items.map((b, i) => (
        <div key={i} className={`banner banner-${b.level}`} role={b.level === 'critical' ? 'alert' : 'status'}>
          {b.message}
        </div>
      ))}
      {usage.map((n) => (
        <div key={n.id} className={`banner banner-${n.threshold >= 100 ? 'critical' : 'warning'} banner-usage`} role="status" data-testid="usage-banner">
          <span>{usageMessage(n)}</span>
          <button type="button" className="btn btn-small" onClick={() => void dismiss(n)} aria-label={`Dismiss the ${n.threshold}% ${LIMIT_LABEL[n.limit] ?? n.limit} alert`}>
            Dismiss
          </button>
        </div>
      ))}
      {error ? (
        <div className="banner banner-critical" role="alert">
          Could not dismiss the alert: {error}
        </div>
      ) : null}
    </div>
  );
}
