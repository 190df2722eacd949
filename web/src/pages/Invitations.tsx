import { useEffect, useState, type FormEvent } from 'react';
import { api, setCsrf, type Role } from '../api.js';
import { ErrorNote, formatTime, Note, PageTitle, Spinner } from '../components/ui.js';

/** An invitation as its invitee sees it (server/identity/invitations.ts serializeForInvitee). */
interface InviteeView {
  id: string;
  email: string;
  role: Role;
  tenant: { slug: string; name: string };
  created_at: number;
  expires_at: number;
}
interface SsoProvider {
  id: string;
  name: string;
  tenant: string | null;
}

/**
 * The signed-in user's pending invitations (issue 16: consent before membership), shown
 * above every page until accepted or declined. Accepting adds the membership; the
 * organisation then appears in the organisation switcher.
 */
export function InvitationsBanner({ onChanged }: { onChanged: () => void }) {
  const [items, setItems] = useState<InviteeView[]>([]);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    let live = true;
    api<{ data: InviteeView[] }>('/auth/invitations', { quiet: true })
      .then((r) => live && setItems(r.data))
      .catch(() => live && setItems([]));
    return () => {
      live = false;
    };
  }, []);
  if (!items.length && !error) return null;
  const decide = async (i: InviteeView, what: 'accept' | 'decline') => {
    setError(null);
    try {
      await api(`/auth/invitations/${i.id}/${what}`, { method: 'POST', body: {} });
      setItems((xs) => xs.filter((x) => x.id !== i.id));
      if (what === 'accept') onChanged();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <div className="note note-info invitations" role="region" aria-label="Your invitations">
      <ErrorNote error={error} />
      {items.map((i) => (
        <p key={i.id}>
          You are invited to <strong>{i.tenant.name || i.tenant.slug}</strong> as {i.role}.{' '}
          <button type="button" className="btn btn-small btn-primary" onClick={() => void decide(i, 'accept')}>
            Accept invitation to {i.tenant.name || i.tenant.slug}
          </button>{' '}
          <button type="button" className="btn btn-small btn-ghost" onClick={() => void decide(i, 'decline')}>
            Decline
          </button>
        </p>
      ))}
    </div>
  );
}

/**
 * /invite#<token>: the invitation link. The token stays in the URL fragment (never sent to
 * the server in a URL). Signed in as the invited address: accept. New to Enclave: choose a
 * password, or sign in with the organisation's sign-in provider where it offers one.
 */
export function InvitePage({ signedInAs, onDone }: { signedInAs: string | null; onDone: () => void }) {
  const token = location.hash.slice(1);
  const [invite, setInvite] = useState<InviteeView | null>(null);
  const [providers, setProviders] = useState<SsoProvider[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [password, setPassword] = useState('');
  const [repeat, setRepeat] = useState('');
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (!token) return;
    api<InviteeView>('/auth/invite/lookup', { body: { token }, quiet: true })
      .then((x) => {
        setInvite(x);
        return api<{ data: SsoProvider[] }>(`/auth/oidc/providers?tenant=${encodeURIComponent(x.tenant.slug)}&email=${encodeURIComponent(x.email)}`, { quiet: true });
      })
      .then((p) => setProviders(p.data.filter((x) => x.tenant !== null)))
      .catch((e) => setError(e));
  }, [token]);

  const accept = async (e?: FormEvent) => {
    e?.preventDefault();
    setError(null);
    if (!signedInAs && password !== repeat) {
      setError(new Error('The two passwords differ.'));
      return;
    }
    setBusy(true);
    try {
      const r = await api<{ csrf_token?: string }>('/auth/invite/accept', { body: { token, ...(signedInAs ? {} : { password }) }, quiet: true });
      if (r.csrf_token) setCsrf(r.csrf_token);
      history.replaceState(null, '', '/chat');
      onDone();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  const viaSso = async (idp: string) => {
    setError(null);
    try {
      const r = await api<{ url: string }>('/auth/invite/sso', { body: { token, idp }, quiet: true });
      location.assign(r.url);
    } catch (err) {
      setError(err);
    }
  };

  return (
    <main id="main" className="signin">
      <div className="signin-card">
        <PageTitle>Invitation</PageTitle>
        {!token ? <Note kind="warn">This link has no invitation in it. Open the whole link you were given.</Note> : null}
        <ErrorNote error={error} />
        {token && !invite && !error ? <Spinner label="Opening the invitation…" /> : null}
        {invite ? (
          <>
            <p>
              <strong>{invite.tenant.name || invite.tenant.slug}</strong> invites <strong>{invite.email}</strong> as {invite.role}. The invitation
              expires {formatTime(invite.expires_at)}.
            </p>
            {signedInAs ? (
              signedInAs === invite.email ? (
                <button type="button" className="btn btn-primary btn-wide" disabled={busy} onClick={() => void accept()}>
                  Accept the invitation
                </button>
              ) : (
                <Note kind="warn">
                  You are signed in as {signedInAs}. This invitation is for {invite.email}: sign out and sign in as that address to accept it.
                </Note>
              )
            ) : (
              <>
                <form className="form" onSubmit={accept} aria-label="Create your account">
                  <p className="hint">
                    New to Enclave? Choose your password (at least 12 characters, not a well-known one). Already have an account with this address?{' '}
                    <a href="/login">Sign in</a> and accept it from the notice at the top.
                  </p>
                  <label className="field">
                    <span>Password</span>
                    <input type="password" autoComplete="new-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
                  </label>
                  <label className="field">
                    <span>Repeat the password</span>
                    <input type="password" autoComplete="new-password" required value={repeat} onChange={(e) => setRepeat(e.target.value)} />
                  </label>
                  <button type="submit" className="btn btn-primary btn-wide" disabled={busy}>
                    {busy ? <Spinner label="Accepting…" /> : 'Create account and accept'}
                  </button>
                </form>
                {providers.length ? (
                  <ul className="sso-list">
                    {providers.map((p) => (
                      <li key={p.id}>
                        <button type="button" className="btn btn-wide" onClick={() => void viaSso(p.id)}>
                          Accept with {p.name}
                        </button>
                      </li>
                    ))}
                  </ul>
                ) : null}
              </>
            )}
          </>
        ) : null}
      </div>
    </main>
  );
}
