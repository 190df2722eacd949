import { useState, type FormEvent } from 'react';
import { DataTable } from '../../components/DataTable.js';
import { api, type Classification, type ListPage } from '../../api.js';
import { ErrorNote, formatTime, Note, PageTitle, Spinner } from '../../components/ui.js';
import { tenantPath, useLoad, useTenantId } from './common.js';

interface Key {
  id: string;
  name: string;
  prefix: string;
  status: string;
  scopes: string[];
  allowed_models: string[];
  max_classification: Classification | null;
  last_used_at: number | null;
  created_at: number;
}
const SCOPES = ['models:invoke', 'models:list', 'embeddings:create', 'batches:write', 'usage:read', 'admin:read', 'admin:write', 'content:read'];
const DEFAULT_SCOPES = ['models:invoke', 'models:list', 'embeddings:create'];

export function KeysPage() {
  const tenantId = useTenantId();
  const list = useLoad(() => api<ListPage<Key>>(tenantPath(tenantId!, '/keys?limit=200')), [tenantId]);
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<string[]>(DEFAULT_SCOPES);
  const [models, setModels] = useState('');
  const [maxClass, setMaxClass] = useState<'' | Classification>('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [secret, setSecret] = useState<{ name: string; secret: string } | null>(null);
  const [copied, setCopied] = useState(false);
  if (!tenantId) return <Note kind="warn">Choose an organisation first.</Note>;

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setSecret(null);
    try {
      const allowed = models
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const k = await api<Key & { secret: string }>(tenantPath(tenantId, '/keys'), {
        body: { name, scopes, ...(allowed.length ? { allowed_models: allowed } : {}), ...(maxClass ? { max_classification: maxClass } : {}) },
      });
      setSecret({ name: k.name, secret: k.secret });
      setCopied(false);
      setName('');
      await list.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const revoke = async (k: Key) => {
    if (!confirm(`Revoke the key “${k.name}”? Applications using it stop working at once.`)) return;
    setError(null);
    try {
      await api(tenantPath(tenantId, `/keys/${k.id}`), { method: 'DELETE' });
      await list.reload();
    } catch (err) {
      setError(err);
    }
  };

  return (
    <section className="page">
      <PageTitle>API keys</PageTitle>
      <form className="form card" onSubmit={create} aria-label="Create an API key">
        <div className="form-row">
          <label className="field">
            <span>Name</span>
            <input required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
          </label>
          <label className="field">
            <span>Allowed models (comma-separated, empty = all allowed)</span>
            <input value={models} onChange={(e) => setModels(e.target.value)} />
          </label>
          <label className="field">
            <span>Highest data classification</span>
            <select value={maxClass} onChange={(e) => setMaxClass(e.target.value as '' | Classification)}>
              <option value="">No limit</option>
              <option value="public">public</option>
              <option value="internal">internal</option>
              <option value="confidential">confidential</option>
              <option value="restricted">restricted</option>
            </select>
          </label>
        </div>
        <fieldset className="scopes">
          <legend>Scopes</legend>
          {SCOPES.map((s) => (
            <label key={s} className="check">
              <input type="checkbox" checked={scopes.includes(s)} onChange={(e) => setScopes((cur) => (e.target.checked ? [...cur, s] : cur.filter((x) => x !== s)))} />
              {s}
            </label>
          ))}
        </fieldset>
        <button className="btn btn-primary" type="submit" disabled={busy || scopes.length === 0}>
          {busy ? <Spinner label="Creating…" /> : 'Create key'}
        </button>
      </form>
      <ErrorNote error={error} />
      {secret ? (
        <div className="note note-ok secret" role="status">
          <p>
            <strong>Key “{secret.name}” created.</strong> Copy it now: it is shown only once.
          </p>
          <code className="secret-value" data-testid="new-key-secret">
            {secret.secret}
          </code>
          <button
            type="button"
            className="btn btn-small"
            onClick={() => {
              void navigator.clipboard.writeText(secret.secret).then(() => setCopied(true));
            }}
          >
            {copied ? 'Copied' : 'Copy key'}
          </button>
        </div>
      ) : null}
      <ErrorNote error={list.error} title="Could not load keys." />
      {list.loading && !list.data ? <Spinner /> : null}
      {list.data ? (
        <DataTable
          caption="API keys of this organisation"
          rows={list.data.data}
          rowKey={(k) => k.id}
          search={(k) => `${k.name} ${k.prefix} ${k.status} ${k.scopes.join(' ')}`}
          empty="No API keys yet. Create one above for an application that calls the /v1 API."
          initialSort={{ key: 'created', desc: true }}
          columns={[
            { key: 'name', header: 'Name', cell: (k) => k.name, sort: (k) => k.name },
            { key: 'prefix', header: 'Prefix', cell: (k) => <code>{k.prefix}…</code> },
            { key: 'status', header: 'Status', cell: (k) => <span className={`tag tag-${k.status}`}>{k.status}</span>, sort: (k) => k.status },
            { key: 'scopes', header: 'Scopes', cell: (k) => k.scopes.join(', '), className: 'small' },
            { key: 'used', header: 'Last used', cell: (k) => formatTime(k.last_used_at), sort: (k) => k.last_used_at ?? 0 },
            { key: 'created', header: 'Created', cell: (k) => formatTime(k.created_at), sort: (k) => k.created_at },
          ]}
          actions={(k) =>
            k.status === 'active' ? (
              <button type="button" className="btn btn-small btn-ghost" onClick={() => void revoke(k)} aria-label={`Revoke ${k.name}`}>
                Revoke
              </button>
            ) : null
          }
        />
      ) : null}
    </section>
  );
}
