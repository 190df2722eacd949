import type { ChatModelsView, Classification } from '../api.js';
import { boundaryLabel } from '../components/ui.js';
import { CLASS_LABEL, list } from './explain.js';
import type { Outcome } from './store.js';

/** How the redaction notice names each detector type (types only: the matched text never reaches the UI). */
const REDACTED_LABEL: Record<string, string> = { email: 'e-mail', phone: 'phone', iban: 'IBAN', card: 'card number', national_id: 'national ID', secret: 'secret' };

/** What stands in the way of sending, said before the user tries: no gateway, no model, a role that may not chat, a model the classification may not use. */
export function ChatNotes({ models, canChat, cls, model }: { models: ChatModelsView | null; canChat: boolean; cls: Classification; model: string }) {
  const current = models?.data.find((m) => m.id === model);
  const allowed = models?.policy?.[cls] ?? ['local', 'private', 'public'];
  const modelAllowed = !current || current.boundaries.some((b) => allowed.includes(b));
  return (
    <>
      {models?.gateway === 'unavailable' ? <div className="note note-warn">The AI gateway is not available on this server yet.</div> : null}
      {models && models.data.length === 0 && models.gateway === 'ready' && canChat ? (
        <div className="note note-warn" role="status">
          No model is available to you yet. Ask your administrator to add a provider or grant you access.
        </div>
      ) : null}
      {!canChat ? (
        <div className="note note-warn" role="status">
          Your role in this organisation lets you read your conversations but not send messages. Ask an administrator for the member role.
        </div>
      ) : null}
      {!modelAllowed && models?.policy ? (
        <div className="note note-warn" role="status">
          {CLASS_LABEL[cls]} data may only go to {list((models.policy[cls] ?? []).map(boundaryLabel))} models — this model is {list(current!.boundaries.map(boundaryLabel))}. Pick another model.
        </div>
      ) : null}
    </>
  );
}

/** What the last turn of the conversation ended with: redactions, or why it was not sent. */
export function OutcomeNotes({ outcome }: { outcome: Outcome | undefined }) {
  return (
    <>
      {outcome?.redacted ? (
        <div className="note note-warn note-redacted" role="status" data-testid="redaction-notice">
          Some content was redacted before it left for a cloud model ({outcome.redacted.map((t) => REDACTED_LABEL[t] ?? t).join(', ')}).
        </div>
      ) : null}
      {outcome?.refusal ? (
        <div className="note note-refusal" role="alert">
          <strong>Not sent. </strong>
          {outcome.refusal}
        </div>
      ) : null}
    </>
  );
}
