import { useState, type FormEvent } from 'react';
import { DataTable } from '../../components/DataTable.js';
import { api, type ListPage } from '../../api.js';
import { ErrorNote, formatTime, Note, PageTitle, Spinner } from '../../components/ui.js';
import { useLoad } from './common.js';

interface Tenant {
  id: string;
  slug: string;
  name: string;
  status: string;
  plan: string | null;
  default_classification: string;
  created_at: number;
}

export function TenantsPage() {
  const list = useLoad(() => api<ListPage<Tenant>>('/admin/api/tenants?limit=200'), []);
  const [slug, setSlug] = useState('');
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<string | null>(null);
  const create = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      await api('/admin/api/tenants', { body: { slug, ...(name ? { name } : {}) } });
      setDone(`Tenant ${slug} created.`);
      setSlug('');
      setName('');
      await list.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const toggle = async (t: Tenant) => {
    // A privileged action: say what it does before doing it.
    if (t.status === 'active' && !confirm(`Suspend ${t.name || t.slug}? Its members can no longer work in it and its API keys are refused until you resume it. Nothing is deleted.`)) return;
    setError(null);
    try {
      await api(`/admin/api/tenants/${encodeURIComponent(t.id)}/${t.status === 'active' ? 'suspend' : 'resume'}`, { body: {} });
      await list.reload();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section className="page">
      <PageTitle>Tenants</PageTitle>
      <form className="form form-row card" onSubmit={create} aria-label="Create a tenant">
        <label className="field">
          <span>Short name (slug)</span>
          <input required value={slug} onChange={(e) => setSlug(e.target.value)} />
        </label>
        <label className="field">
          <span>Display name</span>
          <input value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <button className="btn btn-primary" type="submit" disabled={busy}>
          {busy ? <Spinner label="Creating…" /> : 'Create tenant'}
        </button>
      </form>
      <ErrorNote error={error} />
      {done ? <Note kind="ok">{done}</Note> : null}
      <ErrorNote error={list.error} title="Could not load tenants." />
      {list.loading && !list.data ? <Spinner /> : null}
      {list.data ? (
        <DataTable
          caption="Tenants"
          rows={list.data.data}
          rowKey={(t) => t.id}
          search={(t) => `${t.slug} ${t.name} ${t.status} ${t.plan ?? ''}`}
          empty="No tenants yet. Create the first one above."
          initialSort={{ key: 'slug' }}
          columns={[
            { key: 'slug', header: 'Slug', cell: (t) => t.slug, sort: (t) => t.slug },
            { key: 'name', header: 'Name', cell: (t) => t.name, sort: (t) => t.name },
            { key: 'status', header: 'Status', cell: (t) => <span className={`tag tag-${t.status}`}>{t.status}</span>, sort: (t) => t.status },
            { key: 'plan', header: 'Plan', cell: (t) => t.plan ?? '—', sort: (t) => t.plan },
            { key: 'class', header: 'Default classification', cell: (t) => t.default_classification },
            { key: 'created', header: 'Created', cell: (t) => formatTime(t.created_at), sort: (t) => t.created_at },
          ]}
          actions={(t) => (
            <button type="button" className="btn btn-small btn-ghost" onClick={() => void toggle(t)} aria-label={`${t.status === 'active' ? 'Suspend' : 'Resume'} ${t.slug}`}>
              {t.status === 'active' ? 'Suspend' : 'Resume'}
            </button>
          )}
        />
      ) : null}
    </section>
  );
}
