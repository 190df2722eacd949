import { useState, type FormEvent } from 'react';
import { DataTable } from '../../components/DataTable.js';
import { api, type PromptVersionView, type PromptView } from '../../api.js';
import { ErrorNote, formatTime, PageTitle, Spinner } from '../../components/ui.js';
import { ActionStatus, tenantPath, useAction, useLoad, useTenantId } from './common.js';

type History = PromptView & { versions: PromptVersionView[] };

/** The organisation's approved prompts: each edit is a new version (who, when); members insert them in chat with `/`. */
export function PromptsPage() {
  const tenant = useTenantId();
  const base = tenantPath(tenant, '/prompts');
  const list = useLoad(() => api<{ data: PromptView[] }>(base), [base]);
  const act = useAction();
  const [editing, setEditing] = useState<PromptView | 'new' | null>(null);
  const [history, setHistory] = useState<History | null>(null);

  const showHistory = (p: PromptView) => void act.run('history', async () => setHistory(await api<History>(`${base}/${encodeURIComponent(p.id)}`)));
  const remove = (p: PromptView) => {
    if (!confirm(`Delete the prompt “${p.title}” and its ${p.version} version(s)? Members can no longer insert it.`)) return;
    void act.run('delete', async () => {
      await api(`${base}/${encodeURIComponent(p.id)}`, { method: 'DELETE' });
      if (history?.id === p.id) setHistory(null);
      await list.reload();
      return `Deleted “${p.title}”.`;
    });
  };

  return (
    <section className="page">
      <PageTitle>Prompt library</PageTitle>
      <p className="muted">Approved prompts for everyone in this organisation. In chat, type / in the message box to insert one. Every edit is kept as a version with who made it and when.</p>
      <ActionStatus act={act} />
      {editing ? (
        <PromptForm
          base={base}
          initial={editing === 'new' ? null : editing}
          onCancel={() => setEditing(null)}
          onSaved={(p) => {
            setEditing(null);
            act.setDone(`Saved “${p.title}” (version ${p.version}).`);
            void list.reload();
            if (history?.id === p.id) showHistory(p);
          }}
        />
      ) : (
        <p>
          <button type="button" className="btn btn-primary" onClick={() => setEditing('new')}>
            New prompt
          </button>
        </p>
      )}
      <ErrorNote error={list.error} title="Could not load the prompt library." />
      {list.loading && !list.data ? <Spinner /> : null}
      {list.data ? (
        <DataTable
          caption="Prompts"
          rows={list.data.data}
          rowKey={(p) => p.id}
          search={(p) => `${p.title} ${p.body}`}
          empty="No prompts yet. Add the prompts your teams should reuse: they appear in the chat when someone types /."
          initialSort={{ key: 'title' }}
          columns={[
            { key: 'title', header: 'Title', cell: (p) => p.title, sort: (p) => p.title },
            { key: 'body', header: 'Prompt', cell: (p) => p.body, className: 'prompt-body' },
            { key: 'version', header: 'Version', cell: (p) => `v${p.version}`, sort: (p) => p.version, num: true },
            { key: 'changed', header: 'Last changed', cell: (p) => `${p.updated_by.name ?? p.updated_by.id}, ${formatTime(p.updated_at)}`, sort: (p) => p.updated_at },
          ]}
          actions={(p) => (
            <>
              <button type="button" className="btn btn-small btn-ghost" onClick={() => setEditing(p)} aria-label={`Edit ${p.title}`}>
                Edit
              </button>
              <button type="button" className="btn btn-small btn-ghost" onClick={() => showHistory(p)} aria-label={`History of ${p.title}`}>
                History
              </button>
              <button type="button" className="btn btn-small btn-ghost" onClick={() => remove(p)} aria-label={`Delete ${p.title}`}>
                Delete
              </button>
            </>
          )}
        />
      ) : null}
      {history ? (
        <section className="card" aria-labelledby="prompt-history">
          <h2 id="prompt-history" className="card-title">
            History of “{history.title}”
          </h2>
          <ol className="prompt-history" reversed>
            {history.versions.map((v) => (
              <li key={v.version}>
                <p className="small">
                  <strong>Version {v.version}</strong> · {v.author.name ?? v.author.id} · {formatTime(v.created_at)}
                  {v.title !== history.title ? ` · titled “${v.title}”` : ''}
                </p>
                <pre className="prompt-body">{v.body}</pre>
              </li>
            ))}
          </ol>
          <button type="button" className="btn btn-small" onClick={() => setHistory(null)}>
            Close history
          </button>
        </section>
      ) : null}
    </section>
  );
}

function PromptForm(props: { base: string; initial: PromptView | null; onCancel: () => void; onSaved: (p: PromptView) => void }) {
  const p = props.initial;
  const [title, setTitle] = useState(p?.title ?? '');
  const [body, setBody] = useState(p?.body ?? '');
  const act = useAction();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void act.run('save', async () => {
      const saved = p ? await api<PromptView>(`${props.base}/${encodeURIComponent(p.id)}`, { method: 'PUT', body: { title, body } }) : await api<PromptView>(props.base, { body: { title, body } });
      props.onSaved(saved);
    });
  };
  return (
    <form className="form card" onSubmit={submit} aria-label={p ? `Edit ${p.title}` : 'New prompt'}>
      <label className="field">
        <span>Title</span>
        <input required maxLength={120} value={title} onChange={(e) => setTitle(e.target.value)} />
      </label>
      <label className="field">
        <span>Prompt</span>
        <textarea required rows={6} value={body} onChange={(e) => setBody(e.target.value)} />
      </label>
      {p ? <p className="hint muted small">Saving creates version {p.version + 1}; version {p.version} stays in the history.</p> : null}
      <ErrorNote error={act.error} />
      <div className="button-row">
        <button type="submit" className="btn btn-primary" disabled={!!act.busy}>
          {act.busy ? <Spinner label="Saving…" /> : 'Save prompt'}
        </button>
        <button type="button" className="btn btn-ghost" onClick={props.onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
