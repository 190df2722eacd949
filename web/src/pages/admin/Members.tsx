import { useState, type FormEvent } from 'react';
import { DataTable } from '../../components/DataTable.js';
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
interface Invitation {
  id: string;
  email: string;
  role: Role;
  status: string;
  created_at: number;
  expires_at: number;
}
/** The answer to an add: the same whether the address has an account or not (issue 16). */
interface InvitationCreated extends Invitation {
  token: string;
  accept_path: string;
}
const ROLES: Role[] = ['owner', 'admin', 'member', 'viewer'];

export function MembersPage() {
  const tenantId = useTenantId();
  const { session } = useSession();
  const list = useLoad(() => api<ListPage<Member>>(tenantPath(tenantId!, '/members?limit=200')), [tenantId]);
  const invitations = useLoad(() => api<ListPage<Invitation>>(tenantPath(tenantId!, '/invitations')), [tenantId]);
  const [email, setEmail] = useState('');
  const [role, setRole] = useState<Role>('member');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<string | null>(null);
  const [sent, setSent] = useState<InvitationCreated | null>(null);
  if (!tenantId) return <Note kind="warn">Choose an organisation first.</Note>;

  const add = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setDone(null);
    setSent(null);
    try {
      // An invitation, never a silent attachment: the person accepts it signed in as
      // themselves, or through the link (setting their own password).
      setSent(await api<InvitationCreated>(tenantPath(tenantId, '/members'), { body: { email, role } }));
      setEmail('');
      await invitations.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const withdraw = async (i: Invitation) => {
    setError(null);
    setDone(null);
    try {
      await api(tenantPath(tenantId, `/invitations/${i.id}`), { method: 'DELETE' });
      setDone(`The invitation of ${i.email} was withdrawn.`);
      await invitations.reload();
    } catch (err) {
      setError(err);
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
      <form className="form form-row card" onSubmit={add} aria-label="Invite a member">
        <label className="field">
          <span>E-mail</span>
          <input type="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
        </label>
        <label className="field">
          <span>Role</span>
          <select value={role} onChange={(e) => setRole(e.target.value as Role)}>
            {ROLES.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </label>
        <button className="btn btn-primary" type="submit" disabled={busy}>
          {busy ? <Spinner label="Inviting…" /> : 'Invite'}
        </button>
      </form>
      <ErrorNote error={error} />
      {done ? <Note kind="ok">{done}</Note> : null}
      {sent ? (
        <div className="note note-ok" role="status" data-testid="invitation-sent">
          <p>
            <strong>Invitation sent</strong> to {sent.email} as {sent.role}. They become a member when they accept it: after signing in (if they
            already have an account), or through this link, where a new user chooses their own password. The link is shown only now and expires{' '}
            {formatTime(sent.expires_at)}.
          </p>
          <label className="field">
            <span>Invitation link (give it to {sent.email})</span>
            <input readOnly value={`${location.origin}${sent.accept_path}`} onFocus={(e) => e.currentTarget.select()} />
          </label>
        </div>
      ) : null}
      <ErrorNote error={invitations.error} title="Could not load invitations." />
      {invitations.data && invitations.data.data.length ? (
        <>
          <h2 className="section-title">Pending invitations</h2>
          <DataTable
            caption="Pending invitations"
            rows={invitations.data.data}
            rowKey={(i) => i.id}
            empty="No pending invitations."
            columns={[
              { key: 'email', header: 'E-mail', cell: (i) => i.email, sort: (i) => i.email },
              { key: 'role', header: 'Role', cell: (i) => i.role, sort: (i) => i.role },
              { key: 'sent', header: 'Sent', cell: (i) => formatTime(i.created_at), sort: (i) => i.created_at },
              { key: 'expires', header: 'Expires', cell: (i) => formatTime(i.expires_at), sort: (i) => i.expires_at },
            ]}
            actions={(i) => (
              <button type="button" className="btn btn-small btn-ghost" onClick={() => void withdraw(i)} aria-label={`Withdraw the invitation of ${i.email}`}>
                Withdraw
              </button>
            )}
          />
        </>
      ) : null}
      <ErrorNote error={list.error} title="Could not load members." />
      {list.loading && !list.data ? <Spinner /> : null}
      {list.data ? (
        <DataTable
          caption="Members of this organisation"
          rows={list.data.data}
          rowKey={(m) => m.id}
          search={(m) => `${m.email} ${m.name ?? ''} ${m.role} ${m.status}`}
          empty="No members yet. Invite people above."
          initialSort={{ key: 'email' }}
          columns={[
            {
              key: 'email',
              header: 'E-mail',
              sort: (m) => m.email,
              cell: (m) => (
                <>
                  {m.email}
                  {m.platform_admin ? <span className="tag">platform admin</span> : null}
                </>
              ),
            },
            { key: 'name', header: 'Name', cell: (m) => m.name ?? '—', sort: (m) => m.name },
            {
              key: 'role',
              header: 'Role',
              sort: (m) => ROLES.indexOf(m.role),
              cell: (m) => (
                <>
                  <label className="sr-only" htmlFor={`role-${m.id}`}>
                    Role of {m.email}
                  </label>
                  <select id={`role-${m.id}`} value={m.role} disabled={m.id === session.user.id} onChange={(e) => void change(m, e.target.value as Role)}>
                    {ROLES.map((r) => (
                      <option key={r}>{r}</option>
                    ))}
                  </select>
                </>
              ),
            },
            { key: 'status', header: 'Status', cell: (m) => m.status, sort: (m) => m.status },
            { key: 'added', header: 'Added', cell: (m) => formatTime(m.created_at), sort: (m) => m.created_at },
          ]}
          actions={(m) =>
            m.id !== session.user.id ? (
              <button type="button" className="btn btn-small btn-ghost" onClick={() => void remove(m)} aria-label={`Remove ${m.email}`}>
                Remove
              </button>
            ) : null
          }
        />
      ) : null}
    </section>
  );
}
