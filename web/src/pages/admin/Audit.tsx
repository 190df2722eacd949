import { useState } from 'react';
import { api, type ListPage } from '../../api.js';
import { type Column, DataTable } from '../../components/DataTable.js';
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
/** The API's page size: newest first, a cursor (the last seq) to the next page. */
const PAGE = 50;
type Verification = { ok: true; checked: number; head?: { seq: number } | null } | { ok: false; checked: number; broken?: { seq: number; problem: string } };

export function AuditPage() {
  const tenantId = useTenantId();
  const { session } = useSession();
  const platform = session.user.platform_admin;
  const [scope, setScope] = useState<'tenant' | 'platform'>(platform ? 'platform' : 'tenant');
  const [action, setAction] = useState('');
  const [outcome, setOutcome] = useState('');
  const [actor, setActor] = useState('');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [applied, setApplied] = useState({ action: '', outcome: '', actor: '', since: '', until: '' });
  const [verify, setVerify] = useState<Verification | null>(null);
  const [verifying, setVerifying] = useState(false);
  const [verifyError, setVerifyError] = useState<unknown>(null);
  // The cursors of the pages before this one (empty: the newest page); new filters start over.
  const [cursors, setCursors] = useState<string[]>([]);

  const qs = new URLSearchParams({
    limit: String(PAGE),
    ...(cursors.length ? { cursor: cursors.at(-1)! } : {}),
    ...(applied.action ? { action: applied.action } : {}),
    ...(applied.outcome ? { outcome: applied.outcome } : {}),
    ...(applied.actor ? { actor: applied.actor } : {}),
    ...(applied.since ? { since: applied.since } : {}),
    ...(applied.until ? { until: applied.until } : {}),
  }).toString();
  // Names for the ids in the log: this organisation's members and keys.
  const names = useLoad(async () => {
    if (!tenantId) return new Map<string, string>();
    const [members, keys] = await Promise.all([
      api<ListPage<{ id: string; email: string; name: string | null }>>(tenantPath(tenantId, '/members?limit=200')).catch(() => null),
      api<ListPage<{ id: string; name: string; prefix: string }>>(tenantPath(tenantId, '/keys?limit=200')).catch(() => null),
    ]);
    return new Map<string, string>([...(members?.data ?? []).map((m) => [m.id, m.name ? `${m.name} (${m.email})` : m.email] as [string, string]), ...(keys?.data ?? []).map((k) => [k.id, `key ${k.name} (${k.prefix}…)`] as [string, string])]);
  }, [tenantId]);
  const who = (ref: { type: string; id: string | null } | null): string => (ref ? (ref.id ? (names.data?.get(ref.id) ?? `${ref.type}: ${ref.id}`) : ref.type) : '—');
  /** A date input (the user's local day) as epoch ms: the start of `from`, the end of `to`. */
  const dayMs = (d: string, end: boolean) => (d ? String(new Date(`${d}T00:00:00`).getTime() + (end ? 86_400_000 - 1 : 0)) : '');
  const list = useLoad(() => api<ListPage<AuditEvent>>(scope === 'platform' ? `/admin/api/audit?${qs}` : tenantPath(tenantId!, `/audit?${qs}`)), [scope, qs, tenantId]);

  const columns: Column<AuditEvent>[] = [
    { key: 'seq', header: '#', cell: (e) => e.seq },
    { key: 'at', header: 'Time', cell: (e) => formatTime(e.at) },
    { key: 'action', header: 'Action', cell: (e) => <code>{e.action}</code> },
    {
      key: 'outcome',
      header: 'Outcome',
      cell: (e) => (
        <>
          <span className={`tag tag-${e.outcome}`}>{e.outcome}</span>
          {e.reason ? <span className="small muted"> {e.reason}</span> : null}
        </>
      ),
    },
    { key: 'actor', header: 'Actor', className: 'small break', cell: (e) => who(e.actor) },
    { key: 'target', header: 'Target', className: 'small break', cell: (e) => (e.target ? `${e.target.type}${e.target.id ? `: ${names.data?.get(e.target.id) ?? e.target.id}` : ''}` : '—') },
    { key: 'ip', header: 'Address', className: 'small', cell: (e) => e.ip ?? '—' },
  ];

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
        className="form form-row filter-row"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied({ action: action.trim(), outcome, actor, since: dayMs(from, false), until: dayMs(to, true) });
          setCursors([]);
        }}
        aria-label="Filter audit events"
      >
        {platform ? (
          <label className="field">
            <span>Scope</span>
            <select
              value={scope}
              onChange={(e) => {
                setScope(e.target.value as 'tenant' | 'platform');
                setCursors([]);
              }}
            >
              <option value="platform">All tenants</option>
              <option value="tenant" disabled={!tenantId}>
                This organisation
              </option>
            </select>
          </label>
        ) : null}
        <label className="field field-wide">
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
        <label className="field">
          <span>Actor</span>
          <select value={actor} onChange={(e) => setActor(e.target.value)}>
            <option value="">Anyone</option>
            {[...(names.data ?? new Map<string, string>())].map(([id, name]) => (
              <option key={id} value={id}>
                {name}
              </option>
            ))}
          </select>
        </label>
        <label className="field field-date">
          <span>From</span>
          <input type="date" value={from} onChange={(e) => setFrom(e.target.value)} />
        </label>
        <label className="field field-date">
          <span>To</span>
          <input type="date" value={to} onChange={(e) => setTo(e.target.value)} />
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
        <DataTable
          caption="Audit events, newest first"
          rows={list.data.data}
          columns={columns}
          rowKey={(e) => e.id}
          empty={Object.values(applied).some(Boolean) ? 'No audit events match these filters.' : 'No audit events yet.'}
          dense
          server={{
            offset: cursors.length * PAGE,
            hasMore: list.data.next_cursor !== null,
            onPage: (to) => setCursors((c) => (to === 'next' ? (list.data?.next_cursor ? [...c, list.data.next_cursor] : c) : c.slice(0, -1))),
          }}
        />
      ) : null}
    </section>
  );
}
