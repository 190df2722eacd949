import { useState, type FormEvent } from 'react';
import { api, type ListPage, type Role } from '../../api.js';
import { ErrorNote, formatTime, Note, PageTitle, Spinner } from '../../components/ui.js';
import { useSession } from '../../session.js';
import { tenantPath, useLoad, useTenantId } from './common.js';

interface Member {
  id: string;
  email: string;
  name: string | null;
  status: string;
  role: Role;
  platform_admin: boolean;
  created_at: number;
}
const ROLES: Role[] = ['owner', 'admin', 'member', 'viewer'];

export function MembersPage() {
  const tenantId = useTenantId();
  const { session } = useSession();
  const list = useLoad(() => api<ListPage<Member>>(tenantPath(tenantId!, '/members?limit=200')), [tenantId]);
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('member');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<string | null>(null);
  if (!tenantId) return <Note kind="warn">Choose an organisation first.</Note>;

  const add = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      await api(tenantPath(tenantId, '/members'), { body: { email, role, ...(name ? { name } : {}), ...(password ? { password } : {}) } });
      setDone(`${email} was added as ${role}.`);
      setEmail('');
      setName('');
      setPassword('');
      await list.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const change = async (m: Member, r: Role) => {
    setError(null);
    setDone(null);
    try {
      await api(tenantPath(tenantId, `/members/${m.id}`), { method: 'PUT', body: { role: r } });
      setDone(`${m.email} is now ${r}.`);
      await list.reload();
    } catch (err) {
      setError(err);
    }
  };
  const remove = async (m: Member) => {
    if (!confirm(`Remove ${m.email} from this organisation?`)) return;
    setError(null);
    try {
      await api(tenantPath(tenantId, `/members/${m.id}`), { method: 'DELETE' });
      setDone(`${m.email} was removed.`);
      await list.reload();
    } catch (err) {
      setError(err);
    }
  };

  return (
    <section className="page">
      <PageTitle>Members & roles</PageTitle>
      <form className="form form-row card" onSubmit={add} aria-label="Add a member">
        <label className="field">
          <span>E-mail</span>
          <input type="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
        </label>
        <label className="field">
          <span>Name</span>
          <input value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <label className="field">
          <span>Role</span>
          <select value={role} onChange={(e) => setRole(e.target.value as Role)}>
            {ROLES.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </label>
        <label className="field">
          <span>Initial password (optional)</span>
          <input type="password" autoComplete="new-password" value={password} onChange={(e) => setPassword(e.target.value)} />
        </label>
        <button className="btn btn-primary" type="submit" disabled={busy}>
          {busy ? <Spinner label="Adding…" /> : 'Add member'}
        </button>
      </form>
      <ErrorNote error={error} />
      {done ? <Note kind="ok">{done}</Note> : null}
      <ErrorNote error={list.error} title="Could not load members." />
      {list.loading && !list.data ? <Spinner /> : null}
      {list.data ? (
        <div className="table-wrap">
          <table className="table">
            <caption className="sr-only">Members of this organisation</caption>
            <thead>
              <tr>
                <th scope="col">E-mail</th>
                <th scope="col">Name</th>
                <th scope="col">Role</th>
                <th scope="col">Status</th>
                <th scope="col">Added</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {list.data.data.map((m) => (
                <tr key={m.id}>
                  <td>
                    {m.email}
                    {m.platform_admin ? <span className="tag">platform admin</span> : null}
                  </td>
                  <td>{m.name ?? '—'}</td>
                  <td>
                    <label className="sr-only" htmlFor={`role-${m.id}`}>
                      Role of {m.email}
                    </label>
                    <select id={`role-${m.id}`} value={m.role} disabled={m.id === session.user.id} onChange={(e) => void change(m, e.target.value as Role)}>
                      {ROLES.map((r) => (
                        <option key={r}>{r}</option>
                      ))}
                    </select>
                  </td>
                  <td>{m.status}</td>
                  <td>{formatTime(m.created_at)}</td>
                  <td>
                    {m.id !== session.user.id ? (
                      <button type="button" className="btn btn-small btn-ghost" onClick={() => void remove(m)} aria-label={`Remove ${m.email}`}>
                        Remove
                      </button>
                    ) : null}
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
