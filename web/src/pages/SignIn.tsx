import { useEffect, useState, type FormEvent } from 'react';
import { api, ApiError, setCsrf, type Session } from '../api.js';
import { Note, PageTitle, Spinner } from '../components/ui.js';

interface SsoProvider {
  id: string;
  name: string;
  tenant: string | null;
  login_path: string;
}

/** Sign-in messages by error code: say what happened and what to do. */
const MESSAGES: Record<string, string> = {
  auth_invalid_credentials: 'E-mail or password is wrong.',
  tenant_suspended: 'Your organisation is suspended. Contact your administrator.',
  sso_required: 'Your organisation requires single sign-on. Use its sign-in button below.',
  auth_session_expired: 'Your session has expired. Sign in again.',
};

function messageFor(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.code === 'auth_locked') return `This account is temporarily locked after too many failed sign-ins. ${e.message}`;
    return MESSAGES[e.code] ?? e.message;
  }
  return 'Could not reach Enclave. Check your connection and try again.';
}

export function SignIn({ notice, blocked, onSignedIn }: { notice?: string; blocked?: { message: string; code: string }; onSignedIn: (s: Session) => void }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [org, setOrg] = useState(() => new URLSearchParams(location.search).get('tenant') ?? '');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(blocked ? (MESSAGES[blocked.code] ?? blocked.message) : null);
  const [providers, setProviders] = useState<SsoProvider[]>([]);

  useEffect(() => {
    let live = true;
    // An organisation's buttons appear for an address of a domain verified for it (the
    // server lists no tenant by its name alone, so nobody can enumerate tenants).
    const hint = new URLSearchParams();
    if (org.trim()) hint.set('tenant', org.trim());
    if (/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email.trim())) hint.set('email', email.trim());
    const q = hint.size ? `?${hint.toString()}` : '';
    const timer = setTimeout(() => {
      api<{ data: SsoProvider[] }>(`/auth/oidc/providers${q}`, { quiet: true })
        .then((r) => live && setProviders(r.data))
        .catch(() => live && setProviders([]));
    }, 250);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [org, email]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const s = await api<Session>('/auth/login', { body: { email, password, ...(org.trim() ? { tenant: org.trim() } : {}) }, quiet: true });
      setCsrf(s.csrf_token);
      onSignedIn(s);
    } catch (err) {
      setError(messageFor(err));
      setBusy(false);
    }
  };

  const returnTo = encodeURIComponent(location.pathname.startsWith('/login') ? '/chat' : location.pathname);
  return (
    <main id="main" className="signin">
      <div className="signin-card">
        <div className="brand brand-large">
          <span className="brand-mark" aria-hidden="true" />
          Enclave
        </div>
        <PageTitle>Sign in</PageTitle>
        {notice ? <Note>{notice}</Note> : null}
        {error ? (
          <div className="note note-error" role="alert" id="signin-error">
            {error}
          </div>
        ) : null}
        <form onSubmit={submit} className="form" aria-describedby={error ? 'signin-error' : undefined}>
          <label className="field">
            <span>E-mail</span>
            <input type="email" name="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} />
          </label>
          <label className="field">
            <span>Password</span>
            <input type="password" name="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
          </label>
          <details className="field-more">
            <summary>Organisation (optional)</summary>
            <label className="field">
              <span>Organisation short name</span>
              <input name="tenant" autoComplete="organization" value={org} onChange={(e) => setOrg(e.target.value)} aria-describedby="org-hint" />
            </label>
            <p id="org-hint" className="hint">
              Shows your organisation's sign-in buttons and signs you in to it.
            </p>
          </details>
          <button type="submit" className="btn btn-primary btn-wide" disabled={busy}>
            {busy ? <Spinner label="Signing in…" /> : 'Sign in'}
          </button>
        </form>
        {providers.length ? (
          <div className="sso">
            <p className="divider">
              <span>or</span>
            </p>
            <ul className="sso-list">
              {providers.map((p) => (
                <li key={p.id}>
                  <a className="btn btn-wide" href={`${p.login_path}?returnTo=${returnTo}`}>
                    Sign in with {p.name}
                  </a>
                </li>
              ))}
            </ul>
          </div>
        ) : null}
      </div>
    </main>
  );
}

export function TenantPicker({ session, onPicked }: { session: Session; onPicked: (s: Session) => void }) {
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const pick = async (slug: string) => {
    setBusy(slug);
    setError(null);
    try {
      onPicked(await api<Session>('/auth/switch-tenant', { body: { tenant: slug } }));
    } catch (e) {
      setError(messageFor(e));
      setBusy(null);
    }
  };
  return (
    <main id="main" className="signin">
      <div className="signin-card">
        <PageTitle>Choose an organisation</PageTitle>
        <p>You belong to several organisations. Which one do you want to work in? You can switch later from the top bar.</p>
        {error ? (
          <div className="note note-error" role="alert">
            {error}
          </div>
        ) : null}
        <ul className="tenant-list">
          {session.tenants.map((t) => (
            <li key={t.id}>
              <button type="button" className="btn btn-wide tenant-choice" disabled={busy !== null || t.status !== 'active'} onClick={() => void pick(t.slug)}>
                <span className="tenant-name">{t.name || t.slug}</span>
                <span className="muted">
                  {t.role}
                  {t.status !== 'active' ? ' · suspended' : ''}
                  {session.tenant?.id === t.id ? ' · current' : ''}
                </span>
              </button>
            </li>
          ))}
        </ul>
      </div>
    </main>
  );
}
