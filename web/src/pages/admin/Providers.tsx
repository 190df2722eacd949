import { useState, type FormEvent } from 'react';
import { DataTable } from '../../components/DataTable.js';
import { api } from '../../api.js';
import { BoundaryBadge, ErrorNote, Note, PageTitle, Spinner } from '../../components/ui.js';
import { useLoad } from './common.js';
import { KIND_SPECS, KindFields, kindBody, PROVIDER_KIND_NAMES, type KindValues, type ProviderKind } from './ProviderKindFields.js';

interface Provider {
  id: string;
  name: string;
  kind: ProviderKind;
  base_url: string;
  has_api_key: boolean;
  settings?: Record<string, string | boolean>;
  has_credentials?: boolean;
  boundary: string;
  region: string | null;
  approved: boolean;
  enabled: boolean;
  models: { name: string; type: string; vision?: boolean }[];
  /** The process's view: the circuit breaker (opened after repeated upstream failures) and calls in flight. */
  health?: { breaker: { state: 'closed' | 'open' | 'half_open'; consecutive_failures: number; opened_at: number | null; last_error: string | null } | null; in_flight: number } | null;
}

/**
 * Provider deployments. `tenant` set: that tenant's own (tenant-private) deployments, which
 * its owners and admins manage when the plan includes custom_providers (the API says so
 * otherwise); unset: the platform's list (platform administrators).
 */
export function ProvidersPage({ tenant }: { tenant?: { id: string; slug: string } } = {}) {
  const base = tenant ? `/admin/api/tenants/${encodeURIComponent(tenant.id)}/providers` : '/admin/api/providers';
  const list = useLoad(() => api<{ data: Provider[] }>(base), [base]);
  const [form, setForm] = useState({ name: '', kind: 'openai' as ProviderKind, base_url: '', api_key: '', boundary: 'private', region: '', models: '' });
  /** The listed models accept images (chat attachments go only to such models). */
  const [vision, setVision] = useState(false);
  const [kindValues, setKindValues] = useState<KindValues>({});
  const spec = KIND_SPECS[form.kind];
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<string | null>(null);
  const [tests, setTests] = useState<Record<string, { ok: boolean; text: string }>>({});

  const set = (k: keyof typeof form) => (e: { target: { value: string } }) => setForm((f) => ({ ...f, [k]: e.target.value }));
  const add = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      await api(base, {
        body: {
          name: form.name,
          kind: form.kind,
          ...(form.base_url ? { base_url: form.base_url } : {}),
          boundary: form.boundary,
          ...(form.region ? { region: form.region } : {}),
          // Plain names, or entries that say the models take images (the catalogue's `vision`).
          models: vision
            ? form.models
                .split(',')
                .map((m) => m.trim())
                .filter(Boolean)
                .map((name) => ({ name, vision: true }))
            : form.models,
          ...(form.api_key && spec.apiKey !== 'none' ? { api_key: form.api_key } : {}),
          ...kindBody(form.kind, kindValues),
        },
      });
      setDone(`Provider ${form.name} added.`);
      setForm((f) => ({ ...f, name: '', api_key: '', models: '' }));
      setKindValues({});
      await list.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const test = async (p: Provider) => {
    setTests((t) => ({ ...t, [p.id]: { ok: true, text: 'Testing…' } }));
    try {
      const r = await api<Record<string, unknown>>(`${base}/${p.id}/test`, { body: {} });
      const models = Array.isArray(r.models) ? (r.models as unknown[]).length : null;
      setTests((t) => ({ ...t, [p.id]: { ok: r.ok !== false, text: r.ok === false ? String(r.error ?? r.message ?? 'failed') : `Connected${models !== null ? `: ${models} models` : ''}` } }));
    } catch (err) {
      setTests((t) => ({ ...t, [p.id]: { ok: false, text: (err as Error).message } }));
    }
  };

  const change = async (p: Provider, what: 'enable' | 'disable' | 'remove') => {
    const consequence =
      what === 'remove'
        ? `Remove “${p.name}”? Its models (${p.models.map((m) => m.name).join(', ') || 'none'}) stop being offered at once; calls that need them are routed elsewhere or refused. Usage already recorded stays.`
        : what === 'disable'
          ? `Disable “${p.name}”? Nobody is offered its models until it is enabled again; nothing is deleted.`
          : null;
    if (consequence && !confirm(consequence)) return;
    setError(null);
    setDone(null);
    try {
      if (what === 'remove') await api(`${base}/${p.id}`, { method: 'DELETE' });
      else await api(`${base}/${p.id}`, { method: 'PATCH', body: { enabled: what === 'enable' } });
      setDone(`Provider ${p.name} ${what === 'remove' ? 'removed' : `${what}d`}.`);
      await list.reload();
    } catch (err) {
      setError(err);
    }
  };

  return (
    <section className="page">
      <PageTitle>{tenant ? 'Our providers' : 'Providers & models'}</PageTitle>
      {tenant ? (
        <p className="muted">
          Model endpoints of {tenant.slug} only: other organisations neither see nor reach them. Calls to them follow your data-boundary policy like any other.
        </p>
      ) : null}
      <form className="form card" onSubmit={add} aria-label="Add a provider">
        <div className="form-row">
          <label className="field">
            <span>Name</span>
            <input required pattern="[a-z0-9][a-z0-9._\-]{0,62}" title="lower-case letters, digits, dot, dash, underscore" value={form.name} onChange={set('name')} />
          </label>
          <label className="field">
            <span>Kind</span>
            <select
              value={form.kind}
              onChange={(e) => {
                setForm((f) => ({ ...f, kind: e.target.value as ProviderKind }));
                setKindValues({});
              }}
            >
              {PROVIDER_KIND_NAMES.map((k) => (
                <option key={k} value={k}>
                  {KIND_SPECS[k].label}
                </option>
              ))}
            </select>
          </label>
          <label className="field">
            <span>Base URL{spec.baseUrl === 'optional' ? ' (optional)' : ''}</span>
            <input required={spec.baseUrl === 'required'} type="url" placeholder={spec.baseUrlPlaceholder} value={form.base_url} onChange={set('base_url')} />
          </label>
          <label className="field">
            <span>Region{spec.regionRequired ? '' : ' (optional)'}</span>
            <input required={spec.regionRequired} placeholder={spec.regionRequired ? (form.kind === 'vertex' ? 'e.g. europe-west4' : 'e.g. eu-central-1') : 'a label policies may restrict by'} value={form.region} onChange={set('region')} />
          </label>
        </div>
        <div className="form-row">
          <label className="field">
            <span>Data boundary</span>
            <select value={form.boundary} onChange={set('boundary')}>
              <option value="local">Local</option>
              <option value="private">Private cloud</option>
              <option value="public">Public cloud</option>
            </select>
          </label>
          {spec.apiKey !== 'none' ? (
            <label className="field">
              <span>{spec.apiKeyLabel} (stored encrypted, never shown again)</span>
              <input type="password" autoComplete="off" required={spec.apiKey === 'required'} value={form.api_key} onChange={set('api_key')} />
            </label>
          ) : null}
          <label className="field">
            <span>Models (comma-separated)</span>
            <input value={form.models} placeholder="llama3.1:8b, gpt-4o-mini" onChange={set('models')} />
          </label>
        </div>
        <label className="check">
          <input type="checkbox" checked={vision} onChange={(e) => setVision(e.target.checked)} />
          These models accept images (vision): the chat may send them attached images
        </label>
        <KindFields kind={form.kind} values={kindValues} onChange={(k, v) => setKindValues((x) => ({ ...x, [k]: v }))} />
        <button className="btn btn-primary" type="submit" disabled={busy}>
          {busy ? <Spinner label="Adding…" /> : 'Add provider'}
        </button>
      </form>
      <ErrorNote error={error} />
      {done ? <Note kind="ok">{done}</Note> : null}
      <ErrorNote error={list.error} title="Could not load providers." />
      {list.loading && !list.data ? <Spinner /> : null}
      {list.data ? (
        <DataTable
          caption="Provider deployments"
          rows={list.data.data}
          rowKey={(p) => p.id}
          search={(p) => `${p.name} ${p.base_url} ${p.kind} ${p.boundary} ${p.models.map((m) => m.name).join(' ')}`}
          empty={`${tenant ? 'No providers of your own yet.' : 'No providers yet.'} Add an Ollama or OpenAI-compatible endpoint above.`}
          initialSort={{ key: 'name' }}
          columns={[
            {
              key: 'name',
              header: 'Name',
              sort: (p) => p.name,
              cell: (p) => (
                <>
                  {p.name}
                  <div className="small muted">{p.base_url}</div>
                </>
              ),
            },
            { key: 'kind', header: 'Kind', cell: (p) => KIND_SPECS[p.kind]?.label ?? p.kind, sort: (p) => p.kind },
            { key: 'region', header: 'Region', cell: (p) => p.region ?? '—', sort: (p) => p.region ?? '' },
            { key: 'boundary', header: 'Boundary', cell: (p) => <BoundaryBadge boundary={p.boundary} />, sort: (p) => p.boundary },
            {
              key: 'models',
              header: 'Models',
              className: 'small',
              cell: (p) =>
                p.models.length
                  ? p.models.map((m, i) => (
                      <span key={m.name}>
                        {i ? ', ' : ''}
                        {m.name}
                        {m.vision ? <span className="tag">images</span> : null}
                      </span>
                    ))
                  : '—',
            },
            {
              key: 'status',
              header: 'Status',
              sort: (p) => (!p.approved ? 2 : p.enabled ? 0 : 1),
              cell: (p) => <span className={`tag ${p.enabled && p.approved ? 'tag-active' : ''}`}>{!p.approved ? 'not approved' : p.enabled ? 'enabled' : 'disabled'}</span>,
            },
            {
              key: 'health',
              header: 'Health',
              className: 'small',
              cell: (p) => (
                <span data-testid={`health-${p.name}`}>
                  <Health h={p.health} />
                </span>
              ),
            },
            {
              key: 'connection',
              header: 'Connection',
              cell: (p) => (
                <>
                  <button type="button" className="btn btn-small" onClick={() => void test(p)} aria-label={`Test connection to ${p.name}`}>
                    Test
                  </button>
                  {tests[p.id] ? (
                    <span className={`small ${tests[p.id]!.ok ? 'ok' : 'bad'}`} role="status">
                      {' '}
                      {tests[p.id]!.text}
                    </span>
                  ) : null}
                </>
              ),
            },
          ]}
          actions={(p) => (
            <>
              <button type="button" className="btn btn-small" onClick={() => void change(p, p.enabled ? 'disable' : 'enable')}>
                {p.enabled ? 'Disable' : 'Enable'}
              </button>{' '}
              <button type="button" className="btn btn-small btn-ghost" aria-label={`Remove ${p.name}`} onClick={() => void change(p, 'remove')}>
                Remove
              </button>
            </>
          )}
        />
      ) : null}
    </section>
  );
}

/** Down (breaker open: calls skip it), recovering (one trial call allowed) or up, with the last upstream error. */
function Health({ h }: { h: Provider['health'] }) {
  const b = h?.breaker;
  if (!b) return <span className="muted">no calls yet</span>;
  const label = b.state === 'open' ? 'down' : b.state === 'half_open' ? 'recovering' : 'up';
  return (
    <>
      <span className={`tag ${b.state === 'closed' ? 'tag-active' : 'tag-error'}`}>{label}</span>
      {h.in_flight ? <span className="muted"> · {h.in_flight} in flight</span> : null}
      {b.consecutive_failures ? <div className="muted">{b.consecutive_failures} failed in a row</div> : null}
      {b.last_error ? <div className="reason muted">Last error: {b.last_error}</div> : null}
    </>
  );
}
