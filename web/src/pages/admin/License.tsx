import { useState, type ChangeEvent } from 'react';
import { api } from '../../api.js';
import { ErrorNote, formatNumber, Note, PageTitle, Spinner } from '../../components/ui.js';
import { useLoad } from './common.js';

interface Limits {
  seats: number | null;
  tenants: number | null;
  keys: number | null;
  tokensMonth: { max: number; mode: string } | null;
  boundaries: string[];
}
interface Status {
  state: string;
  mode: string;
  plan: string;
  licence?: { lid: string; seq: number; customer: { name: string }; expiresAt: string; graceEndsAt: string; daysRemaining: number };
  limits: Limits;
  usage: { seats: number; tenants: number; keys: number; tokensMonth?: number };
  capabilities: string[];
  banners: { level: string; message: string }[];
  problem?: { code: string; message: string };
}
interface EvalView {
  state: string;
  plan: string;
  licence: { lid: string; seq: number; customer: string; expires_at: string; days_remaining: number } | null;
  limits: Limits;
  capabilities: string[];
}

const lim = (n: number | null | undefined) => (n === null || n === undefined ? 'unlimited' : n.toLocaleString());

function diffRows(a: EvalView, b: EvalView): [string, string, string][] {
  const rows: [string, string, string][] = [
    ['State', a.state, b.state],
    ['Plan', a.plan, b.plan],
    ['Customer', a.licence?.customer ?? '—', b.licence?.customer ?? '—'],
    ['Expires', a.licence?.expires_at.slice(0, 10) ?? '—', b.licence?.expires_at.slice(0, 10) ?? '—'],
    ['Seats', lim(a.limits.seats), lim(b.limits.seats)],
    ['Tenants', lim(a.limits.tenants), lim(b.limits.tenants)],
    ['API keys', lim(a.limits.keys), lim(b.limits.keys)],
    ['Tokens / month', a.limits.tokensMonth ? a.limits.tokensMonth.max.toLocaleString() : 'unlimited', b.limits.tokensMonth ? b.limits.tokensMonth.max.toLocaleString() : 'unlimited'],
    ['Boundaries', a.limits.boundaries.join(', '), b.limits.boundaries.join(', ')],
    ['Features', a.capabilities.join(', ') || '—', b.capabilities.join(', ') || '—'],
  ];
  return rows;
}

export function LicensePage() {
  const status = useLoad(() => api<Status>('/admin/api/license'), []);
  const [text, setText] = useState('');
  const [dry, setDry] = useState<{ before: EvalView; after: EvalView } | null>(null);
  const [busy, setBusy] = useState<'dry' | 'install' | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<string | null>(null);

  const onFile = async (e: ChangeEvent<HTMLInputElement>) => {
    const f = e.target.files?.[0];
    if (!f) return;
    setText(await f.text());
    setDry(null);
    setDone(null);
  };
  const dryRun = async () => {
    setBusy('dry');
    setError(null);
    setDone(null);
    try {
      setDry(await api<{ before: EvalView; after: EvalView }>('/admin/api/license/dry-run', { body: { license: text } }));
    } catch (e) {
      setError(e);
      setDry(null);
    } finally {
      setBusy(null);
    }
  };
  const install = async () => {
    setBusy('install');
    setError(null);
    try {
      const r = await api<{ result: string; lid: string }>('/admin/api/license', { body: { license: text } });
      setDone(r.result === 'installed' ? `Licence ${r.lid} installed.` : `Licence ${r.lid} was already installed.`);
      setDry(null);
      setText('');
      await status.reload();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  };

  const s = status.data;
  return (
    <section className="page">
      <PageTitle>Licence</PageTitle>
      <ErrorNote error={status.error} title="Could not load the licence status." />
      {status.loading && !s ? <Spinner /> : null}
      {s ? (
        <div className="cards">
          <div className="card stat">
            <span className="stat-label">State</span>
            <span className={`stat-value state-${s.state}`} data-testid="license-state">
              {s.state}
            </span>
            {s.mode === 'test' ? <span className="tag tag-warn">test mode</span> : null}
          </div>
          <div className="card stat">
            <span className="stat-label">Plan</span>
            <span className="stat-value">{s.plan}</span>
            {s.licence ? <span className="small muted">{s.licence.customer.name}</span> : null}
          </div>
          <div className="card stat">
            <span className="stat-label">Days left</span>
            <span className="stat-value">{s.licence ? s.licence.daysRemaining : '—'}</span>
            {s.licence ? <span className="small muted">expires {s.licence.expiresAt.slice(0, 10)}</span> : null}
          </div>
          <div className="card stat">
            <span className="stat-label">Seats used</span>
            <span className="stat-value">
              {formatNumber(s.usage.seats)} / {lim(s.limits.seats)}
            </span>
          </div>
          <div className="card stat">
            <span className="stat-label">Tenants</span>
            <span className="stat-value">
              {formatNumber(s.usage.tenants)} / {lim(s.limits.tenants)}
            </span>
          </div>
          <div className="card stat">
            <span className="stat-label">Tokens this month</span>
            <span className="stat-value">
              {formatNumber(s.usage.tokensMonth ?? 0)} / {s.limits.tokensMonth ? s.limits.tokensMonth.max.toLocaleString() : 'unlimited'}
            </span>
          </div>
        </div>
      ) : null}
      {s?.problem ? (
        <Note kind="warn">
          {s.problem.message} ({s.problem.code})
        </Note>
      ) : null}

      <h2>Upload a licence</h2>
      <div className="card form">
        <label className="field">
          <span>Licence file</span>
          <input type="file" accept=".lic,.txt,.license,text/plain" onChange={(e) => void onFile(e)} />
        </label>
        <label className="field">
          <span>…or paste the licence text</span>
          <textarea
            rows={6}
            className="mono"
            value={text}
            onChange={(e) => {
              setText(e.target.value);
              setDry(null);
            }}
          />
        </label>
        <div className="button-row">
          <button type="button" className="btn" disabled={!text.trim() || busy !== null} onClick={() => void dryRun()}>
            {busy === 'dry' ? <Spinner label="Checking…" /> : 'Check (dry run)'}
          </button>
          <button type="button" className="btn btn-primary" disabled={!dry || busy !== null} onClick={() => void install()}>
            {busy === 'install' ? <Spinner label="Installing…" /> : 'Install'}
          </button>
        </div>
        <ErrorNote error={error} title="The licence was not accepted." />
        {done ? <Note kind="ok">{done}</Note> : null}
        {dry ? (
          <div className="table-wrap" tabIndex={0}>
            <table className="table" aria-label="What changes if this licence is installed">
              <caption>What changes if you install this licence</caption>
              <thead>
                <tr>
                  <th scope="col">Setting</th>
                  <th scope="col">Now</th>
                  <th scope="col">After install</th>
                </tr>
              </thead>
              <tbody>
                {diffRows(dry.before, dry.after).map(([k, a, b]) => (
                  <tr key={k} className={a !== b ? 'changed' : undefined}>
                    <th scope="row">{k}</th>
                    <td>{a}</td>
                    <td>
                      {b}
                      {a !== b ? <span className="sr-only"> (changed)</span> : null}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
      </div>
    </section>
  );
}
