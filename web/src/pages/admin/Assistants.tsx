import { AssistantEditor } from '../../assistants/AssistantEditor.js';
import { PageTitle } from '../../components/ui.js';
import { tenantPath, useTenantId } from './common.js';

/** The organisation's shared assistants (tenant admins). */
export function AdminAssistantsPage() {
  const tenant = useTenantId();
  return (
    <section className="page">
      <PageTitle>Assistants</PageTitle>
      <p className="muted">Shared with everyone in this organisation. Each chat still goes through your data-boundary policy and plans: an assistant cannot send data anywhere its user could not.</p>
      <AssistantEditor base={tenantPath(tenant, '/assistants')} editable={() => true} scopeLabel="shared" />
    </section>
  );
}
