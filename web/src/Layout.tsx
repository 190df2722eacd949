import { useState, type ReactNode } from 'react';
import { OrgSwitcher } from './components/OrgSwitcher.js';
import { ErrorNote } from './components/ui.js';
import { Link, usePath } from './router.js';
import { isAdmin, useSession } from './session.js';
import { ThemeToggle } from './theme.js';

export function Layout({ children, banner }: { children: ReactNode; banner?: ReactNode }) {
  const { session, signOut } = useSession();
  const path = usePath();
  const [error, setError] = useState<unknown>(null);
  const current = (p: string) => (path === p || path.startsWith(`${p}/`) ? 'page' : undefined);
  return (
    <div className="app">
      <a href="#main" className="skip-link">
        Skip to content
      </a>
      <header className="topbar">
        <span className="brand" aria-label="Enclave">
          <span className="brand-mark" aria-hidden="true" />
          Enclave
        </span>
        <nav aria-label="Main" className="topnav">
          <Link to="/chat" aria-current={current('/chat')}>
            Chat
          </Link>
          <Link to="/assistants" aria-current={current('/assistants')}>
            Assistants
          </Link>
          <Link to="/knowledge" aria-current={current('/knowledge')}>
            Knowledge
          </Link>
          <Link to="/me" aria-current={current('/me')}>
            My usage
          </Link>
          {isAdmin(session) ? (
            <Link to="/admin" aria-current={current('/admin')}>
              Admin
            </Link>
          ) : null}
        </nav>
        <div className="topbar-right">
          {session.tenants.length > 0 || session.user.platform_admin ? <OrgSwitcher id="org-switcher" onError={setError} /> : null}
          <span className="user" title={session.user.email}>
            {session.user.name || session.user.email}
          </span>
          <ThemeToggle />
          <button type="button" className="btn btn-ghost" onClick={() => void signOut()}>
            Sign out
          </button>
        </div>
      </header>
      {banner}
      <ErrorNote error={error} title="Could not switch organisation." />
      <main id="main" className="main">
        {children}
      </main>
    </div>
  );
}
