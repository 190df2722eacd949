import { type ReactNode, useState } from 'react';
import { api, type ListPage } from '../../api.js';
import { type Column, DataTable } from '../../components/DataTable.js';
import { ErrorNote, formatCost, formatNumber, formatTime, Note, PageTitle, Spinner } from '../../components/ui.js';
import { DETECTOR_LABEL, tenantPath, useAction, useLoad, useTenantId } from './common.js';

/**
 * The request explorer (issue 25): search this organisation's AI calls, open one to see its
 * decision record (why it went where it went) as a timeline, export it as JSON, and replay a
 * call whose content was logged as a new call of your own. A trace holds no prompt or answer.
 * API: server/traces/routes.ts.
 */

interface CallSummary {
  id: string;
  request_id: string;
  created_at: string;
  api: string;
  endpoint: string;
  model: string | null;
  deployment: string | null;
  user_id: string | null;
  key_id: string | null;
  team_id: string | null;
  workflow: string | null;
  classification: string | null;
  status: string;
  http_status: number;
  error_code: string | null;
  latency_ms: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost_micros: number;
}
interface Attempt {
  deployment: string;
  model: string;
  boundary: string;
  status: string;
  upstream_status?: number;
  retryable: boolean | null;
  queued: boolean;
  connect_ms: number | null;
  first_byte_ms: number | null;
  total_ms: number | null;
}
interface CallTrace extends CallSummary {
  usage_id: string | null;
  stream: boolean;
  params: Record<string, number | boolean>;
  rules: { action: string; hits: Record<string, number>; redacted: string[]; classification_clamped?: boolean };
  classification_decision: { value: string; source: string | null; requested?: string } | null;
  candidates: { deployment: string; model: string; boundary: string; kept: boolean; reason?: string; outcome?: string }[];
  admission: {
    store: string | null;
    levels: { level: string; limits: Record<string, number>; remaining: Record<string, number> | null }[];
    waited_ms: number | null;
    refused?: { level: string; limit: string; limit_value: number | null; reset: string | null; code: string };
  } | null;
  attempts: Attempt[];
  fallbacks: { from: string; to: string | null; reason: string }[];
  stages_ms: { plan: number | null; admission: number | null; upstream: number | null; relay: number | null };
  result: Record<string, unknown>;
}
interface Replay {
  request_id: string;
  replay_of: string;
  deployment: string | null;
  status: string;
}

const PAGE = 50;
/** A button that reads as a link (opens a call in place). */
const LINK = { background: 'none', border: 'none', padding: 0, color: 'var(--primary)', cursor: 'pointer', textAlign: 'left', font: 'inherit', overflowWrap: 'anywhere' } as const;
const STATUSES = ['ok', 'refused', 'error', 'stream_error', 'client_disconnect'];
const SOURCE: Record<string, string> = { header: 'X-Enclave-Classification header', key_floor: "API key's floor", tenant_policy: "organisation policy's default", tenant_default: "organisation's default" };
const REASON: Record<string, string> = {
  policy: 'data-boundary policy',
  plan: 'plan (no cloud providers)',
  licence: 'licence',
  content_rule: 'content rule (local only)',
  breaker: 'circuit breaker open',
  concurrency: 'concurrency limit',
  pinned: 'replay pinned elsewhere',
  tried: 'tried',
  not_needed: 'not needed',
  not_reached: 'not reached',
};
const LIMIT: Record<string, string> = { requests_per_minute: 'requests/min', tokens_per_minute: 'tokens/min', concurrent_requests: 'concurrent', monthly_tokens: 'tokens/month', monthly_cost_micros: 'cost/month (µ)' };

const statusTag = (s: string, code: string | null) => (
  <>
    <span className={`tag ${s === 'ok' ? 'tag-allowed' : s === 'refused' ? 'tag-warn' : 'tag-denied'}`}>{s}</span>
    {code ? <span className="small muted"> {code}</span> : null}
  </>
);
const ms = (v: number | null | undefined) => (v === null || v === undefined ? '—' : `${v < 10 ? v.toFixed(2) : Math.round(v)} ms`);

export function CallsPage() {
  const tenantId = useTenantId();
  const [form, setForm] = useState({ request_id: '', model: '', deployment: '', status: '', code: '', workflow: '', from: '', to: '' });
  const [applied, setApplied] = useState(form);
  const [cursors, setCursors] = useState<string[]>([]);
  const [open, setOpen] = useState<string | null>(null);
  const dayMs = (d: string, end: boolean) => (d ? String(new Date(`${d}T00:00:00`).getTime() + (end ? 86_400_000 - 1 : 0)) : '');
  const qs = new URLSearchParams({
    limit: String(PAGE),
    ...(cursors.length ? { cursor: cursors.at(-1)! } : {}),
    ...Object.fromEntries(Object.entries(applied).filter(([k, v]) => v && k !== 'from' && k !== 'to')),
    ...(applied.from ? { from: dayMs(applied.from, false) } : {}),
    ...(applied.to ? { to: dayMs(applied.to, true) } : {}),
  }).toString();
  const list = useLoad(() => api<ListPage<CallSummary>>(tenantPath(tenantId, `/calls?${qs}`)), [qs, tenantId]);
  const set = (k: keyof typeof form) => (e: { target: { value: string } }) => setForm((f) => ({ ...f, [k]: e.target.value }));

  const columns: Column<CallSummary>[] = [
    { key: 'time', header: 'Time', className: 'small', cell: (c) => formatTime(Date.parse(c.created_at)) },
    {
      key: 'request',
      header: 'Request',
      className: 'small break',
      cell: (c) => (
        <button type="button" style={LINK} onClick={() => setOpen(c.request_id)} aria-label={`Open call ${c.request_id}`}>
          <code>{c.request_id}</code>
        </button>
      ),
    },
    { key: 'model', header: 'Model', cell: (c) => c.model ?? '—' },
    { key: 'deployment', header: 'Deployment', className: 'small', cell: (c) => c.deployment ?? '—' },
    { key: 'status', header: 'Status', cell: (c) => statusTag(c.status, c.error_code) },
    { key: 'latency', header: 'Latency', num: true, cell: (c) => ms(c.latency_ms) },
    { key: 'tokens', header: 'Tokens', num: true, cell: (c) => formatNumber(c.prompt_tokens + c.completion_tokens) },
    { key: 'cost', header: 'Cost', num: true, cell: (c) => formatCost(c.cost_micros) },
  ];

  return (
    <section className="page">
      <PageTitle>Calls</PageTitle>
      <p className="muted">Every AI call of this organisation with its decision record: why it went where it went. No prompt or answer is shown here.</p>
      <form
        className="form form-row filter-row"
        aria-label="Search calls"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied({ ...form, request_id: form.request_id.trim(), model: form.model.trim(), deployment: form.deployment.trim(), code: form.code.trim(), workflow: form.workflow.trim() });
          setCursors([]);
        }}
      >
        <label className="field field-wide">
          <span>Request id</span>
          <input value={form.request_id} placeholder="req_…" onChange={set('request_id')} />
        </label>
        <label className="field">
          <span>Model</span>
          <input value={form.model} onChange={set('model')} />
        </label>
        <label className="field">
          <span>Deployment</span>
          <input value={form.deployment} onChange={set('deployment')} />
        </label>
        <label className="field">
          <span>Status</span>
          <select value={form.status} onChange={set('status')}>
            <option value="">Any</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label className="field">
          <span>Error code</span>
          <input value={form.code} placeholder="e.g. policy_boundary_denied" onChange={set('code')} />
        </label>
        <label className="field">
          <span>Workflow</span>
          <input value={form.workflow} onChange={set('workflow')} />
        </label>
        <label className="field field-date">
          <span>From</span>
          <input type="date" value={form.from} onChange={set('from')} />
        </label>
        <label className="field field-date">
          <span>To</span>
          <input type="date" value={form.to} onChange={set('to')} />
        </label>
        <button className="btn" type="submit">
          Search
        </button>
      </form>
      <ErrorNote error={list.error} title="Could not load the calls." />
      {list.loading && !list.data ? <Spinner /> : null}
      {open ? <CallDetail key={open} tenantId={tenantId!} requestId={open} onClose={() => setOpen(null)} onOpen={setOpen} /> : null}
      {list.data ? (
        <DataTable
          caption="Calls, newest first"
          rows={list.data.data}
          columns={columns}
          rowKey={(c) => c.id}
          empty={Object.values(applied).some(Boolean) ? 'No calls match these filters.' : 'No calls yet.'}
          dense
          testId="calls-table"
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

function CallDetail({ tenantId, requestId, onClose, onOpen }: { tenantId: string; requestId: string; onClose: () => void; onOpen: (id: string) => void }) {
  const trace = useLoad(() => api<ListPage<CallTrace>>(tenantPath(tenantId, `/calls/${encodeURIComponent(requestId)}`)), [tenantId, requestId]);
  const act = useAction();
  const [replayed, setReplayed] = useState<Replay | null>(null);
  const [pin, setPin] = useState('');
  const t = trace.data?.data.at(-1);
  const exportJson = () => {
    if (!trace.data) return;
    const blob = new Blob([JSON.stringify(trace.data.data.length === 1 ? trace.data.data[0] : trace.data.data, null, 2)], { type: 'application/json' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = `enclave-call-${requestId}.json`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  };
  const replay = () =>
    act.run('replay', async () => {
      const r = await api<Replay>(tenantPath(tenantId, `/calls/${encodeURIComponent(requestId)}/replay`), { method: 'POST', body: pin ? { deployment: pin } : {} });
      setReplayed(r);
    });
  return (
    <div className="card call-detail" role="region" aria-label={`Call ${requestId}`} data-testid="call-detail">
      <div style={{ display: 'flex', flexWrap: 'wrap', gap: 8, alignItems: 'center', justifyContent: 'space-between' }}>
        <h2 className="card-title" style={{ margin: 0, overflowWrap: 'anywhere' }}>
          Call <code>{requestId}</code>
        </h2>
        <div style={{ display: 'flex', gap: 8, flexWrap: 'wrap' }}>
          <button type="button" className="btn btn-ghost" onClick={exportJson} disabled={!t}>
            Export JSON
          </button>
          <button type="button" className="btn btn-ghost" onClick={onClose}>
            Close
          </button>
        </div>
      </div>
      <ErrorNote error={trace.error} title="Could not load this call." />
      {trace.loading && !t ? <Spinner /> : null}
      {t ? (
        <>
          <p className="small">
            {formatTime(Date.parse(t.created_at))} · {t.api} / {t.endpoint}
            {t.stream ? ' (stream)' : ''} · model <strong>{t.model ?? '—'}</strong> · {statusTag(t.status, t.error_code)} · HTTP {t.http_status}
            {t.workflow ? ` · workflow ${t.workflow}` : ''}
          </p>
          <Timeline t={t} />
          <div className="call-sections" style={{ display: 'grid', gap: 12, gridTemplateColumns: 'repeat(auto-fit, minmax(280px, 1fr))' }}>
            <Section title="Classification">
              {t.classification_decision ? (
                <p className="small">
                  <strong>{t.classification_decision.value}</strong> — from the {SOURCE[t.classification_decision.source ?? ''] ?? t.classification_decision.source}
                  {t.classification_decision.requested && t.classification_decision.requested !== t.classification_decision.value ? ` (asked for ${t.classification_decision.requested}, raised to the floor)` : ''}
                </p>
              ) : (
                <p className="small muted">Not reached.</p>
              )}
              <p className="small">
                Content rules: <strong>{t.rules.action}</strong>
                {Object.keys(t.rules.hits).length
                  ? ` — ${Object.entries(t.rules.hits)
                      .map(([k, n]) => `${DETECTOR_LABEL[k] ?? k} ×${n}`)
                      .join(', ')}`
                  : ' — no hits'}
                {t.rules.redacted.length ? ` (redacted: ${t.rules.redacted.join(', ')})` : ''}
              </p>
            </Section>
            <Section title="Admission">
              {t.admission ? (
                <>
                  {t.admission.refused ? (
                    <Note kind="warn">
                      Refused at the {t.admission.refused.level} level: {LIMIT[t.admission.refused.limit] ?? t.admission.refused.limit} limit {formatNumber(t.admission.refused.limit_value)}
                      {t.admission.refused.reset ? `, resets ${formatTime(Date.parse(t.admission.refused.reset))}` : ''}.
                    </Note>
                  ) : null}
                  {t.admission.levels.length ? (
                    <table className="table table-dense">
                      <caption className="sr-only">Limits per level</caption>
                      <thead>
                        <tr>
                          <th>Level</th>
                          <th>Limit</th>
                          <th className="num">Remaining</th>
                        </tr>
                      </thead>
                      <tbody>
                        {t.admission.levels.flatMap((l) =>
                          Object.entries(l.limits).map(([k, v]) => (
                            <tr key={`${l.level}-${k}`}>
                              <td>{l.level}</td>
                              <td>
                                {LIMIT[k] ?? k} {formatNumber(v)}
                              </td>
                              <td className="num">{l.remaining && l.remaining[k] !== undefined ? formatNumber(l.remaining[k]) : '—'}</td>
                            </tr>
                          )),
                        )}
                      </tbody>
                    </table>
                  ) : !t.admission.refused ? (
                    <p className="small muted">No limit applies.</p>
                  ) : null}
                  <p className="small muted">
                    {t.admission.store === 'lease' ? 'Counted in process (lease)' : t.admission.store === 'redis' ? 'Counted in Redis' : t.admission.store === 'memory' ? 'Counted in process (Redis unavailable)' : 'Admission'} · {ms(t.admission.waited_ms)}
                  </p>
                </>
              ) : (
                <p className="small muted">Not reached.</p>
              )}
            </Section>
            <Section title="Candidates">
              {t.candidates.length ? (
                <ul className="small" style={{ margin: 0, paddingLeft: 18 }}>
                  {t.candidates.map((c) => (
                    <li key={`${c.deployment}-${c.model}`}>
                      <strong>{c.deployment}</strong> ({c.boundary}) — {c.kept ? (REASON[c.outcome ?? ''] ?? c.outcome) : `dropped: ${REASON[c.reason ?? ''] ?? c.reason}`}
                    </li>
                  ))}
                </ul>
              ) : (
                <p className="small muted">None (the model was not found or the call was refused before routing).</p>
              )}
            </Section>
            <Section title="Result">
              <p className="small">
                {formatNumber(Number(t.result.prompt_tokens ?? 0))} prompt + {formatNumber(Number(t.result.completion_tokens ?? 0))} completion tokens{t.result.tokens_estimated ? ' (estimated)' : ''} · {formatCost(t.cost_micros)} · latency {ms(t.latency_ms)}
                {t.result.ttft_ms !== null && t.result.ttft_ms !== undefined ? ` · first token ${ms(Number(t.result.ttft_ms))}` : ''}
              </p>
              {Object.keys(t.params).length ? <p className="small muted">Parameters: {Object.entries(t.params).map(([k, v]) => `${k} ${v}`).join(', ')}</p> : null}
            </Section>
          </div>
          <Section title="Attempts">
            {t.attempts.length ? (
              <div className="table-wrap">
                <table className="table table-dense">
                  <caption className="sr-only">Upstream attempts in order</caption>
                  <thead>
                    <tr>
                      <th>#</th>
                      <th>Deployment</th>
                      <th>Status</th>
                      <th>Retryable</th>
                      <th className="num">Connect</th>
                      <th className="num">First byte</th>
                      <th className="num">Total</th>
                    </tr>
                  </thead>
                  <tbody>
                    {t.attempts.map((a, i) => (
                      <tr key={`${a.deployment}-${i}`}>
                        <td>{i + 1}</td>
                        <td>
                          {a.deployment}
                          {a.queued ? <span className="small muted"> (queued)</span> : null}
                        </td>
                        <td>
                          {statusTag(a.status === 'ok' ? 'ok' : 'error', a.status === 'ok' ? null : a.status)}
                          {a.upstream_status ? <span className="small muted"> HTTP {a.upstream_status}</span> : null}
                        </td>
                        <td>{a.retryable === null ? '—' : a.retryable ? 'yes' : 'no'}</td>
                        <td className="num">{ms(a.connect_ms)}</td>
                        <td className="num">{ms(a.first_byte_ms)}</td>
                        <td className="num">{ms(a.total_ms)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            ) : (
              <p className="small muted">Nothing was sent upstream.</p>
            )}
            {t.fallbacks.length ? (
              <p className="small">
                Fallbacks:{' '}
                {t.fallbacks.map((f, i) => (
                  <span key={i}>
                    {i ? '; ' : ''}
                    {f.from} → {f.to ?? 'next'} ({REASON[f.reason] ?? f.reason})
                  </span>
                ))}
              </p>
            ) : null}
          </Section>
          <Section title="Replay">
            <p className="small muted">Runs the logged request again as a new call of yours (metered to you, audited). Only for calls whose content was logged.</p>
            <div className="form form-row" style={{ alignItems: 'flex-end' }}>
              <label className="field">
                <span>Deployment (optional)</span>
                <select value={pin} onChange={(e) => setPin(e.target.value)}>
                  <option value="">As routed</option>
                  {t.candidates
                    .filter((c) => c.kept)
                    .map((c) => (
                      <option key={c.deployment} value={c.deployment}>
                        {c.deployment}
                      </option>
                    ))}
                </select>
              </label>
              <button type="button" className="btn btn-primary" onClick={() => void replay()} disabled={act.busy !== null}>
                {act.busy ? <Spinner label="Replaying…" /> : 'Replay'}
              </button>
            </div>
            <ErrorNote error={act.error} title="Could not replay this call." />
            {replayed ? (
              <Note kind="ok">
                Replayed as{' '}
                <button type="button" style={LINK} onClick={() => onOpen(replayed.request_id)}>
                  <code>{replayed.request_id}</code>
                </button>{' '}
                on {replayed.deployment ?? '—'}.
              </Note>
            ) : null}
          </Section>
        </>
      ) : null}
    </div>
  );
}

function Section({ title, children }: { title: string; children: ReactNode }) {
  return (
    <section style={{ marginTop: 10 }}>
      <h3 style={{ fontSize: '0.95rem', margin: '6px 0' }}>{title}</h3>
      {children}
    </section>
  );
}

/** The call's stages as one bar: plan, admission, then each attempt, then the relay of the answer. */
function Timeline({ t }: { t: CallTrace }) {
  const segs: { label: string; ms: number; kind: string }[] = [];
  if (t.stages_ms.plan !== null) segs.push({ label: 'plan', ms: t.stages_ms.plan, kind: 'plan' });
  if (t.stages_ms.admission !== null) segs.push({ label: 'admission', ms: t.stages_ms.admission, kind: 'admission' });
  t.attempts.forEach((a, i) => segs.push({ label: `${a.deployment}${t.attempts.length > 1 ? ` #${i + 1}` : ''}: ${a.status}`, ms: (a.status === 'ok' ? a.first_byte_ms : a.total_ms) ?? 0, kind: a.status === 'ok' ? 'upstream' : 'failed' }));
  if (t.stages_ms.relay !== null) segs.push({ label: 'relay', ms: t.stages_ms.relay, kind: 'relay' });
  const total = Math.max(1, segs.reduce((n, s) => n + s.ms, 0));
  const color: Record<string, string> = { plan: '#6b8afd', admission: '#a78bfa', upstream: '#34a37a', failed: '#e0685c', relay: '#9bbf5a' };
  return (
    <figure style={{ margin: '8px 0 4px' }} aria-label="Timeline">
      <div style={{ display: 'flex', height: 14, borderRadius: 4, overflow: 'hidden', background: 'var(--subtle)' }} data-testid="call-timeline">
        {segs.map((s, i) => (
          <div key={i} title={`${s.label}: ${ms(s.ms)}`} style={{ width: `${Math.max(1.5, (s.ms / total) * 100)}%`, background: color[s.kind] }} />
        ))}
      </div>
      <ol className="small" style={{ listStyle: 'none', padding: 0, margin: '6px 0 0', display: 'flex', flexWrap: 'wrap', gap: '4px 14px' }}>
        {segs.map((s, i) => (
          <li key={i}>
            <span aria-hidden="true" style={{ display: 'inline-block', width: 9, height: 9, borderRadius: 2, background: color[s.kind], marginRight: 4 }} />
            {s.label} {ms(s.ms)}
          </li>
        ))}
      </ol>
    </figure>
  );
}
