import { useState, type FormEvent } from 'react';
import { api, CLASSIFICATIONS, type Classification } from '../api.js';
import { DataTable } from '../components/DataTable.js';
import { ErrorNote, PageTitle, Spinner } from '../components/ui.js';
import { CollectionDetail } from '../knowledge/CollectionDetail.js';
import { collectionPath, formatBytes, KNOWLEDGE, type KnowledgeCollection } from '../knowledge/types.js';
import { ActionStatus, CLASS_LABEL, useAction, useLoad } from './admin/common.js';

/**
 * Knowledge (issue 20): the collections the user may read — their own and those shared with the
 * organisation —, a new collection, and the selected one's documents. Chats can then answer
 * from a collection and cite its passages.
 */
export function KnowledgePage() {
  const list = useLoad(async () => (await api<{ data: KnowledgeCollection[] }>(KNOWLEDGE)).data, []);
  const [selected, setSelected] = useState<string | null>(null);
  const act = useAction();
  const [form, setForm] = useState({ name: '', description: '', sharing: 'user', classification: 'internal' as Classification });

  const create = async (e: FormEvent) => {
    e.preventDefault();
    await act.run('create', async () => {
      const c = await api<KnowledgeCollection>(KNOWLEDGE, { body: { name: form.name.trim(), ...(form.description.trim() ? { description: form.description.trim() } : {}), sharing: form.sharing, classification: form.classification } });
      setForm((f) => ({ ...f, name: '', description: '' }));
      await list.reload();
      setSelected(c.id);
      return `Collection ${c.name} created. Upload documents to it below.`;
    });
  };
  const remove = async (c: KnowledgeCollection) => {
    if (!confirm(`Delete the collection ${c.name} and its ${c.file_counts.total} documents? Chats can no longer use or cite them.`)) return;
    await act.run(`delete:${c.id}`, async () => {
      await api(collectionPath(c.id), { method: 'DELETE' });
      if (selected === c.id) setSelected(null);
      await list.reload();
      return `Collection ${c.name} deleted.`;
    });
  };
  const current = list.data?.find((c) => c.id === selected) ?? null;

  return (
    <section className="page">
      <PageTitle>Knowledge</PageTitle>
      <p className="muted">Documents the chat can answer from, with citations. They stay inside Enclave; a collection's classification decides which models may see its passages.</p>
      <ErrorNote error={list.error} title="Could not load the collections." />
      {list.loading && !list.data ? <Spinner /> : null}
      {list.data ? (
        <DataTable
          caption="Knowledge collections"
          rows={list.data}
          rowKey={(c) => c.id}
          search={(c) => `${c.name} ${c.description ?? ''}`}
          empty="No collections yet. Create one below and upload documents to it."
          initialSort={{ key: 'name' }}
          rowClassName={(c) => (selected === c.id ? 'selected' : undefined)}
          columns={[
            { key: 'name', header: 'Name', className: 'break', cell: (c) => c.name, sort: (c) => c.name },
            { key: 'sharing', header: 'Shared with', cell: (c) => (c.sharing === 'tenant' ? 'Organisation' : 'Only its owner'), sort: (c) => c.sharing },
            { key: 'class', header: 'Classification', cell: (c) => CLASS_LABEL[c.classification] ?? c.classification, sort: (c) => CLASSIFICATIONS.indexOf(c.classification) },
            {
              key: 'files',
              header: 'Documents',
              num: true,
              sort: (c) => c.file_counts.total,
              cell: (c) => (
                <>
                  {c.file_counts.total}
                  {c.file_counts.in_progress ? <span className="tag">{c.file_counts.in_progress} indexing</span> : null}
                  {c.file_counts.failed ? <span className="tag tag-error">{c.file_counts.failed} failed</span> : null}
                </>
              ),
            },
            { key: 'size', header: 'Size', num: true, cell: (c) => formatBytes(c.usage_bytes), sort: (c) => c.usage_bytes },
          ]}
          actions={(c) => (
            <span className="button-row nowrap">
              <button type="button" className="btn btn-small" aria-pressed={selected === c.id} onClick={() => setSelected(selected === c.id ? null : c.id)} aria-label={`Open ${c.name}`}>
                Open
              </button>
              {c.can_write ? (
                <button type="button" className="btn btn-small btn-ghost" disabled={!!act.busy} onClick={() => void remove(c)} aria-label={`Delete ${c.name}`}>
                  Delete
                </button>
              ) : null}
            </span>
          )}
        />
      ) : null}
      <ActionStatus act={act} />
      {current ? <CollectionDetail key={current.id} collection={current} onChanged={() => void list.reload()} /> : null}

      <h2>New collection</h2>
      <form className="form card" onSubmit={create} aria-label="Create a collection">
        <div className="form-row">
          <label className="field">
            <span>Name</span>
            <input required maxLength={200} value={form.name} onChange={(e) => setForm((f) => ({ ...f, name: e.target.value }))} placeholder="HR handbook" />
          </label>
          <label className="field">
            <span>Description (optional)</span>
            <input maxLength={500} value={form.description} onChange={(e) => setForm((f) => ({ ...f, description: e.target.value }))} />
          </label>
        </div>
        <div className="form-row">
          <label className="field">
            <span>Shared with</span>
            <select value={form.sharing} onChange={(e) => setForm((f) => ({ ...f, sharing: e.target.value }))}>
              <option value="user">Only me</option>
              <option value="tenant">Everyone in the organisation</option>
            </select>
          </label>
          <label className="field">
            <span>Classification</span>
            <select value={form.classification} onChange={(e) => setForm((f) => ({ ...f, classification: e.target.value as Classification }))}>
              {CLASSIFICATIONS.map((c) => (
                <option key={c} value={c}>
                  {CLASS_LABEL[c]}
                </option>
              ))}
            </select>
          </label>
        </div>
        <button className="btn btn-primary" type="submit" disabled={!!act.busy}>
          {act.busy === 'create' ? <Spinner label="Creating…" /> : 'Create collection'}
        </button>
      </form>
    </section>
  );
}
