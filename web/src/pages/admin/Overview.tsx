import { useMemo } from 'react';
import { api, type ListPage } from '../../api.js';
import { Chart } from '../../components/Chart.js';
import { ErrorNote, formatNumber, PageTitle, Spinner } from '../../components/ui.js';
import { Link } from '../../router.js';
import { useSession } from '../../session.js';
import { tenantPath, useLoad, useTenantId } from './common.js';

interface AuditEvent {
  at: number;
  outcome: 'allowed' | 'denied';
  action: string;
}

const HOUR = 3600_000;

export function Overview() {
  const tenantId = useTenantId();
  const { session } = useSession();
  const platform = session.user.platform_admin;
  const data = useLoad(async () => {
    const [members, keys, audit, license] = await Promise.all([
      tenantId ? api<ListPage<unknown>>(tenantPath(tenantId, '/members?limit=200')) : null,
      tenantId ? api<ListPage<{ status: string }>>(tenantPath(tenantId, '/keys?limit=200')) : null,
      platform ? api<ListPage<AuditEvent>>('/admin/api/audit?limit=1000') : tenantId ? api<ListPage<AuditEvent>>(tenantPath(tenantId, '/audit?limit=1000')) : null,
      platform ? api<{ state: string; plan: string; licence?: { daysRemaining: number } }>('/admin/api/license').catch(() => null) : null,
    ]);
    return { members, keys, audit, license };
  }, [tenantId, platform]);

  const chart = useMemo(() => {
    const events = data.data?.audit?.data ?? [];
    const end = Math.ceil(Date.now() / HOUR) * HOUR;
    const x: number[] = [];
    const allowed: number[] = [];
    const denied: number[] = [];
    for (let t = end - 24 * HOUR; t < end; t += HOUR) {
      x.push(t / 1000);
      allowed.push(0);
      denied.push(0);
    }
    for (const e of events) {
      const i = Math.floor((e.at - (end - 24 * HOUR)) / HOUR);
      if (i < 0 || i >= x.length) continue;
      if (e.outcome === 'denied') denied[i]!++;
      else allowed[i]!++;
    }
    return {
      x,
      series: [
        { label: 'Allowed', values: allowed, color: '#1f6f43' },
        { label: 'Denied', values: denied, color: '#b42318' },
      ],
    };
  }, [data.data]);

  const d = data.data;
  const denied24 = chart.series[1]!.values.reduce((a, b) => a + b, 0);
  return (
    <section className="page">
      <PageTitle>Overview</PageTitle>
      <ErrorNote error={data.error} title="Could not load the overview." />
      {data.loading && !d ? <Spinner /> : null}
      {d ? (
        <>
          <div className="cards">
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
            <div className="card stat">
              <span className="stat-label">Denied actions (24 h)</span>
              <span className="stat-value">{formatNumber(denied24)}</span>
              <Link to="/admin/audit">Audit log</Link>
            </div>
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
          <div className="card">
            <Chart title="Audited actions per hour, last 24 hours" x={chart.x} series={chart.series} />
          </div>
        </>
      ) : null}
    </section>
  );
}
