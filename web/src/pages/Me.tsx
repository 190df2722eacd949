import { useMemo } from 'react';
import { api } from '../api.js';
import { humanDate } from '../chat/explain.js';
import { Chart } from '../components/Chart.js';
import { DataTable } from '../components/DataTable.js';
import { ErrorNote, formatCost, formatNumber, PageTitle, Spinner } from '../components/ui.js';
import { dailySeries, type UsageRow } from '../lib/usage.js';
import { Link } from '../router.js';
import { useSession } from '../session.js';
import { useLoad } from './admin/common.js';
import { MyKeys } from './MyKeys.js';

/** GET /api/ui/usage: metering's self-service report (as /v1/enclave/usage) plus the month by day. */
interface MyUsage {
  month: string;
  timezone: string;
  resets_at: string;
  plan: string | null;
  usage: { tokens: number; cost_micros: number; requests: number };
  remaining: { monthly_tokens: number | null; monthly_cost_micros: number | null };
  levels: { level: string; limits: Record<string, number>; used: { tokens: number; cost_micros: number; requests: number } }[];
  by_model: UsageRow[];
  by_day: UsageRow[];
  self_service_keys: boolean;
  can_create_keys: boolean;
}

const LEVEL_LABEL: Record<string, string> = { user: 'You', key: 'This key', team: 'Your team', tenant: 'Your organisation' };

/** The signed-in user's own usage this month (by day and model), remaining quota, and own API keys. */
export function MePage() {
  const { session } = useSession();
  const usage = useLoad(() => api<MyUsage>('/api/ui/usage'), [session.tenant?.id]);
  const u = usage.data;
  const series = useMemo(() => (u ? dailySeries(u.month, u.by_day) : null), [u]);
  // Tokens and requests have different units: one chart each, each with its own axis.
  const charts = useMemo(
    () =>
      series
        ? {
            tokens: [{ label: 'Tokens', values: series.tokens, color: '#1f6f43' }],
            requests: [{ label: 'Requests', values: series.requests, color: '#1d4ed8' }],
          }
        : null,
    [series],
  );
  const quotas = (u?.levels ?? []).filter((l) => typeof l.limits.monthly_tokens === 'number' || typeof l.limits.monthly_cost_micros === 'number');

  return (
    <section className="page">
      <PageTitle>My usage</PageTitle>
      <p>
        Signed in as <strong>{session.user.email}</strong>
        {session.role ? ` (${session.role})` : ''}.
      </p>
      <ErrorNote error={usage.error} title="Could not load your usage." />
      {usage.loading && !u ? <Spinner label="Loading your usage…" /> : null}
      {u && series ? (
        <>
          <div className="cards">
            <div className="card stat">
              <span className="stat-label">Tokens in {u.month}</span>
              <span className="stat-value" data-testid="my-tokens">
                {formatNumber(u.usage.tokens)}
              </span>
              <span className="small muted">{formatNumber(u.usage.requests)} requests</span>
            </div>
            <div className="card stat">
              <span className="stat-label">Cost in {u.month}</span>
              <span className="stat-value">{formatCost(u.usage.cost_micros)}</span>
            </div>
            <div className="card stat">
              <span className="stat-label">Tokens left this month</span>
              <span className="stat-value" data-testid="my-remaining">
                {u.remaining.monthly_tokens === null ? 'No limit' : formatNumber(u.remaining.monthly_tokens)}
              </span>
              <span className="small muted">
                {u.remaining.monthly_cost_micros === null ? 'No cost limit' : `${formatCost(u.remaining.monthly_cost_micros)} budget left`} · resets {humanDate(u.resets_at)}
              </span>
            </div>
          </div>
          {charts ? (
            <div className="chart-grid">
              <div className="card">
                <Chart title={`My tokens per day, ${u.month}`} x={series.x} series={charts.tokens} />
              </div>
              <div className="card">
                <Chart title={`My requests per day, ${u.month}`} x={series.x} series={charts.requests} />
              </div>
            </div>
          ) : null}
          {quotas.length ? (
            <div className="table-wrap" tabIndex={0}>
              <table className="table">
                <caption>Monthly quotas that apply to you</caption>
                <thead>
                  <tr>
                    <th scope="col">Level</th>
                    <th scope="col">Tokens used / limit</th>
                    <th scope="col">Cost used / limit</th>
                  </tr>
                </thead>
                <tbody>
                  {quotas.map((l) => (
                    <tr key={l.level}>
                      <th scope="row">{LEVEL_LABEL[l.level] ?? l.level}</th>
                      <td>
                        {formatNumber(l.used.tokens)} / {typeof l.limits.monthly_tokens === 'number' ? formatNumber(l.limits.monthly_tokens) : 'no limit'}
                        {typeof l.limits.monthly_tokens === 'number' ? <Meter used={l.used.tokens} limit={l.limits.monthly_tokens} label={`${LEVEL_LABEL[l.level] ?? l.level}: tokens`} /> : null}
                      </td>
                      <td>
                        {formatCost(l.used.cost_micros)} / {typeof l.limits.monthly_cost_micros === 'number' ? formatCost(l.limits.monthly_cost_micros) : 'no limit'}
                        {typeof l.limits.monthly_cost_micros === 'number' ? <Meter used={l.used.cost_micros} limit={l.limits.monthly_cost_micros} label={`${LEVEL_LABEL[l.level] ?? l.level}: cost`} /> : null}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          ) : null}
          <DataTable
            caption={`My usage by model, ${u.month}`}
            showCaption
            rows={u.by_model}
            rowKey={(r) => r.group ?? '—'}
            empty={
              <>
                No usage this month yet. <Link to="/chat">Start a chat</Link>.
              </>
            }
            initialSort={{ key: 'tokens', desc: true }}
            testId="my-usage-by-model"
            columns={[
              { key: 'model', header: 'Model', cell: (r) => r.group ?? '—', sort: (r) => r.group },
              { key: 'requests', header: 'Requests', num: true, cell: (r) => formatNumber(r.requests), sort: (r) => r.requests },
              { key: 'tokens', header: 'Tokens', num: true, cell: (r) => formatNumber(r.total_tokens), sort: (r) => r.total_tokens },
              { key: 'cost', header: 'Cost', num: true, cell: (r) => formatCost(r.cost_micros), sort: (r) => r.cost_micros },
            ]}
          />
          <MyKeys canCreate={u.can_create_keys} selfService={u.self_service_keys} />
        </>
      ) : null}
    </section>
  );
}

/** A quota bar (the native <meter>, styled by the stylesheet: no inline styles). */
function Meter({ used, limit, label }: { used: number; limit: number; label: string }) {
  return <meter className="quota" min={0} max={Math.max(limit, 1)} low={limit * 0.8} high={limit * 0.95} optimum={0} value={Math.min(used, limit)} aria-label={label} />;
}
