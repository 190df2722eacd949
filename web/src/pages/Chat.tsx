import { useCallback, useEffect, useMemo, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { api, ApiError, raw, readSse, type Classification } from '../api.js';
import { Markdown } from '../components/Markdown.js';
import { boundaryLabel, BoundaryBadge, ErrorNote, formatCost, formatNumber, Spinner } from '../components/ui.js';
import { navigate } from '../router.js';

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  cost_micros: number;
}
interface Conversation {
  id: string;
  title: string;
  model: string | null;
  classification: Classification | null;
  usage: Usage;
  updated_at: number;
}
interface Message {
  id: string;
  role: 'user' | 'assistant' | 'system';
  content: string;
  model: string | null;
  status: string;
  error_code: string | null;
}
interface Model {
  id: string;
  boundaries: string[];
}
interface ModelsResponse {
  data: Model[];
  default_classification: Classification;
  policy: Record<Classification, string[]> | null;
  gateway: 'ready' | 'unavailable';
}

const CLASSES: Classification[] = ['public', 'internal', 'confidential', 'restricted'];
const CLASS_LABEL: Record<Classification, string> = { public: 'Public', internal: 'Internal', confidential: 'Confidential', restricted: 'Restricted' };

function list(items: string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`;
}

/** How the redaction notice names each detector type (types only: the matched text never reaches the UI). */
const REDACTED_LABEL: Record<string, string> = { email: 'e-mail', phone: 'phone', iban: 'IBAN', card: 'card number', national_id: 'national ID', secret: 'secret' };

/** A refusal in words the user can act on. */
function explain(err: ApiError, cls: Classification, policy: ModelsResponse['policy']): string {
  const allowed = policy?.[cls]?.map(boundaryLabel) ?? [];
  if (err.code === 'policy_boundary_denied' || err.code === 'policy_region_denied') {
    return allowed.length
      ? `${CLASS_LABEL[cls]} data may only go to ${list(allowed)} models under your organisation's policy — pick a ${list(allowed)} model, or choose a lower classification if the data allows it.`
      : `${CLASS_LABEL[cls]} data may not be sent to any model under your organisation's policy.`;
  }
  if (err.code === 'policy_content_blocked' || err.code.startsWith('policy_content')) {
    return `Your message contains data your organisation's policy does not allow to leave (for example personal or secret data). Remove it, or pick a Local model. (${err.message})`;
  }
  if (err.code === 'key_classification_exceeded' || err.code === 'policy_classification_exceeded') return `You may not send ${CLASS_LABEL[cls]} data. Choose a lower classification.`;
  if (err.code === 'model_not_found') return 'That model is not available to you. Pick another model.';
  if (err.code === 'rate_limited' || err.status === 429) return `You are sending too fast or your quota is used up: ${err.message}`;
  return err.message;
}

export function ChatPage({ conversationId }: { conversationId: string | null }) {
  const [models, setModels] = useState<ModelsResponse | null>(null);
  const [modelsError, setModelsError] = useState<unknown>(null);
  const [convs, setConvs] = useState<Conversation[] | null>(null);
  const [query, setQuery] = useState('');
  const [conv, setConv] = useState<Conversation | null>(null);
  const [messages, setMessages] = useState<Message[]>([]);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [model, setModel] = useState('');
  const [cls, setCls] = useState<Classification>('internal');
  const [draft, setDraft] = useState('');
  const [editing, setEditing] = useState(false);
  const [streaming, setStreaming] = useState<{ text: string } | null>(null);
  const [refusal, setRefusal] = useState<string | null>(null);
  /** Detector types the gateway redacted from the last turn before a cloud model saw it (x-enclave-redacted). */
  const [redacted, setRedacted] = useState<string[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [renaming, setRenaming] = useState<string | null>(null);
  const [renameText, setRenameText] = useState('');
  const abortRef = useRef<AbortController | null>(null);
  const creatingRef = useRef<string | null>(null);
  const inputRef = useRef<HTMLTextAreaElement>(null);
  const logRef = useRef<HTMLDivElement>(null);

  useEffect(() => {
    api<ModelsResponse>('/api/chat/models')
      .then((m) => {
        setModels(m);
        setCls(m.default_classification);
        setModel((cur) => cur || m.data[0]?.id || '');
      })
      .catch(setModelsError);
  }, []);

  const loadList = useCallback(async (q: string) => {
    try {
      const r = await api<{ data: Conversation[] }>(`/api/chat/conversations${q ? `?q=${encodeURIComponent(q)}` : ''}`);
      setConvs(r.data);
    } catch (e) {
      setLoadError(e);
    }
  }, []);
  useEffect(() => {
    const t = setTimeout(() => void loadList(query.trim()), query ? 200 : 0);
    return () => clearTimeout(t);
  }, [query, loadList]);

  const loadConversation = useCallback(async (id: string) => {
    try {
      const c = await api<Conversation & { messages: Message[] }>(`/api/chat/conversations/${encodeURIComponent(id)}`);
      setConv(c);
      setMessages(c.messages);
      if (c.model) setModel(c.model);
      if (c.classification) setCls(c.classification);
      setLoadError(null);
    } catch (e) {
      setLoadError(e);
      setConv(null);
      setMessages([]);
    }
  }, []);

  useEffect(() => {
    setRefusal(null);
    setRedacted(null);
    setError(null);
    setEditing(false);
    if (!conversationId) {
      setConv(null);
      setMessages([]);
      if (models) setCls(models.default_classification);
      return;
    }
    if (creatingRef.current === conversationId) return; // we just made it and are streaming into it
    void loadConversation(conversationId);
  }, [conversationId, loadConversation]); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => {
    const el = logRef.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [messages, streaming]);

  const currentModel = models?.data.find((m) => m.id === model);
  const allowedHere = useMemo(() => new Set(models?.policy?.[cls] ?? ['local', 'private', 'public']), [models, cls]);
  const modelAllowed = !currentModel || currentModel.boundaries.some((b) => allowedHere.has(b));

  const send = async (mode: 'send' | 'regenerate' | 'edit', content?: string) => {
    if (streaming) return;
    if (!model) {
      setError(new Error('Pick a model first.'));
      return;
    }
    setError(null);
    setRefusal(null);
    setRedacted(null);
    let id = conv?.id ?? conversationId;
    try {
      if (!id) {
        const c = await api<Conversation>('/api/chat/conversations', { body: { model, classification: cls } });
        id = c.id;
        creatingRef.current = id;
        setConv(c);
        navigate(`/chat/${id}`);
      }
    } catch (e) {
      setError(e);
      return;
    }
    // Show the user's turn at once.
    setMessages((ms) => {
      if (mode === 'send') return [...ms, { id: `local-${Date.now()}`, role: 'user', content: content ?? '', model: null, status: 'complete', error_code: null }];
      const lastUser = ms.map((m) => m.role).lastIndexOf('user');
      const kept = ms.slice(0, lastUser + 1);
      if (mode === 'edit' && lastUser >= 0) kept[lastUser] = { ...kept[lastUser]!, content: content ?? '' };
      return kept;
    });
    if (mode !== 'regenerate') setDraft('');
    setEditing(false);
    const ac = new AbortController();
    abortRef.current = ac;
    setStreaming({ text: '' });
    let text = '';
    let stopped = false;
    try {
      const res = await raw(`/api/chat/conversations/${encodeURIComponent(id)}/completions`, {
        body: { mode, model, classification: cls, ...(content !== undefined ? { content } : {}) },
        signal: ac.signal,
        headers: { accept: 'text/event-stream' },
      });
      const types = (res.headers.get('x-enclave-redacted') ?? '')
        .split(',')
        .map((t) => t.trim())
        .filter(Boolean);
      if (types.length) setRedacted(types);
      await readSse(res, (event, data) => {
        if (event === 'enclave') {
          const saved = JSON.parse(data) as { conversation: Conversation };
          setConv(saved.conversation);
          return;
        }
        if (data === '[DONE]') return;
        const j = JSON.parse(data) as { choices?: { delta?: { content?: string } }[]; error?: { message: string; code: string } };
        if (j.error) throw new ApiError(502, j.error.code, j.error.message);
        const d = j.choices?.[0]?.delta?.content;
        if (d) {
          text += d;
          setStreaming({ text });
        }
      });
    } catch (e) {
      if ((e as Error).name === 'AbortError') stopped = true;
      else if (e instanceof ApiError && e.status !== 502 && e.status < 500) setRefusal(explain(e, cls, models?.policy ?? null));
      else setError(e);
    } finally {
      abortRef.current = null;
      setStreaming(null);
      creatingRef.current = null;
    }
    if (stopped) {
      setMessages((ms) => [...ms, { id: `local-stop-${Date.now()}`, role: 'assistant', content: text, model, status: 'stopped', error_code: null }]);
      // The server stores the partial answer when it notices the disconnect; then reload.
      setTimeout(() => void loadConversation(id), 300);
    } else {
      await loadConversation(id);
    }
    void loadList(query.trim());
    inputRef.current?.focus();
  };

  const stop = () => abortRef.current?.abort();

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const text = draft;
    if (!text.trim()) return;
    void send(editing ? 'edit' : 'send', text);
  };
  const onKey = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      if (!streaming) submit(e);
    }
    if (e.key === 'Escape' && editing) {
      setEditing(false);
      setDraft('');
    }
  };

  const lastUser = messages.map((m) => m.role).lastIndexOf('user');
  const canRegenerate = !streaming && lastUser >= 0;

  const rename = async (c: Conversation) => {
    const title = renameText.trim();
    setRenaming(null);
    if (!title || title === c.title) return;
    try {
      await api(`/api/chat/conversations/${c.id}`, { method: 'PATCH', body: { title } });
      void loadList(query.trim());
      if (conv?.id === c.id) setConv({ ...conv, title });
    } catch (e) {
      setError(e);
    }
  };
  const remove = async (c: Conversation) => {
    if (!confirm(`Delete “${c.title}”? This cannot be undone.`)) return;
    try {
      await api(`/api/chat/conversations/${c.id}`, { method: 'DELETE' });
      if (conv?.id === c.id) navigate('/chat');
      void loadList(query.trim());
    } catch (e) {
      setError(e);
    }
  };
  const removeAll = async () => {
    if (!confirm('Delete all your conversations in this organisation? This cannot be undone.')) return;
    try {
      await api('/api/chat/conversations', { method: 'DELETE' });
      navigate('/chat');
      void loadList('');
    } catch (e) {
      setError(e);
    }
  };

  return (
    <div className="chat">
      <aside className="chat-side" aria-label="Conversations">
        <button
          type="button"
          className="btn btn-primary btn-wide"
          onClick={() => {
            navigate('/chat');
            inputRef.current?.focus();
          }}
        >
          New chat
        </button>
        <label className="field field-compact">
          <span className="sr-only">Search conversations</span>
          <input type="search" placeholder="Search by title" value={query} onChange={(e) => setQuery(e.target.value)} />
        </label>
        {convs === null ? (
          <Spinner />
        ) : convs.length === 0 ? (
          <p className="muted small">{query ? 'No conversation matches.' : 'No conversations yet.'}</p>
        ) : (
          <ul className="conv-list">
            {convs.map((c) => (
              <li key={c.id} className={c.id === (conv?.id ?? conversationId) ? 'active' : undefined}>
                {renaming === c.id ? (
                  <form
                    className="rename"
                    onSubmit={(e) => {
                      e.preventDefault();
                      void rename(c);
                    }}
                  >
                    <label className="sr-only" htmlFor={`rename-${c.id}`}>
                      New title
                    </label>
                    <input id={`rename-${c.id}`} autoFocus value={renameText} onChange={(e) => setRenameText(e.target.value)} onBlur={() => void rename(c)} onKeyDown={(e) => e.key === 'Escape' && setRenaming(null)} />
                  </form>
                ) : (
                  <>
                    <a
                      href={`/chat/${c.id}`}
                      className="conv-link"
                      aria-current={c.id === conversationId ? 'page' : undefined}
                      onClick={(e) => {
                        e.preventDefault();
                        navigate(`/chat/${c.id}`);
                      }}
                    >
                      {c.title}
                    </a>
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
                      <button type="button" className="btn btn-icon" aria-label={`Delete ${c.title}`} title="Delete" onClick={() => void remove(c)}>
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
          <button type="button" className="btn btn-ghost btn-small" onClick={() => void removeAll()}>
            Delete all my conversations
          </button>
        ) : null}
      </aside>

      <section className="chat-main" aria-labelledby="chat-title">
        <div className="chat-head">
          <div className="chat-heading">
            <h1 id="chat-title" className="chat-title" tabIndex={-1}>
              {conv?.title ?? 'New chat'}
            </h1>
            {conv ? (
              <p className="chat-usage" data-testid="conversation-usage" aria-live="polite">
                <span className="sr-only">This conversation: </span>
                <span data-testid="conversation-tokens">{formatNumber(conv.usage.prompt_tokens + conv.usage.completion_tokens)} tokens</span>
                {' · '}
                <span data-testid="conversation-cost" title="Metered cost of this conversation (prices set by your administrators)">
                  {formatCost(conv.usage.cost_micros)}
                </span>
              </p>
            ) : null}
          </div>
          <div className="chat-controls">
            <label className="inline-field">
              <span>Model</span>
              <select value={model} onChange={(e) => setModel(e.target.value)} disabled={!models || models.data.length === 0 || !!streaming} aria-describedby="model-boundary">
                {models?.data.length === 0 ? <option value="">No models available</option> : null}
                {models?.data.map((m) => (
                  <option key={m.id} value={m.id}>
                    {m.id} — {m.boundaries.map(boundaryLabel).join(', ')}
                  </option>
                ))}
              </select>
            </label>
            <span id="model-boundary" className="badges">
              <span className="sr-only">Data boundary: </span>
              {currentModel?.boundaries.map((b) => <BoundaryBadge key={b} boundary={b} />)}
            </span>
            <label className="inline-field">
              <span>Data classification</span>
              <select value={cls} onChange={(e) => setCls(e.target.value as Classification)} disabled={!!streaming}>
                {CLASSES.map((c) => (
                  <option key={c} value={c}>
                    {CLASS_LABEL[c]}
                    {models?.default_classification === c ? ' (default)' : ''}
                  </option>
                ))}
              </select>
            </label>
          </div>
        </div>
        <ErrorNote error={modelsError} title="Could not load models." />
        {models?.gateway === 'unavailable' ? <div className="note note-warn">The AI gateway is not available on this server yet.</div> : null}
        {models && models.data.length === 0 && models.gateway === 'ready' ? (
          <div className="note note-warn" role="status">
            No model is available to you yet. Ask your administrator to add a provider or grant you access.
          </div>
        ) : null}
        {!modelAllowed && models?.policy ? (
          <div className="note note-warn" role="status">
            {CLASS_LABEL[cls]} data may only go to {list((models.policy[cls] ?? []).map(boundaryLabel))} models — this model is {list(currentModel!.boundaries.map(boundaryLabel))}. Pick another model.
          </div>
        ) : null}
        <ErrorNote error={loadError} title="Could not load this conversation." />

        <div className="chat-log" ref={logRef} role="log" aria-live="polite" aria-busy={!!streaming} aria-label="Conversation">
          {messages.length === 0 && !streaming ? (
            <div className="empty">
              <p>Ask anything. Your messages go only to the models your organisation allows for the data classification you choose.</p>
              <p className="muted small">Enter sends · Shift+Enter adds a new line</p>
            </div>
          ) : null}
          {messages.map((m, i) => (
            <article key={m.id} className={`msg msg-${m.role}`} aria-label={m.role === 'user' ? 'You said' : 'Assistant said'}>
              <div className="msg-who">
                {m.role === 'user' ? 'You' : m.model ?? 'Assistant'}
                {m.status === 'stopped' ? <span className="tag">stopped</span> : null}
                {m.status === 'error' ? <span className="tag tag-error">error {m.error_code}</span> : null}
              </div>
              {m.role === 'user' ? <div className="msg-text">{m.content}</div> : <Markdown text={m.content} />}
              {i === lastUser && !streaming ? (
                <div className="msg-actions">
                  <button
                    type="button"
                    className="btn btn-small btn-ghost"
                    onClick={() => {
                      setEditing(true);
                      setDraft(m.content);
                      inputRef.current?.focus();
                    }}
                  >
                    Edit
                  </button>
                </div>
              ) : null}
            </article>
          ))}
          {streaming ? (
            <article className="msg msg-assistant" aria-label="Assistant is answering">
              <div className="msg-who">{model}</div>
              {streaming.text ? <Markdown text={streaming.text} /> : <Spinner label="Thinking…" />}
            </article>
          ) : null}
        </div>

        {redacted ? (
          <div className="note note-warn note-redacted" role="status" data-testid="redaction-notice">
            Some content was redacted before it left for a cloud model ({redacted.map((t) => REDACTED_LABEL[t] ?? t).join(', ')}).
          </div>
        ) : null}
        {refusal ? (
          <div className="note note-refusal" role="alert">
            <strong>Not sent. </strong>
            {refusal}
          </div>
        ) : null}
        <ErrorNote error={error} />

        <form className="composer" onSubmit={submit}>
          <label htmlFor="composer-input" className="sr-only">
            {editing ? 'Edit your last message' : 'Message'}
          </label>
          <textarea
            id="composer-input"
            ref={inputRef}
            rows={3}
            value={draft}
            placeholder={editing ? 'Edit your last message, then press Enter to resend' : 'Message (Enter sends, Shift+Enter new line)'}
            onChange={(e) => setDraft(e.target.value)}
            onKeyDown={onKey}
          />
          <div className="composer-bar">
            <span className="muted small">{messages.length ? 'Enter sends · Shift+Enter new line' : ''}</span>
            <span className="composer-buttons">
              {editing ? (
                <button
                  type="button"
                  className="btn btn-ghost"
                  onClick={() => {
                    setEditing(false);
                    setDraft('');
                  }}
                >
                  Cancel edit
                </button>
              ) : null}
              <button type="button" className="btn" disabled={!canRegenerate} onClick={() => void send('regenerate')}>
                Regenerate
              </button>
              {streaming ? (
                <button type="button" className="btn btn-danger" onClick={stop}>
                  Stop
                </button>
              ) : (
                <button type="submit" className="btn btn-primary" disabled={!draft.trim() || !model}>
                  {editing ? 'Resend' : 'Send'}
                </button>
              )}
            </span>
          </div>
        </form>
      </section>
    </div>
  );
}
