import { AssistantEditor } from '../assistants/AssistantEditor.js';
import { PageTitle } from '../components/ui.js';

/** Everyone's assistants page: the organisation's shared assistants (read-only here) and your own. */
export function AssistantsPage() {
  return (
    <section className="page">
      <PageTitle>Assistants</PageTitle>
      <p className="muted">Start a chat with instructions, a model and a data classification ready. Your organisation's assistants are shared by its administrators; yours are visible only to you.</p>
      <AssistantEditor base="/api/chat/assistants" editable={(a) => a.scope === 'private'} scopeLabel="personal" />
    </section>
  );
}
