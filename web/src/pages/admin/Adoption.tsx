import { useMemo, useState } from 'react';
import { api, type AdoptionView } from '../../api.js';
import { Chart } from '../../components/Chart.js';
import { DataTable } from '../../components/DataTable.js';
import { ErrorNote, formatNumber, Spinner } from '../../components/ui.js';
import { tenantPath, useLoad, useTenantId } from './common.js';

const pct = (share: number) => `${Math.round(share * 100)} %`;
const weekLabel = (day: string) => new Date(`${day}T00:00:00Z`).toLocaleDateString(undefined, { day: 'numeric', month: 'short', timeZone: 'UTC' });

/** Usage analytics' adoption view: who uses the platform at all, per day and week, as a share of the members. */
export function Adoption() {
  const tenant = useTenantId();
  const [days, setDays] = useState(30);
  const data = useLoad(() => api<AdoptionView>(tenantPath(tenant, `/adoption?days=${days}`)), [tenant, days]);
  const chart = useMemo(() => {
    const d = data.data?.days;
    if (!d) return null;
    return { x: d.map((r) => Date.parse(`${r.day}T00:00:00Z`) / 1000), series: [{ label: 'Active people', values: d.map((r) => r.active_users), color: '#1d4ed8' }] };
  }, [data.data]);
  const v = data.data;
  return (
    <section className="adoption" aria-labelledby="adoption-title">
      <h2 id="adoption-title" className="section-title">
        Adoption
      </h2>
      <label className="inline-field">
        <span>Period</span>
        <select value={days} onChange={(e) => setDays(Number(e.target.value))}>
          <option value={7}>Last 7 days</option>
          <option value={30}>Last 30 days</option>
          <option value={90}>Last 90 days</option>
        </select>
      </label>
      <ErrorNote error={data.error} title="Could not load adoption." />
      {data.loading && !v ? <Spinner /> : null}
      {v ? (
        <>
          <div className="cards" data-testid="adoption-summary">
            <div className="card stat">
              <span className="stat-label">Active people in the period</span>
              <span className="stat-value">{formatNumber(v.active_users)}</span>
            </div>
            <div className="card stat">
              <span className="stat-label">Members</span>
              <span className="stat-value">{formatNumber(v.members)}</span>
            </div>
            <div className="card stat">
              <span className="stat-label">Share of members active</span>
              <span className="stat-value">{pct(v.share)}</span>
            </div>
          </div>
          {chart ? (
            <div className="card">
              <Chart title={`Active people per day (${v.timezone})`} x={chart.x} series={chart.series} />
            </div>
          ) : null}
          <DataTable
            caption="Active people per week"
            showCaption
            rows={v.weeks}
            rowKey={(w) => w.week}
            empty="No weeks in this period."
            initialSort={{ key: 'week' }}
            columns={[
              { key: 'week', header: 'Week of', cell: (w) => weekLabel(w.week), sort: (w) => w.week },
              { key: 'active', header: 'Active people', num: true, cell: (w) => formatNumber(w.active_users), sort: (w) => w.active_users },
              { key: 'share', header: 'Share of members', num: true, cell: (w) => pct(w.share), sort: (w) => w.share },
            ]}
          />
          <p className="muted small">A person counts as active on a day when they made at least one AI call (chat or their own API keys). Days and weeks follow the organisation's time zone.</p>
        </>
      ) : null}
    </section>
  );
}
