import { useState, type FormEvent } from 'react';
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
        <div className="table-wrap" tabIndex={0}>
          <table className="table">
            <caption className="sr-only">Tenants</caption>
            <thead>
              <tr>
                <th scope="col">Slug</th>
                <th scope="col">Name</th>
                <th scope="col">Status</th>
                <th scope="col">Plan</th>
                <th scope="col">Default classification</th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {list.data.data.map((t) => (
                <tr key={t.id}>
                  <td>{t.slug}</td>
                  <td>{t.name}</td>
                  <td>
                    <span className={`tag tag-${t.status}`}>{t.status}</span>
                  </td>
                  <td>{t.plan ?? '—'}</td>
                  <td>{t.default_classification}</td>
                  <td>{formatTime(t.created_at)}</td>
                  <td>
                    <button type="button" className="btn btn-small btn-ghost" onClick={() => void toggle(t)} aria-label={`${t.status === 'active' ? 'Suspend' : 'Resume'} ${t.slug}`}>
                      {t.status === 'active' ? 'Suspend' : 'Resume'}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </section>
  );
}
