import { useState } from 'react';
import { NoOrganisation } from '../../components/NoOrganisation.js';
import { PageTitle } from '../../components/ui.js';
import { Link } from '../../router.js';
import { isAdmin, useSession } from '../../session.js';
import { AdminAssistantsPage } from './Assistants.js';
import { AuditPage } from './Audit.js';
import { CallsPage } from './Calls.js';
import { FeedbackPage } from './Feedback.js';
import { PromptsPage } from './Prompts.js';
import { JobsPage } from './Jobs.js';
import { KeysPage } from './Keys.js';
import { LicensePage } from './License.js';
import { MembersPage } from './Members.js';
import { Overview } from './Overview.js';
import { PlatformHome } from './PlatformHome.js';
import { PlansPage } from './Plans.js';
import { PolicyPage } from './Policy.js';
import { PricesPage } from './Prices.js';
import { ProvidersPage } from './Providers.js';
import { SettingsPage } from './Settings.js';
import { SsoPage } from './Sso.js';
import { TeamsPage } from './Teams.js';
import { TenantsPage } from './Tenants.js';
import { UsagePage } from './Usage.js';

interface Section {
  path: string;
  label: string;
  platform?: boolean;
  /** Works inside an organisation only: without one, a picker is shown instead (no call with a missing id). */
  tenant?: boolean;
}

const SECTIONS: Section[] = [
  { path: '/admin', label: 'Overview' },
  { path: '/admin/usage', label: 'Usage analytics', tenant: true },
  { path: '/admin/calls', label: 'Calls', tenant: true },
  { path: '/admin/feedback', label: 'Answer feedback', tenant: true },
  { path: '/admin/members', label: 'Members & roles', tenant: true },
  { path: '/admin/teams', label: 'Teams', tenant: true },
  { path: '/admin/assistants', label: 'Assistants', tenant: true },
  { path: '/admin/prompts', label: 'Prompt library', tenant: true },
  { path: '/admin/keys', label: 'API keys', tenant: true },
  { path: '/admin/policy', label: 'Data-boundary policy', tenant: true },
  { path: '/admin/plans', label: 'Plans & quotas' },
  { path: '/admin/sso', label: 'Single sign-on', tenant: true },
  { path: '/admin/audit', label: 'Audit log' },
  { path: '/admin/settings', label: 'Settings', tenant: true },
  { path: '/admin/our-providers', label: 'Our providers', tenant: true },
  { path: '/admin/providers', label: 'Providers & models', platform: true },
  { path: '/admin/prices', label: 'Prices', platform: true },
  { path: '/admin/tenants', label: 'Tenants', platform: true },
  { path: '/admin/jobs', label: 'Jobs', platform: true },
  { path: '/admin/license', label: 'Licence', platform: true },
];

export function AdminPage({ path }: { path: string }) {
  const { session } = useSession();
  /** The menu on small screens: collapsed to one button showing where you are. */
  const [menu, setMenu] = useState(false);
  if (!isAdmin(session)) {
    return (
      <section className="page narrow">
        <PageTitle>Not allowed</PageTitle>
        <div className="note note-error" role="alert">
          The admin console is for organisation owners and administrators. Your role{session.role ? ` (${session.role})` : ''} does not include it.
        </div>
        <p>
          <Link to="/chat">Back to chat</Link>
        </p>
      </section>
    );
  }
  const platform = session.user.platform_admin;
  const sections = SECTIONS.filter((s) => !s.platform || platform);
  const current = sections.find((s) => s.path === path);
  let body;
  if (current?.tenant && !session.tenant) body = <NoOrganisation what={current.label} />;
  else switch (current?.path) {
    case '/admin':
      body = session.tenant ? <Overview /> : <PlatformHome />;
      break;
    case '/admin/usage':
      body = <UsagePage />;
      break;
    case '/admin/calls':
      body = <CallsPage />;
      break;
    case '/admin/members':
      body = <MembersPage />;
      break;
    case '/admin/teams':
      body = <TeamsPage />;
      break;
    case '/admin/feedback':
      body = <FeedbackPage />;
      break;
    case '/admin/assistants':
      body = <AdminAssistantsPage />;
      break;
    case '/admin/prompts':
      body = <PromptsPage />;
      break;
    case '/admin/keys':
      body = <KeysPage />;
      break;
    case '/admin/policy':
      body = <PolicyPage />;
      break;
    case '/admin/plans':
      body = <PlansPage />;
      break;
    case '/admin/sso':
      body = <SsoPage />;
      break;
    case '/admin/jobs':
      body = <JobsPage />;
      break;
    case '/admin/audit':
      body = <AuditPage />;
      break;
    case '/admin/settings':
      body = <SettingsPage />;
      break;
    case '/admin/providers':
      body = <ProvidersPage />;
      break;
    case '/admin/our-providers':
      body = session.tenant ? <ProvidersPage tenant={session.tenant} /> : null;
      break;
    case '/admin/prices':
      body = <PricesPage />;
      break;
    case '/admin/tenants':
      body = <TenantsPage />;
      break;
    case '/admin/license':
      body = <LicensePage />;
      break;
    default:
      body = (
        <section className="page">
          <PageTitle>Page not found</PageTitle>
        </section>
      );
  }
  return (
    <div className="admin">
      <nav className={`admin-nav${menu ? ' open' : ''}`} aria-label="Admin console">
        <button type="button" className="btn admin-menu-toggle" aria-expanded={menu} aria-controls="admin-menu" onClick={() => setMenu(!menu)}>
          <span>Admin menu: {current?.label ?? 'Overview'}</span>
          <span aria-hidden="true">{menu ? '▲' : '▼'}</span>
        </button>
        <ul id="admin-menu">
          {sections.map((s) => (
            <li key={s.path}>
              <Link to={s.path} aria-current={s.path === path ? 'page' : undefined} onClick={() => setMenu(false)}>
                {s.label}
              </Link>
            </li>
          ))}
        </ul>
      </nav>
      <div className="admin-body">{body}</div>
    </div>
  );
}
