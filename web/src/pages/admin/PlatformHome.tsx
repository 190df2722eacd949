import { api, type ListPage } from '../../api.js';
import { DataTable } from '../../components/DataTable.js';
import { OrgSwitcher } from '../../components/OrgSwitcher.js';
import { ErrorNote, formatCost, formatNumber, PageTitle, Spinner } from '../../components/ui.js';
import { Link } from '../../router.js';
import { tenantPath, useAction, useLoad } from './common.js';

interface Tenant {
  id: string;
  slug: string;
  name: string;
  status: string;
  plan: string | null;
}
interface Check {
  status: 'ok' | 'degraded' | 'fail';
  detail?: string;
}
interface Usage {
  total: { requests: number; total_tokens: number; cost_micros: number };
}

/** At most this many tenants' usage is summed on the page (one request each). */
const USAGE_TENANTS = 25;

/**
 * The platform administrator's home when no organisation is chosen: tenants, health,
 * licence and this month's usage across organisations. Every call names a real id.
 */
export function PlatformHome() {
  const act = useAction();
  const data = useLoad(async () => {
    const [tenants, ready, license] = await Promise.all([
      api<ListPage<Tenant>>('/admin/api/tenants?limit=200'),
      fetch('/readyz', { headers: { accept: 'application/json' } })
        .then((r) => r.json() as Promise<{ status: string; checks: Record<string, Check> }>)
        .catch(() => null),
      api<{ state: string; plan?: string; licence?: { daysRemaining?: number } }>('/admin/api/license').catch(() => null),
    ]);
    const usage = await Promise.all(
      tenants.data.slice(0, USAGE_TENANTS).map((t) =>
        api<Usage>(tenantPath(t.id, '/usage'))
          .then((u) => ({ tenant: t, total: u.total }))
          .catch(() => ({ tenant: t, total: null })),
      ),
    );
    return { tenants: tenants.data, ready, license, usage };
  }, []);
  const d = data.data;
  const sum = (k: 'requests' | 'total_tokens' | 'cost_micros') => (d ? d.usage.reduce((n, u) => n + (u.total?.[k] ?? 0), 0) : 0);

  return (
    <section className="page">
      <PageTitle>Platform overview</PageTitle>
      <p>
        You are not working in an organisation. Pick one to manage its members, keys and policy: <OrgSwitcher id="platform-org" label="Organisation" onError={act.setError} showAlways />
      </p>
      <ErrorNote error={act.error} title="Could not switch organisation." />
      <ErrorNote error={data.error} title="Could not load the platform overview." />
      {data.loading && !d ? <Spinner /> : null}
      {d ? (
        <>
          <div className="cards">
            <div className="card stat">
              <span className="stat-label">Organisations</span>
              <span className="stat-value" data-testid="platform-tenants">
                {formatNumber(d.tenants.length)}
              </span>
              <span className="small muted">{d.tenants.filter((t) => t.status !== 'active').length} suspended</span>
            </div>
            <div className="card stat">
              <span className="stat-label">Health</span>
              <span className={`stat-value ${d.ready?.status === 'ready' ? 'ok' : 'bad'}`}>{d.ready ? (d.ready.status === 'ready' ? 'Ready' : 'Not ready') : 'Unknown'}</span>
              <span className="small muted">
                {d.ready
                  ? Object.entries(d.ready.checks)
                      .filter(([, c]) => c.status !== 'ok')
                      .map(([n, c]) => `${n}: ${c.status}`)
                      .join(', ') || 'All checks pass'
                  : ''}
              </span>
            </div>
            <div className="card stat">
              <span className="stat-label">Licence</span>
              <span className="stat-value">{d.license?.state ?? '—'}</span>
              <span className="small muted">
                <Link to="/admin/license">Licence details</Link>
              </span>
            </div>
            <div className="card stat">
              <span className="stat-label">Usage this month (all organisations)</span>
              <span className="stat-value">{formatNumber(sum('total_tokens'))} tokens</span>
              <span className="small muted">
                {formatNumber(sum('requests'))} requests · {formatCost(sum('cost_micros'))}
              </span>
            </div>
          </div>
          <h2>Organisations</h2>
          <DataTable
            caption="Organisations and their usage this month"
            rows={d.usage}
            rowKey={(u) => u.tenant.id}
            search={({ tenant: t }) => `${t.name} ${t.slug} ${t.plan ?? ''}`}
            empty="No organisations yet."
            initialSort={{ key: 'tokens', desc: true }}
            columns={[
              {
                key: 'org',
                header: 'Organisation',
                sort: ({ tenant: t }) => t.name || t.slug,
                cell: ({ tenant: t }) => (
                  <>
                    {t.name || t.slug} <span className="muted small">({t.slug})</span>
                  </>
                ),
              },
              { key: 'status', header: 'Status', sort: ({ tenant: t }) => t.status, cell: ({ tenant: t }) => <span className={`tag tag-${t.status}`}>{t.status}</span> },
              { key: 'plan', header: 'Plan', sort: ({ tenant: t }) => t.plan, cell: ({ tenant: t }) => t.plan ?? '—' },
              { key: 'tokens', header: 'Tokens', num: true, sort: ({ total }) => total?.total_tokens, cell: ({ total }) => formatNumber(total?.total_tokens) },
              { key: 'cost', header: 'Cost', num: true, sort: ({ total }) => total?.cost_micros, cell: ({ total }) => formatCost(total?.cost_micros) },
            ]}
          />
          {d.tenants.length > USAGE_TENANTS ? <p className="muted small">Usage is summed over the first {USAGE_TENANTS} organisations.</p> : null}
          <p>
            <Link to="/admin/tenants">Manage organisations</Link>
          </p>
        </>
      ) : null}
    </section>
  );
}
