import { useEffect, useState, type FormEvent } from 'react';
import { api, CLASSIFICATIONS, type AssistantView, type ChatModelsView, type Classification } from '../api.js';
import { CLASS_LABEL } from '../chat/explain.js';
import { ErrorNote, formatTime, Note, Spinner } from '../components/ui.js';
import { Link } from '../router.js';

/**
 * Lists and edits assistants (presets) at one API base: the user's private ones
 * (/api/chat/assistants) or the tenant's shared ones (/admin/api/tenants/:id/assistants).
 * `editable` says which rows this screen may change (shared ones are read-only for users).
 */
export function AssistantEditor({ base, editable, scopeLabel }: { base: string; editable: (a: AssistantView) => boolean; scopeLabel: string }) {
  const [items, setItems] = useState<AssistantView[] | null>(null);
  const [models, setModels] = useState<ChatModelsView | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [editing, setEditing] = useState<AssistantView | 'new' | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const load = async () => {
    try {
      setItems((await api<{ data: AssistantView[] }>(base)).data);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    void load();
    api<ChatModelsView>('/api/chat/models').then(setModels, () => setModels(null));
  }, [base]);

  const remove = async (a: AssistantView) => {
    if (!confirm(`Delete the assistant “${a.name}”? ${a.scope === 'tenant' ? 'Nobody in the organisation can pick it any more; ' : ''}conversations started with it keep its instructions.`)) return;
    try {
      await api(`${base}/${encodeURIComponent(a.id)}`, { method: 'DELETE' });
      setDone(`Deleted “${a.name}”.`);
      await load();
    } catch (e) {
      setError(e);
    }
  };

  return (
    <>
      <ErrorNote error={error} />
      {done ? <Note kind="ok">{done}</Note> : null}
      {editing ? (
        <AssistantForm
          base={base}
          models={models}
          initial={editing === 'new' ? null : editing}
          scopeLabel={scopeLabel}
          onCancel={() => setEditing(null)}
          onSaved={(a) => {
            setEditing(null);
            setDone(`Saved “${a.name}”.`);
            void load();
          }}
        />
      ) : (
        <p>
          <button type="button" className="btn btn-primary" onClick={() => setEditing('new')}>
            New {scopeLabel} assistant
          </button>
        </p>
      )}
      {!items ? <Spinner /> : null}
      {items && items.length === 0 ? <p className="empty-state">No assistants yet. An assistant keeps instructions, a model and a data classification you use often, so a new chat starts ready.</p> : null}
      <ul className="assistant-cards" aria-label="Assistants">
        {items?.map((a) => (
          <li key={a.id} className="card assistant-card">
            <h2 className="card-title">
              {a.name} <span className="tag">{a.scope === 'tenant' ? 'Organisation' : 'Only you'}</span>
            </h2>
            {a.description ? <p>{a.description}</p> : null}
            <p className="muted small assistant-instructions">{a.instructions}</p>
            <p className="small">
              {a.model ? <>Model: <strong>{a.model}</strong> · </> : null}
              {a.classification ? <>Classification: <strong>{CLASS_LABEL[a.classification]}</strong> · </> : null}
              Updated {formatTime(a.updated_at)}
            </p>
            {a.starters.length ? <p className="small muted">Starters: {a.starters.map((s) => `“${s}”`).join(' · ')}</p> : null}
            <div className="button-row">
              <Link className="btn btn-small" to={`/chat?assistant=${encodeURIComponent(a.id)}`} aria-label={`Start a chat with ${a.name}`}>
                Start a chat
              </Link>
              {editable(a) ? (
                <>
                  <button type="button" className="btn btn-small btn-ghost" onClick={() => setEditing(a)} aria-label={`Edit ${a.name}`}>
                    Edit
                  </button>
                  <button type="button" className="btn btn-small btn-ghost" onClick={() => void remove(a)} aria-label={`Delete ${a.name}`}>
                    Delete
                  </button>
                </>
              ) : null}
            </div>
          </li>
        ))}
      </ul>
    </>
  );
}

function AssistantForm(props: { base: string; models: ChatModelsView | null; initial: AssistantView | null; scopeLabel: string; onCancel: () => void; onSaved: (a: AssistantView) => void }) {
  const a = props.initial;
  const [name, setName] = useState(a?.name ?? '');
  const [description, setDescription] = useState(a?.description ?? '');
  const [instructions, setInstructions] = useState(a?.instructions ?? '');
  const [model, setModel] = useState(a?.model ?? '');
  const [cls, setCls] = useState<Classification | ''>(a?.classification ?? '');
  const [starters, setStarters] = useState((a?.starters ?? []).join('\n'));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const body = { name, description, instructions, model: model || null, classification: cls || null, starters: starters.split('\n').map((s) => s.trim()).filter(Boolean).slice(0, 6) };
    try {
      const saved = a ? await api<AssistantView>(`${props.base}/${encodeURIComponent(a.id)}`, { method: 'PATCH', body }) : await api<AssistantView>(props.base, { body });
      props.onSaved(saved);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="form card" onSubmit={submit} aria-label={a ? `Edit ${a.name}` : `New ${props.scopeLabel} assistant`}>
      <label className="field">
        <span>Name</span>
        <input required maxLength={80} value={name} onChange={(e) => setName(e.target.value)} />
      </label>
      <label className="field">
        <span>Description (optional)</span>
        <input maxLength={300} value={description} onChange={(e) => setDescription(e.target.value)} />
      </label>
      <label className="field">
        <span>Instructions (sent to the model at the start of every chat with this assistant)</span>
        <textarea required rows={5} maxLength={20000} value={instructions} onChange={(e) => setInstructions(e.target.value)} />
      </label>
      <div className="form-row">
        <label className="field">
          <span>Model</span>
          <select value={model} onChange={(e) => setModel(e.target.value)}>
            <option value="">Any (the user picks)</option>
            {model && !props.models?.data.some((m) => m.id === model) ? <option value={model}>{model} (not available to you)</option> : null}
            {props.models?.data.map((m) => (
              <option key={m.id} value={m.id}>
                {m.id}
              </option>
            ))}
          </select>
        </label>
        <label className="field">
          <span>Data classification</span>
          <select value={cls} onChange={(e) => setCls(e.target.value as Classification | '')}>
            <option value="">The organisation's default</option>
            {CLASSIFICATIONS.map((c) => (
              <option key={c} value={c}>
                {CLASS_LABEL[c]}
              </option>
            ))}
          </select>
        </label>
      </div>
      <p className="hint muted small">The classification is the least a chat with this assistant is sent as: a user may choose a stricter one, never a lower one. Your organisation's policy still decides which models may receive it.</p>
      <label className="field">
        <span>Starter prompts (one per line, up to 6)</span>
        <textarea rows={3} value={starters} onChange={(e) => setStarters(e.target.value)} />
      </label>
      <ErrorNote error={error} />
      <div className="button-row">
        <button type="submit" className="btn btn-primary" disabled={busy}>
          {busy ? <Spinner label="Saving…" /> : 'Save assistant'}
        </button>
        <button type="button" className="btn btn-ghost" onClick={props.onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
