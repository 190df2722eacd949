import { useState } from 'react';
import { Link } from '../router.js';
import { useSession } from '../session.js';
import { OrgSwitcher } from './OrgSwitcher.js';
import { ErrorNote, PageTitle } from './ui.js';

/**
 * Shown instead of a page that works inside an organisation when the session has none
 * (a platform administrator without memberships): a picker, never a call with a missing id.
 */
export function NoOrganisation({ what }: { what: string }) {
  const { session } = useSession();
  const [error, setError] = useState<unknown>(null);
  return (
    <section className="page narrow" data-testid="no-organisation">
      <PageTitle>{what}</PageTitle>
      <p>{what} works inside an organisation. Choose the organisation to work in:</p>
      <p>
        <OrgSwitcher id="org-picker" label="Organisation" onError={setError} showAlways />
      </p>
      <ErrorNote error={error} title="Could not switch organisation." />
      {session.user.platform_admin ? (
        <p>
          Or go to the <Link to="/admin">platform overview</Link> (tenants, health, licence and usage across organisations).
        </p>
      ) : (
        <p className="muted">You are not a member of any organisation yet. Ask an administrator to invite you.</p>
      )}
    </section>
  );
}
