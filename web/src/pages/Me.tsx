import { useMemo, useState, type FormEvent } from 'react';
import { api, ApiError, type ListPage } from '../api.js';
import { humanDate } from '../chat/explain.js';
import { Chart } from '../components/Chart.js';
import { CopyButton } from '../components/CopyButton.js';
import { ErrorNote, formatCost, formatNumber, formatTime, PageTitle, Spinner } from '../components/ui.js';
import { dailySeries, type UsageRow } from '../lib/usage.js';
import { Link } from '../router.js';
import { useSession } from '../session.js';
import { tenantPath, useAction, useLoad, ActionStatus } from './admin/common.js';

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
interface Key {
  id: string;
  name: string;
  prefix: string;
  status: string;
  scopes: string[];
  last_used_at: number | null;
  created_at: number;
}

const LEVEL_LABEL: Record<string, string> = { user: 'You', key: 'This key', tenant: 'Your organisation' };

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
          {u.by_model.length === 0 ? (
            <p className="muted">
              No usage this month yet. <Link to="/chat">Start a chat</Link>.
            </p>
          ) : (
            <div className="table-wrap" tabIndex={0}>
              <table className="table" data-testid="my-usage-by-model">
                <caption>My usage by model, {u.month}</caption>
                <thead>
                  <tr>
                    <th scope="col">Model</th>
                    <th scope="col">Requests</th>
                    <th scope="col">Tokens</th>
                    <th scope="col">Cost</th>
                  </tr>
                </thead>
                <tbody>
                  {u.by_model.map((r) => (
                    <tr key={r.group ?? '—'}>
                      <td>{r.group ?? '—'}</td>
                      <td>{formatNumber(r.requests)}</td>
                      <td>{formatNumber(r.total_tokens)}</td>
                      <td>{formatCost(r.cost_micros)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
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

const MY_SCOPES = ['models:invoke', 'models:list', 'embeddings:create'];

function MyKeys({ canCreate, selfService }: { canCreate: boolean; selfService: boolean }) {
  const { session } = useSession();
  const tenantId = session.tenant?.id ?? null;
  const userId = session.user.id;
  const keys = useLoad(async () => {
    if (!tenantId) return null;
    try {
      return await api<ListPage<Key>>(tenantPath(tenantId, `/keys?owner=${encodeURIComponent(userId)}&limit=200`));
    } catch (e) {
      // Viewers may not hold keys at all.
      if (e instanceof ApiError && e.status === 403) return null;
      throw e;
    }
  }, [tenantId, userId]);
  const [name, setName] = useState('');
  const [secret, setSecret] = useState<{ name: string; secret: string } | null>(null);
  const act = useAction();
  if (!tenantId) return null;
  const mine = keys.data?.data ?? [];
  if (!canCreate && mine.length === 0 && !keys.error) {
    return (
      <>
        <h2>My API keys</h2>
        <p className="muted">{selfService ? 'Your role does not include API keys.' : "Your organisation's plan does not include self-service API keys. Ask an administrator for a key."}</p>
      </>
    );
  }
  const create = async (e: FormEvent) => {
    e.preventDefault();
    setSecret(null);
    await act.run('create', async () => {
      const k = await api<Key & { secret: string }>(tenantPath(tenantId, '/keys'), { body: { name, scopes: MY_SCOPES } });
      setSecret({ name: k.name, secret: k.secret });
      setName('');
      await keys.reload();
    });
  };
  const revoke = async (k: Key) => {
    if (!confirm(`Revoke your key “${k.name}”? Programs using it stop working at once.`)) return;
    await act.run(`revoke:${k.id}`, async () => {
      await api(tenantPath(tenantId, `/keys/${k.id}`), { method: 'DELETE' });
      await keys.reload();
      return `Key ${k.name} revoked.`;
    });
  };
  return (
    <>
      <h2>My API keys</h2>
      {canCreate ? (
        <form className="form form-row card" onSubmit={create} aria-label="Create my API key">
          <label className="field">
            <span>Key name</span>
            <input required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
          </label>
          <button className="btn btn-primary" type="submit" disabled={!!act.busy}>
            {act.busy === 'create' ? <Spinner label="Creating…" /> : 'Create key'}
          </button>
        </form>
      ) : null}
      <ActionStatus act={act} />
      {secret ? (
        <div className="note note-ok secret" role="status">
          <p>
            <strong>Key “{secret.name}” created.</strong> Copy it now: it is shown only once. It may call models ({MY_SCOPES.join(', ')}) as you.
          </p>
          <code className="secret-value" data-testid="my-key-secret">
            {secret.secret}
          </code>
          <CopyButton text={secret.secret} className="btn btn-small">
            Copy key
          </CopyButton>
        </div>
      ) : null}
      <ErrorNote error={keys.error} title="Could not load your keys." />
      {mine.length ? (
        <div className="table-wrap" tabIndex={0}>
          <table className="table">
            <caption className="sr-only">My API keys</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Prefix</th>
                <th scope="col">Status</th>
                <th scope="col">Last used</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {mine.map((k) => (
                <tr key={k.id}>
                  <td>{k.name}</td>
                  <td>
                    <code>{k.prefix}…</code>
                  </td>
                  <td>
                    <span className={`tag tag-${k.status}`}>{k.status}</span>
                  </td>
                  <td>{formatTime(k.last_used_at)}</td>
                  <td>
                    {k.status === 'active' ? (
                      <button type="button" className="btn btn-small btn-ghost" disabled={!!act.busy} onClick={() => void revoke(k)} aria-label={`Revoke ${k.name}`}>
                        Revoke
                      </button>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : keys.data ? (
        <p className="muted">You have no API keys.</p>
      ) : null}
    </>
  );
}
