import { useCallback, useEffect, useMemo, useState } from 'react';
import { api, ApiError, onSessionLost, setCsrf, type Session } from './api.js';
import { Banner } from './components/Banner.js';
import { NoOrganisation } from './components/NoOrganisation.js';
import { resetChatStore } from './chat/store.js';
import { Spinner } from './components/ui.js';
import { Layout } from './Layout.js';
import { AdminPage } from './pages/admin/Admin.js';
import { AssistantsPage } from './pages/Assistants.js';
import { KnowledgePage } from './pages/Knowledge.js';
import { ChatPage } from './pages/Chat.js';
import { InvitationsBanner, InvitePage } from './pages/Invitations.js';
import { MePage } from './pages/Me.js';
import { NotFound } from './pages/NotFound.js';
import { SignIn, TenantPicker } from './pages/SignIn.js';
import { navigate, usePath } from './router.js';
import { SessionContext, type SessionApi } from './session.js';

type State =
  | { kind: 'loading' }
  | { kind: 'signed_out'; notice?: string }
  | { kind: 'blocked'; message: string; code: string }
  | { kind: 'signed_in'; session: Session; pickTenant: boolean };

const LOST: Record<string, string> = {
  auth_session_expired: 'Your session has expired. Sign in again.',
  auth_session_invalid: 'Your session has ended. Sign in again.',
  auth_required: 'Sign in to continue.',
};

export function App() {
  const [state, setState] = useState<State>({ kind: 'loading' });
  const path = usePath();

  const accept = useCallback((session: Session, pickTenant = false) => {
    setCsrf(session.csrf_token);
    setState({ kind: 'signed_in', session, pickTenant });
  }, []);

  const load = useCallback(async () => {
    try {
      accept(await api<Session>('/auth/session', { quiet: true }));
    } catch (e) {
      setCsrf(null);
      if (e instanceof ApiError && e.status === 403) setState({ kind: 'blocked', message: e.message, code: e.code });
      else setState({ kind: 'signed_out', ...(e instanceof ApiError && e.code === 'auth_session_expired' ? { notice: LOST[e.code] } : {}) });
    }
  }, [accept]);

  useEffect(() => {
    void load();
    return onSessionLost((code) => {
      setCsrf(null);
      setState({ kind: 'signed_out', notice: LOST[code] ?? 'Sign in again.' });
    });
  }, [load]);

  const sessionApi = useMemo<SessionApi | null>(() => {
    if (state.kind !== 'signed_in') return null;
    return {
      session: state.session,
      refresh: load,
      signOut: async () => {
        try {
          await api('/auth/logout', { method: 'POST', body: {} });
        } catch {
          /* the session may already be gone */
        }
        setCsrf(null);
        resetChatStore();
        setState({ kind: 'signed_out', notice: 'You have signed out.' });
        navigate('/login', { replace: true });
      },
      switchTenant: async (tenant: string) => {
        const s = await api<Session>('/auth/switch-tenant', { body: { tenant } });
        accept(s);
      },
    };
  }, [state, load, accept]);

  if (state.kind === 'loading') {
    return (
      <main className="center-page" id="main">
        <Spinner label="Loading Enclave…" />
      </main>
    );
  }
  // An invitation link works signed in or out (issue 16: consent before membership).
  if ((path.split('?')[0] ?? '') === '/invite') {
    return (
      <InvitePage
        signedInAs={state.kind === 'signed_in' ? state.session.user.email : null}
        onDone={() => {
          navigate('/chat', { replace: true });
          void load();
        }}
      />
    );
  }
  if (state.kind === 'signed_out' || state.kind === 'blocked') {
    const notice = state.kind === 'blocked' ? undefined : state.notice;
    return (
      <SignIn
        {...(notice ? { notice } : {})}
        {...(state.kind === 'blocked' ? { blocked: { message: state.message, code: state.code } } : {})}
        onSignedIn={(s) => {
          accept(s, s.tenants.length > 1);
          if (path.startsWith('/login') || path === '/') navigate(!s.tenant && s.user.platform_admin ? '/admin' : '/chat', { replace: true });
        }}
      />
    );
  }
  if (state.pickTenant) {
    return (
      <TenantPicker
        session={state.session}
        onPicked={(s) => {
          accept(s, false);
        }}
      />
    );
  }

  const pathname = path.split('?')[0] ?? '/';
  let page;
  const noTenant = !state.session.tenant;
  if (pathname === '/' || pathname === '/login') {
    // A platform administrator without an organisation starts on the platform overview.
    const home = noTenant && state.session.user.platform_admin ? '/admin' : '/chat';
    queueMicrotask(() => navigate(home, { replace: true }));
    page = null;
  } else if (pathname === '/chat' || pathname.startsWith('/chat/')) page = noTenant ? <NoOrganisation what="Chat" /> : <ChatPage conversationId={pathname.slice('/chat/'.length) || null} />;
  else if (pathname === '/assistants') page = noTenant ? <NoOrganisation what="Assistants" /> : <AssistantsPage />;
  else if (pathname === '/knowledge') page = noTenant ? <NoOrganisation what="Knowledge" /> : <KnowledgePage />;
  else if (pathname === '/me') page = noTenant ? <NoOrganisation what="My usage" /> : <MePage />;
  else if (pathname === '/admin' || pathname.startsWith('/admin/')) page = <AdminPage path={pathname} />;
  else page = <NotFound />;

  return (
    <SessionContext.Provider value={sessionApi}>
      <Layout
        banner={
          <>
            <Banner />
            <InvitationsBanner onChanged={() => void load()} />
          </>
        }
      >{page}</Layout>
    </SessionContext.Provider>
  );
}
