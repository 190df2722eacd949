import { useEffect, useState } from 'react';
import { api } from '../api.js';
import { Link } from '../router.js';
import { KNOWLEDGE, type Citation, type KnowledgeCollection } from '../knowledge/types.js';
import { knowledgeOf, setKnowledge, useChatStore } from './store.js';

/**
 * Knowledge in the chat (issue 20): the collections the user may read, picked per conversation
 * (each turn then answers from their passages, with citations), and an answer's sources, each
 * opening the passage it cites.
 */
/** The collections the user may read; null while loading or when the knowledge API is not there. */
export function useCollections(): KnowledgeCollection[] | null {
  const [collections, setCollections] = useState<KnowledgeCollection[] | null>(null);
  useEffect(() => {
    api<{ data: KnowledgeCollection[] }>(KNOWLEDGE).then(
      (r) => setCollections(r.data),
      () => setCollections(null),
    );
  }, []);
  return collections;
}

export function KnowledgePicker({ convId, disabled, collections }: { convId: string | null; disabled: boolean; collections: KnowledgeCollection[] | null }) {
  useChatStore();
  // Without the knowledge API (or any collection) the picker is simply not shown.
  if (!collections?.length) return null;
  const picked = knowledgeOf(convId);
  const toggle = (id: string, on: boolean) => setKnowledge(convId, on ? [...picked, id] : picked.filter((x) => x !== id));
  const names = collections.filter((c) => picked.includes(c.id)).map((c) => c.name);
  return (
    <details className="knowledge-picker">
      <summary>Knowledge: {names.length ? names.join(', ') : 'none'}</summary>
      <fieldset disabled={disabled}>
        <legend className="sr-only">Answer from these collections</legend>
        {collections.map((c) => (
          <label key={c.id} className="check">
            <input type="checkbox" checked={picked.includes(c.id)} onChange={(e) => toggle(c.id, e.target.checked)} />
            {c.name}
            <span className="muted small">
              {' '}
              ({c.file_counts.completed} documents, {c.classification})
            </span>
          </label>
        ))}
        <Link to="/knowledge" className="small">
          Manage collections
        </Link>
      </fieldset>
    </details>
  );
}

/** The passages an answer cites: [n] file, page — each opens the passage itself. */
export function Sources({ citations }: { citations: readonly Citation[] }) {
  if (!citations.length) return null;
  return (
    <div className="sources">
      <div className="small muted">Sources</div>
      <ul aria-label="Sources">
        {citations.map((c) => (
          <li key={c.n}>
            <details>
              <summary>
                [{c.n}] {c.filename}
                {c.page ? `, page ${c.page}` : ''}
              </summary>
              <blockquote>{c.text}</blockquote>
            </details>
          </li>
        ))}
      </ul>
    </div>
  );
}

/** The stored answers' citations of a conversation, by message id (empty without the knowledge API). */
export async function loadCitations(convId: string): Promise<Record<string, Citation[]>> {
  try {
    return (await api<{ data: Record<string, Citation[]> }>(`/api/knowledge/citations?conversation_id=${encodeURIComponent(convId)}`)).data;
  } catch {
    return {};
  }
}
