import { useState } from 'react';
import type { ConversationView } from '../api.js';
import { Spinner } from '../components/ui.js';
import { navigate } from '../router.js';
import { streamOf, useChatStore } from './store.js';

/** The conversation list: search, new chat, rename, delete. A drawer on small screens. */
export function ConversationList(props: {
  convs: ConversationView[] | null;
  currentId: string | null;
  query: string;
  onQuery: (q: string) => void;
  onNew: () => void;
  onRename: (c: ConversationView, title: string) => void;
  onDelete: (c: ConversationView) => void;
  onDeleteAll: () => void;
  open: boolean;
  onClose: () => void;
}) {
  useChatStore();
  const { convs, currentId, query } = props;
  const [renaming, setRenaming] = useState<string | null>(null);
  const [renameText, setRenameText] = useState('');
  const finishRename = (c: ConversationView) => {
    setRenaming(null);
    props.onRename(c, renameText.trim());
  };
  return (
    <aside id="chat-side" className={`chat-side${props.open ? ' open' : ''}`} aria-label="Conversations">
      <div className="chat-side-head">
        <button type="button" className="btn btn-primary btn-wide" onClick={props.onNew}>
          New chat
        </button>
        <button type="button" className="btn btn-ghost drawer-close" aria-label="Close conversations" onClick={props.onClose}>
          ×
        </button>
      </div>
      <label className="field field-compact">
        <span className="sr-only">Search conversations</span>
        <input type="search" placeholder="Search titles and messages" value={query} onChange={(e) => props.onQuery(e.target.value)} />
      </label>
      {convs === null ? (
        <Spinner />
      ) : convs.length === 0 ? (
        <p className="muted small">{query ? 'No conversation matches.' : 'No conversations yet.'}</p>
      ) : (
        <ul className="conv-list">
          {convs.map((c) => (
            <li key={c.id} className={c.id === currentId ? 'active' : undefined}>
              {renaming === c.id ? (
                <form
                  className="rename"
                  onSubmit={(e) => {
                    e.preventDefault();
                    finishRename(c);
                  }}
                >
                  <label className="sr-only" htmlFor={`rename-${c.id}`}>
                    New title
                  </label>
                  <input id={`rename-${c.id}`} autoFocus value={renameText} onChange={(e) => setRenameText(e.target.value)} onBlur={() => finishRename(c)} onKeyDown={(e) => e.key === 'Escape' && setRenaming(null)} />
                </form>
              ) : (
                <>
                  <a
                    href={`/chat/${c.id}`}
                    className="conv-link"
                    aria-current={c.id === currentId ? 'page' : undefined}
                    onClick={(e) => {
                      e.preventDefault();
                      navigate(`/chat/${c.id}`);
                      props.onClose();
                    }}
                  >
                    {c.title}
                    {streamOf(c.id) ? <span className="sr-only"> (answering)</span> : null}
                  </a>
                  {streamOf(c.id) ? <span className="live-dot" aria-hidden="true" title="Answering" /> : null}
                  <span className="conv-actions">
                    <button
                      type="button"
                      className="btn btn-icon"
                      aria-label={`Rename ${c.title}`}
                      title="Rename"
                      onClick={() => {
                        setRenaming(c.id);
                        setRenameText(c.title);
                      }}
                    >
                      ✎
                    </button>
                    <button type="button" className="btn btn-icon" aria-label={`Delete ${c.title}`} title="Delete" onClick={() => props.onDelete(c)}>
                      ×
                    </button>
                  </span>
                </>
              )}
            </li>
          ))}
        </ul>
      )}
      {convs && convs.length > 0 && !query ? (
        <button type="button" className="btn btn-ghost btn-small" onClick={props.onDeleteAll}>
          Delete all my conversations
        </button>
      ) : null}
    </aside>
  );
}
