import { PageTitle } from '../../components/ui.js';
import { Link } from '../../router.js';
import { isAdmin, useSession } from '../../session.js';
import { AuditPage } from './Audit.js';
import { JobsPage } from './Jobs.js';
import { KeysPage } from './Keys.js';
import { LicensePage } from './License.js';
import { MembersPage } from './Members.js';
import { Overview } from './Overview.js';
import { PlansPage } from './Plans.js';
import { PolicyPage } from './Policy.js';
import { PricesPage } from './Prices.js';
import { ProvidersPage } from './Providers.js';
import { SettingsPage } from './Settings.js';
import { SsoPage } from './Sso.js';
import { TenantsPage } from './Tenants.js';

interface Section {
  path: string;
  label: string;
  platform?: boolean;
}

const SECTIONS: Section[] = [
  { path: '/admin', label: 'Overview' },
  { path: '/admin/members', label: 'Members & roles' },
  { path: '/admin/keys', label: 'API keys' },
  { path: '/admin/policy', label: 'Data-boundary policy' },
  { path: '/admin/plans', label: 'Plans & quotas' },
  { path: '/admin/sso', label: 'Single sign-on' },
  { path: '/admin/audit', label: 'Audit log' },
  { path: '/admin/settings', label: 'Settings' },
  { path: '/admin/our-providers', label: 'Our providers' },
  { path: '/admin/providers', label: 'Providers & models', platform: true },
  { path: '/admin/prices', label: 'Prices', platform: true },
  { path: '/admin/tenants', label: 'Tenants', platform: true },
  { path: '/admin/jobs', label: 'Jobs', platform: true },
  { path: '/admin/license', label: 'Licence', platform: true },
];

export function AdminPage({ path }: { path: string }) {
  const { session } = useSession();
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
  switch (current?.path) {
    case '/admin':
      body = <Overview />;
      break;
    case '/admin/members':
      body = <MembersPage />;
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
      body = session.tenant ? (
        <ProvidersPage tenant={session.tenant} />
      ) : (
        <section className="page">
          <PageTitle>Our providers</PageTitle>
          <p className="muted">Choose an organisation first.</p>
        </section>
      );
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
      <nav className="admin-nav" aria-label="Admin console">
        <ul>
          {sections.map((s) => (
            <li key={s.path}>
              <Link to={s.path} aria-current={s.path === path ? 'page' : undefined}>
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
