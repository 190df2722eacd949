import { useState } from 'react';
import { api, type ListPage } from '../../api.js';
import { ErrorNote, formatTime, Note, PageTitle, Spinner } from '../../components/ui.js';
import { useSession } from '../../session.js';
import { tenantPath, useLoad, useTenantId } from './common.js';

interface AuditEvent {
  id: string;
  seq: number;
  at: number;
  tenant_id: string | null;
  actor: { type: string; id: string | null };
  action: string;
  target: { type: string; id: string | null } | null;
  outcome: 'allowed' | 'denied';
  reason: string | null;
  ip: string | null;
  hash: string;
}
type Verification = { ok: true; checked: number; head?: { seq: number } | null } | { ok: false; checked: number; broken?: { seq: number; problem: string } };

export function AuditPage() {
  const tenantId = useTenantId();
  const { session } = useSession();
  const platform = session.user.platform_admin;
  const [scope, setScope] = useState<'tenant' | 'platform'>(platform ? 'platform' : 'tenant');
  const [action, setAction] = useState('');
  const [outcome, setOutcome] = useState('');
  const [applied, setApplied] = useState({ action: '', outcome: '' });
  const [verify, setVerify] = useState<Verification | null>(null);
  const [verifying, setVerifying] = useState(false);
  const [verifyError, setVerifyError] = useState<unknown>(null);

  const qs = new URLSearchParams({ limit: '100', ...(applied.action ? { action: applied.action } : {}), ...(applied.outcome ? { outcome: applied.outcome } : {}) }).toString();
  const list = useLoad(() => api<ListPage<AuditEvent>>(scope === 'platform' ? `/admin/api/audit?${qs}` : tenantPath(tenantId!, `/audit?${qs}`)), [scope, qs, tenantId]);

  const runVerify = async () => {
    setVerifying(true);
    setVerifyError(null);
    try {
      setVerify(await api<Verification>('/admin/api/audit/verify'));
    } catch (e) {
      setVerifyError(e);
    } finally {
      setVerifying(false);
    }
  };
  const exportJson = () => {
    if (!list.data) return;
    const blob = new Blob([JSON.stringify(list.data.data, null, 2)], { type: 'application/json' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = `enclave-audit-${new Date().toISOString().slice(0, 19)}.json`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  };

  return (
    <section className="page">
      <PageTitle>Audit log</PageTitle>
      <div className="card verify">
        <button type="button" className="btn" onClick={() => void runVerify()} disabled={verifying}>
          {verifying ? <Spinner label="Verifying…" /> : 'Verify hash chain'}
        </button>
        {verify ? (
          verify.ok ? (
            <Note kind="ok">
              Chain intact: {verify.checked.toLocaleString()} entries verified{verify.head ? `, head #${verify.head.seq}` : ''}.
            </Note>
          ) : (
            <div className="note note-error" role="alert">
              Chain broken after {verify.checked.toLocaleString()} entries{verify.broken ? ` at #${verify.broken.seq}: ${verify.broken.problem}` : ''}. The audit log was altered; investigate.
            </div>
          )
        ) : null}
        <ErrorNote error={verifyError} />
      </div>
      <form
        className="form form-row"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied({ action: action.trim(), outcome });
        }}
        aria-label="Filter audit events"
      >
        {platform ? (
          <label className="field">
            <span>Scope</span>
            <select value={scope} onChange={(e) => setScope(e.target.value as 'tenant' | 'platform')}>
              <option value="platform">All tenants</option>
              <option value="tenant" disabled={!tenantId}>
                This organisation
              </option>
            </select>
          </label>
        ) : null}
        <label className="field">
          <span>Action</span>
          <input value={action} placeholder="e.g. auth.login" onChange={(e) => setAction(e.target.value)} />
        </label>
        <label className="field">
          <span>Outcome</span>
          <select value={outcome} onChange={(e) => setOutcome(e.target.value)}>
            <option value="">Any</option>
            <option value="allowed">allowed</option>
            <option value="denied">denied</option>
          </select>
        </label>
        <button className="btn" type="submit">
          Filter
        </button>
        <button className="btn btn-ghost" type="button" onClick={exportJson} disabled={!list.data}>
          Export JSON
        </button>
      </form>
      <ErrorNote error={list.error} title="Could not load the audit log." />
      {list.loading && !list.data ? <Spinner /> : null}
      {list.data ? (
        <div className="table-wrap" tabIndex={0}>
          <table className="table table-dense">
            <caption className="sr-only">Audit events, newest first</caption>
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">Time</th>
                <th scope="col">Action</th>
                <th scope="col">Outcome</th>
                <th scope="col">Actor</th>
                <th scope="col">Target</th>
                <th scope="col">Address</th>
              </tr>
            </thead>
            <tbody>
              {list.data.data.map((e) => (
                <tr key={e.id}>
                  <td>{e.seq}</td>
                  <td>{formatTime(e.at)}</td>
                  <td>
                    <code>{e.action}</code>
                  </td>
                  <td>
                    <span className={`tag tag-${e.outcome}`}>{e.outcome}</span>
                    {e.reason ? <span className="small muted"> {e.reason}</span> : null}
                  </td>
                  <td className="small">
                    {e.actor.type}
                    {e.actor.id ? `: ${e.actor.id}` : ''}
                  </td>
                  <td className="small">{e.target ? `${e.target.type}${e.target.id ? `: ${e.target.id}` : ''}` : '—'}</td>
                  <td className="small">{e.ip ?? '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </section>
  );
}
