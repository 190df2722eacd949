import { useMemo } from 'react';
import { api, type ListPage } from '../../api.js';
import { Chart } from '../../components/Chart.js';
import { ErrorNote, formatCost, formatNumber, PageTitle, Spinner } from '../../components/ui.js';
import { dailySeries, type UsageRow } from '../../lib/usage.js';
import { Link } from '../../router.js';
import { useSession } from '../../session.js';
import { tenantPath, useLoad, useTenantId } from './common.js';

interface UsageReport {
  month: string;
  timezone: string;
  rows: UsageRow[];
  total: Omit<UsageRow, 'group'>;
}

const DAY = 86_400_000;

/** The organisation at a glance: usage this month from metering (requests, tokens, cost by day), members, keys, denials, licence. */
export function Overview() {
  const tenantId = useTenantId();
  const { session } = useSession();
  const platform = session.user.platform_admin;
  const data = useLoad(async () => {
    const since = Date.now() - DAY;
    const [members, keys, usage, denied, license] = await Promise.all([
      tenantId ? api<ListPage<unknown>>(tenantPath(tenantId, '/members?limit=200')) : null,
      tenantId ? api<ListPage<{ status: string }>>(tenantPath(tenantId, '/keys?limit=200')) : null,
      tenantId ? api<UsageReport>(tenantPath(tenantId, '/usage?by=day')) : null,
      tenantId ? api<ListPage<unknown>>(tenantPath(tenantId, `/audit?outcome=denied&since=${since}&limit=1000`)).catch(() => null) : null,
      platform ? api<{ state: string; plan: string; licence?: { daysRemaining: number } }>('/admin/api/license').catch(() => null) : null,
    ]);
    return { members, keys, usage, denied, license };
  }, [tenantId, platform]);

  const d = data.data;
  const series = useMemo(() => (d?.usage ? dailySeries(d.usage.month, d.usage.rows) : null), [d]);
  const charts = useMemo(
    () =>
      series
        ? {
            requests: [
              { label: 'Requests', values: series.requests, color: '#1d4ed8' },
              { label: 'Errors', values: series.errors, color: '#b42318' },
            ],
            tokens: [{ label: 'Tokens', values: series.tokens, color: '#1f6f43' }],
            cost: [{ label: 'Cost ($)', values: series.cost, color: '#8a5300' }],
          }
        : null,
    [series],
  );

  return (
    <section className="page">
      <PageTitle>Overview</PageTitle>
      <ErrorNote error={data.error} title="Could not load the overview." />
      {data.loading && !d ? <Spinner /> : null}
      {d ? (
        <>
          <div className="cards">
            {d.usage ? (
              <>
                <div className="card stat">
                  <span className="stat-label">Requests this month</span>
                  <span className="stat-value" data-testid="overview-requests">
                    {formatNumber(d.usage.total.requests)}
                  </span>
                  <span className="small muted">{formatNumber(d.usage.total.errors)} errors</span>
                </div>
                <div className="card stat">
                  <span className="stat-label">Tokens this month</span>
                  <span className="stat-value">{formatNumber(d.usage.total.total_tokens)}</span>
                  <span className="small muted">
                    {formatNumber(d.usage.total.prompt_tokens)} in · {formatNumber(d.usage.total.completion_tokens)} out
                  </span>
                </div>
                <div className="card stat">
                  <span className="stat-label">Cost this month</span>
                  <span className="stat-value">{formatCost(d.usage.total.cost_micros)}</span>
                  <Link to="/admin/plans">Plans & quotas</Link>
                </div>
              </>
            ) : null}
            <div className="card stat">
              <span className="stat-label">Members</span>
              <span className="stat-value">{formatNumber(d.members?.data.length)}</span>
              <Link to="/admin/members">Manage members</Link>
            </div>
            <div className="card stat">
              <span className="stat-label">Active API keys</span>
              <span className="stat-value">{formatNumber(d.keys?.data.filter((k) => k.status === 'active').length)}</span>
              <Link to="/admin/keys">Manage keys</Link>
            </div>
            {d.denied ? (
              <div className="card stat">
                <span className="stat-label">Denied actions (24 h)</span>
                <span className="stat-value">{formatNumber(d.denied.data.length)}</span>
                <Link to="/admin/audit">Audit log</Link>
              </div>
            ) : null}
            {d.license ? (
              <div className="card stat">
                <span className="stat-label">Licence</span>
                <span className={`stat-value state-${d.license.state}`}>{d.license.state}</span>
                <span className="small muted">
                  {d.license.plan}
                  {d.license.licence ? ` · ${d.license.licence.daysRemaining} days left` : ''}
                </span>
                <Link to="/admin/license">Licence details</Link>
              </div>
            ) : null}
          </div>
          {series && charts && d.usage ? (
            <>
              <h2>
                Usage by day, {d.usage.month} <span className="muted small">({d.usage.timezone})</span>
              </h2>
              <div className="chart-grid">
                <div className="card">
                  <Chart title="Requests and errors per day" x={series.x} series={charts.requests} />
                </div>
                <div className="card">
                  <Chart title="Tokens per day" x={series.x} series={charts.tokens} />
                </div>
                <div className="card">
                  <Chart title="Cost per day" x={series.x} series={charts.cost} format={(n) => `$${n.toFixed(2)}`} integer={false} />
                </div>
              </div>
            </>
          ) : null}
        </>
      ) : null}
    </section>
  );
}
