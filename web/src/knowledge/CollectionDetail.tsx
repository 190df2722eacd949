import { useEffect, useRef, useState, type FormEvent } from 'react';
import { api, CLASSIFICATIONS, uploadForm, type Classification } from '../api.js';
import { DataTable } from '../components/DataTable.js';
import { ErrorNote, formatTime, Spinner } from '../components/ui.js';
import { ActionStatus, CLASS_LABEL, useAction, useLoad } from '../pages/admin/common.js';
import { collectionPath, DOC_TYPES, formatBytes, type KnowledgeCollection, type KnowledgeFile, type KnowledgeHit } from './types.js';

const STATUS_LABEL: Record<KnowledgeFile['status'], string> = { in_progress: 'indexing', completed: 'ready', failed: 'failed', cancelled: 'cancelled' };

/**
 * One collection: upload documents (with progress), their indexing status (polled while any
 * is in progress) and errors, delete; its sharing and classification (raise only); a search
 * to check what it finds.
 */
export function CollectionDetail({ collection, onChanged }: { collection: KnowledgeCollection; onChanged: () => void }) {
  const files = useLoad(async () => (await api<{ data: KnowledgeFile[] }>(collectionPath(collection.id, '/files'))).data, [collection.id]);
  const act = useAction();
  const [progress, setProgress] = useState<{ name: string; fraction: number } | null>(null);
  const [fileClass, setFileClass] = useState<Classification | ''>('');
  const fileRef = useRef<HTMLInputElement>(null);
  const indexing = files.data?.some((f) => f.status === 'in_progress') ?? false;

  // Ingestion runs on the worker: poll the list while a file is being indexed.
  useEffect(() => {
    if (!indexing) return;
    const t = setTimeout(() => {
      void files.reload().then(onChanged);
    }, 1000);
    return () => clearTimeout(t);
  }, [indexing, files.data]);

  const upload = async (list: File[]) => {
    for (const f of list) {
      await act.run(`upload:${f.name}`, async () => {
        const form = new FormData();
        form.append('file', f, f.name);
        if (fileClass) form.append('classification', fileClass);
        setProgress({ name: f.name, fraction: 0 });
        try {
          await uploadForm<KnowledgeFile>(collectionPath(collection.id, '/files'), form, (fraction) => setProgress({ name: f.name, fraction }));
        } finally {
          setProgress(null);
        }
        await files.reload();
        onChanged();
        return `${f.name} uploaded; it is being indexed.`;
      });
    }
  };
  const removeFile = async (f: KnowledgeFile) => {
    if (!confirm(`Delete ${f.filename}? Its passages are removed from the collection and chats can no longer cite it.`)) return;
    await act.run(`delete:${f.id}`, async () => {
      await api(collectionPath(collection.id, `/files/${encodeURIComponent(f.id)}`), { method: 'DELETE' });
      await files.reload();
      onChanged();
      return `${f.filename} deleted.`;
    });
  };

  return (
    <div className="card" aria-labelledby={`kc-${collection.id}`}>
      <h2 id={`kc-${collection.id}`} className="card-title">
        {collection.name}
      </h2>
      {collection.description ? <p className="muted">{collection.description}</p> : null}
      <CollectionSettings collection={collection} onChanged={onChanged} />

      {collection.can_write ? (
        <form
          className="form-row kc-row"
          aria-label={`Upload to ${collection.name}`}
          onSubmit={(e: FormEvent) => {
            e.preventDefault();
            void upload(Array.from(fileRef.current?.files ?? []));
            if (fileRef.current) fileRef.current.value = '';
          }}
        >
          <label className="field">
            <span>Documents (PDF, Word, HTML, Markdown, text, CSV)</span>
            <input ref={fileRef} type="file" multiple accept={DOC_TYPES} required />
          </label>
          <label className="field">
            <span>Classification of these files</span>
            <select value={fileClass} onChange={(e) => setFileClass(e.target.value as Classification | '')}>
              <option value="">The collection's ({CLASS_LABEL[collection.classification]})</option>
              {CLASSIFICATIONS.filter((c) => CLASSIFICATIONS.indexOf(c) > CLASSIFICATIONS.indexOf(collection.classification)).map((c) => (
                <option key={c} value={c}>
                  {CLASS_LABEL[c]}
                </option>
              ))}
            </select>
          </label>
          <button className="btn btn-primary" type="submit" disabled={!!act.busy}>
            Upload
          </button>
        </form>
      ) : null}
      {progress ? (
        <div className="upload-progress">
          <label htmlFor="upload-progress">Uploading {progress.name}</label>
          <progress id="upload-progress" max={1} value={progress.fraction} />
        </div>
      ) : null}
      <ActionStatus act={act} />

      <ErrorNote error={files.error} title="Could not load the files." />
      {files.loading && !files.data ? <Spinner /> : null}
      {files.data ? (
        <DataTable
          caption={`Files in ${collection.name}`}
          rows={files.data}
          rowKey={(f) => f.id}
          search={(f) => f.filename}
          empty="No documents yet."
          initialSort={{ key: 'created', desc: true }}
          columns={[
            { key: 'name', header: 'File', className: 'break', cell: (f) => f.filename, sort: (f) => f.filename },
            {
              key: 'status',
              header: 'Status',
              sort: (f) => f.status,
              cell: (f) => (
                <span data-testid={`file-status-${f.filename}`}>
                  <span className={`tag ${f.status === 'completed' ? 'tag-active' : f.status === 'failed' ? 'tag-error' : ''}`}>{STATUS_LABEL[f.status]}</span>
                  {f.last_error ? <div className="small bad">{f.last_error.message}</div> : null}
                </span>
              ),
            },
            { key: 'class', header: 'Classification', cell: (f) => CLASS_LABEL[f.classification] ?? f.classification, sort: (f) => CLASSIFICATIONS.indexOf(f.classification) },
            { key: 'size', header: 'Size', num: true, cell: (f) => formatBytes(f.bytes), sort: (f) => f.bytes },
            { key: 'pages', header: 'Pages', num: true, cell: (f) => f.pages ?? '—', sort: (f) => f.pages ?? 0 },
            { key: 'chunks', header: 'Passages', num: true, cell: (f) => f.chunks, sort: (f) => f.chunks },
            { key: 'created', header: 'Added', className: 'small', cell: (f) => formatTime(f.created_at), sort: (f) => f.created_at },
          ]}
          actions={(f) =>
            collection.can_write ? (
              <button type="button" className="btn btn-small btn-ghost" disabled={!!act.busy} onClick={() => void removeFile(f)} aria-label={`Delete ${f.filename}`}>
                Delete
              </button>
            ) : null
          }
        />
      ) : null}
      <SearchBox collection={collection} />
    </div>
  );
}

function CollectionSettings({ collection, onChanged }: { collection: KnowledgeCollection; onChanged: () => void }) {
  const act = useAction();
  if (!collection.can_write) {
    return (
      <p className="small muted">
        Shared with {collection.sharing === 'tenant' ? 'the whole organisation' : 'its owner only'} · {CLASS_LABEL[collection.classification]} · read-only for you
      </p>
    );
  }
  const patch = (body: Record<string, unknown>, done: string) =>
    act.run('settings', async () => {
      await api(collectionPath(collection.id), { method: 'PATCH', body });
      onChanged();
      return done;
    });
  return (
    <>
    <div className="form-row kc-row">
      <label className="field">
        <span>Shared with</span>
        <select value={collection.sharing} disabled={!!act.busy} onChange={(e) => void patch({ sharing: e.target.value }, 'Sharing saved.')}>
          <option value="user">Only me</option>
          <option value="tenant">Everyone in the organisation</option>
        </select>
      </label>
      <label className="field">
        <span>Classification (can only be raised)</span>
        <select value={collection.classification} disabled={!!act.busy} onChange={(e) => void patch({ classification: e.target.value }, 'Classification raised: answers from this collection go only to models allowed for it.')}>
          {CLASSIFICATIONS.map((c) => (
            <option key={c} value={c} disabled={CLASSIFICATIONS.indexOf(c) < CLASSIFICATIONS.indexOf(collection.classification)}>
              {CLASS_LABEL[c]}
            </option>
          ))}
        </select>
      </label>
    </div>
    <ActionStatus act={act} />
    </>
  );
}

/** Searches the collection the way the chat will (hybrid retrieval), to check what it finds. */
function SearchBox({ collection }: { collection: KnowledgeCollection }) {
  const [query, setQuery] = useState('');
  const act = useAction();
  const [hits, setHits] = useState<KnowledgeHit[] | null>(null);
  const search = (e: FormEvent) => {
    e.preventDefault();
    void act.run('search', async () => {
      setHits((await api<{ data: KnowledgeHit[] }>(collectionPath(collection.id, '/search'), { body: { query, max_results: 5 } })).data);
    });
  };
  return (
    <>
      <form className="form-row" onSubmit={search} aria-label={`Search ${collection.name}`}>
        <label className="field">
          <span>Try a search</span>
          <input type="search" required value={query} onChange={(e) => setQuery(e.target.value)} placeholder="What the chat would look for" />
        </label>
        <button className="btn" type="submit" disabled={!!act.busy}>
          {act.busy ? <Spinner label="Searching…" /> : 'Search'}
        </button>
      </form>
      <ActionStatus act={act} />
      {hits ? (
        hits.length ? (
          <ol className="hits" aria-label="Passages found">
            {hits.map((h) => (
              <li key={`${h.file_id}:${h.chunk_index}`}>
                <div className="small muted">
                  {h.filename}
                  {h.page ? `, page ${h.page}` : ''} · score {h.score.toFixed(2)}
                </div>
                <blockquote>{h.text}</blockquote>
              </li>
            ))}
          </ol>
        ) : (
          <p className="muted">Nothing found.</p>
        )
      ) : null}
    </>
  );
}
