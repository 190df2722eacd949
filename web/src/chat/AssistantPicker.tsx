import { useEffect, useState } from 'react';
import { api, type AssistantView } from '../api.js';
import { setDraft } from './store.js';

/** The assistants the user may pick (shared + own), loaded once per chat page. */
export function useAssistants(): AssistantView[] {
  const [list, setList] = useState<AssistantView[]>([]);
  useEffect(() => {
    api<{ data: AssistantView[] }>('/api/chat/assistants').then(
      (r) => setList(r.data),
      () => setList([]), // assistants are optional: the chat works without them
    );
  }, []);
  return list;
}

/** Picks the assistant of a new chat (none = a plain chat). */
export function AssistantSelect({ assistants, value, onChange, disabled }: { assistants: AssistantView[]; value: string; onChange: (id: string) => void; disabled?: boolean }) {
  if (!assistants.length) return null;
  return (
    <label className="inline-field">
      <span>Assistant</span>
      <select value={value} onChange={(e) => onChange(e.target.value)} disabled={disabled}>
        <option value="">None</option>
        {assistants.map((a) => (
          <option key={a.id} value={a.id}>
            {a.name}
            {a.scope === 'private' ? ' (yours)' : ''}
          </option>
        ))}
      </select>
    </label>
  );
}

/** What a new chat with an assistant shows before the first message: who it is and its starters. */
export function AssistantIntro({ assistant, onStarter }: { assistant: AssistantView; onStarter: (text: string) => void }) {
  return (
    <div className="assistant-intro" data-testid="assistant-intro">
      <p>
        <strong>{assistant.name}</strong>
        {assistant.description ? ` — ${assistant.description}` : ''}
      </p>
      {assistant.starters.length ? (
        <ul className="starters" aria-label="Starter prompts">
          {assistant.starters.map((s) => (
            <li key={s}>
              <button type="button" className="btn starter" onClick={() => onStarter(s)}>
                {s}
              </button>
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

/** Puts a starter into the new chat's message box (the user still presses Send). */
export function useStarter(convId: string | null, focus: () => void): (text: string) => void {
  return (text) => {
    setDraft(convId, { text, editing: false });
    focus();
  };
}
