import { useMemo, useState } from 'react';
import { api, type ListPage } from '../../api.js';
import { Chart } from '../../components/Chart.js';
import { type Column, DataTable } from '../../components/DataTable.js';
import { ErrorNote, formatCost, formatNumber, PageTitle, Spinner } from '../../components/ui.js';
import { dailySeries, type UsageRow } from '../../lib/usage.js';
import { Adoption } from './Adoption.js';
import { CacheSummary } from './CacheSummary.js';
import { tenantPath, useLoad, useTenantId } from './common.js';

/** GET /admin/api/tenants/:id/usage (metering reports): rows grouped by `by`, this month or `month`. */
interface Report {
  month: string;
  timezone: string;
  by: string;
  rows: UsageRow[];
  total: Omit<UsageRow, 'group'>;
}
type By = 'user' | 'team' | 'key' | 'model' | 'provider' | 'boundary' | 'day';
const BY_LABEL: Record<By, string> = { user: 'Member', team: 'Team', key: 'API key', model: 'Model', provider: 'Provider', boundary: 'Data boundary', day: 'Day' };

/**
 * Usage analytics: spend and tokens by member, key, model, provider, boundary or day for a
 * month, filtered by member/key/model, with names instead of ids, sortable columns, the
 * share of the month's tokens, per-day bars for the same filter, and CSV export.
 */
export function UsagePage() {
  const tenantId = useTenantId();
  // This month by default (the report's own month follows the tenant's time zone; a browser a
  // day off at a month's edge picks a neighbour, which the summary line names).
  const [month, setMonth] = useState(() => new Date().toISOString().slice(0, 7));
  const [by, setBy] = useState<By>('user');
  const [user, setUser] = useState('');
  const [key, setKey] = useState('');
  const [model, setModel] = useState('');
  const [modelDraft, setModelDraft] = useState('');
  const filter = new URLSearchParams({ ...(month ? { month } : {}), ...(user ? { user } : {}), ...(key ? { key } : {}), ...(model ? { model } : {}) });
  const qs = filter.toString();

  const names = useLoad(async () => {
    const [members, keys] = await Promise.all([
      api<ListPage<{ id: string; email: string; name: string | null }>>(tenantPath(tenantId, '/members?limit=200')),
      api<ListPage<{ id: string; name: string; prefix: string }>>(tenantPath(tenantId, '/keys?limit=200')),
    ]);
    return { members: members.data, keys: keys.data };
  }, [tenantId]);
  const report = useLoad(() => api<Report>(tenantPath(tenantId, `/usage?by=${by}&${qs}`)), [tenantId, by, qs]);
  const daily = useLoad(() => api<Report>(tenantPath(tenantId, `/usage?by=day&${qs}`)), [tenantId, qs]);

  const rowLabels = new Map((report.data?.rows ?? []).map((r) => [r.group, (r as UsageRow & { label?: string }).label] as const).filter((e): e is [string, string] => e[0] !== null && e[1] !== undefined));
  const nameOf = (g: string | null): string => {
    if (g === null) return by === 'key' ? 'Web chat (no key)' : '—';
    if (by === 'user') {
      const m = names.data?.members.find((x) => x.id === g);
      return m ? (m.name ? `${m.name} (${m.email})` : m.email) : g;
    }
    if (by === 'team') return rowLabels.get(g) ?? g; // the report names its teams (calls without a team are not in it)
    if (by === 'key') {
      const k = names.data?.keys.find((x) => x.id === g);
      return k ? `${k.name} (${k.prefix}…)` : g;
    }
    return g;
  };
  const total = report.data?.total.total_tokens ?? 0;
  const series = useMemo(() => (daily.data ? dailySeries(daily.data.month, daily.data.rows) : null), [daily.data]);
  const charts = useMemo(
    () =>
      series
        ? {
            tokens: [{ label: 'Tokens', values: series.tokens, color: '#1f6f43' }],
            cost: [{ label: 'Cost ($)', values: series.cost, color: '#8a5300' }],
          }
        : null,
    [series],
  );

  const columns: Column<UsageRow>[] = [
    { key: 'group', header: BY_LABEL[by], className: 'break', cell: (r) => nameOf(r.group), sort: (r) => nameOf(r.group) },
    {
      key: 'requests',
      header: 'Requests',
      num: true,
      sort: (r) => r.requests,
      cell: (r) => (
        <>
          {formatNumber(r.requests)}
          {r.errors ? <span className="muted small"> ({r.errors} failed)</span> : null}
        </>
      ),
    },
    { key: 'tokens', header: 'Tokens', num: true, sort: (r) => r.total_tokens, cell: (r) => formatNumber(r.total_tokens) },
    { key: 'share', header: 'Share', num: true, cell: (r) => (total ? `${Math.round((r.total_tokens / total) * 100)}%` : '—') },
    { key: 'cost', header: 'Cost', num: true, sort: (r) => r.cost_micros, cell: (r) => formatCost(r.cost_micros) },
  ];

  return (
    <section className="page">
      <PageTitle>Usage analytics</PageTitle>
      <form
        className="form form-row card"
        aria-label="Usage filters"
        onSubmit={(e) => {
          e.preventDefault();
          setModel(modelDraft.trim());
        }}
      >
        <label className="field">
          <span>Group by</span>
          <select value={by} onChange={(e) => setBy(e.target.value as By)}>
            {(Object.keys(BY_LABEL) as By[]).map((b) => (
              <option key={b} value={b}>
                {BY_LABEL[b]}
              </option>
            ))}
          </select>
        </label>
        <label className="field">
          <span>Month</span>
          <input type="month" value={month} required onChange={(e) => setMonth(e.target.value)} />
        </label>
        <label className="field">
          <span>Member</span>
          <select value={user} onChange={(e) => setUser(e.target.value)}>
            <option value="">All members</option>
            {names.data?.members.map((m) => (
              <option key={m.id} value={m.id}>
                {m.name || m.email}
              </option>
            ))}
          </select>
        </label>
        <label className="field">
          <span>API key</span>
          <select value={key} onChange={(e) => setKey(e.target.value)}>
            <option value="">All keys</option>
            {names.data?.keys.map((k) => (
              <option key={k.id} value={k.id}>
                {k.name} ({k.prefix}…)
              </option>
            ))}
          </select>
        </label>
        <label className="field">
          <span>Model</span>
          <input value={modelDraft} placeholder="All models" onChange={(e) => setModelDraft(e.target.value)} onBlur={() => setModel(modelDraft.trim())} />
        </label>
        <a className="btn" href={tenantId ? tenantPath(tenantId, `/usage?by=${by}&${qs}&format=csv`) : undefined} download>
          Export CSV
        </a>
      </form>
      <ErrorNote error={report.error ?? names.error} title="Could not load usage." />
      {report.loading && !report.data ? <Spinner /> : null}
      {report.data ? (
        <>
          <p className="muted" data-testid="usage-summary">
            {report.data.month} ({report.data.timezone}): {formatNumber(report.data.total.requests)} requests, {formatNumber(total)} tokens, {formatCost(report.data.total.cost_micros)}
          </p>
          <CacheSummary tenantId={tenantId} />
          {charts && series ? (
            <div className="chart-grid">
              <div className="card">
                <Chart title="Tokens per day" x={series.x} series={charts.tokens} />
              </div>
              <div className="card">
                <Chart title="Cost per day" x={series.x} series={charts.cost} format={(n) => `$${n.toFixed(2)}`} integer={false} />
              </div>
            </div>
          ) : null}
          <DataTable
            caption={`Usage by ${BY_LABEL[by].toLowerCase()}`}
            rows={report.data.rows}
            columns={columns}
            rowKey={(r) => r.group ?? 'none'}
            search={(r) => nameOf(r.group)}
            empty="No usage for this selection."
            initialSort={{ key: 'tokens', desc: true }}
            testId="usage-table"
          />
        </>
      ) : null}
      <Adoption />
    </section>
  );
}
