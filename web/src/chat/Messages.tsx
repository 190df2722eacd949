import { useEffect, useRef, type ReactNode } from 'react';
import type { ChatMessageView } from '../api.js';
import { CopyButton } from '../components/CopyButton.js';
import { Markdown } from '../components/Markdown.js';
import { Spinner } from '../components/ui.js';
import { attachmentUrl } from './Attachments.js';
import type { Citation } from '../knowledge/types.js';
import { FeedbackButtons } from './Feedback.js';
import { Sources } from './Knowledge.js';
import type { Stream } from './store.js';
import type { ThreadItem } from './thread.js';

/**
 * What the log shows while a turn is under way: the shown path with the pending turn applied
 * (a send appends it after its parent, an edit replaces the edited turn and what followed, a
 * regenerate drops the answer being replaced). Idempotent, so a reload during the stream
 * (which already has the stored turn) shows the same thing.
 */
export function withPending(items: ThreadItem[], s: Stream | undefined): ThreadItem[] {
  if (!s) return items;
  const at = (id: string | undefined) => (id ? items.findIndex((x) => x.message.id === id) : -1);
  let out = s.retryOf ? items.filter((x) => x.message.id !== s.retryOf) : items;
  if (s.mode === 'send') {
    const p = at(s.parentId);
    if (p >= 0) out = out.slice(0, out.findIndex((x) => x.message.id === s.parentId) + 1);
    const last = out.at(-1)?.message;
    if (last?.role === 'user' && last.status === 'complete' && last.content === s.content) return out;
    return [...out, pending(s.content ?? '')];
  }
  if (s.mode === 'edit') {
    const e = s.editOf ? out.findIndex((x) => x.message.id === s.editOf) : out.findLastIndex((x) => x.message.role === 'user' && x.message.status !== 'not_sent');
    // Not on the path any more: the stored edit (a new branch) is shown already.
    return e < 0 ? out : [...out.slice(0, e), pending(s.content ?? '')];
  }
  const u = s.parentId ? out.findIndex((x) => x.message.id === s.parentId) : out.findLastIndex((x) => x.message.role === 'user' && x.message.status !== 'not_sent');
  return u < 0 ? out : out.slice(0, u + 1);
}
function pending(content: string): ThreadItem {
  const usage = { prompt_tokens: 0, completion_tokens: 0, cost_micros: 0 };
  const message: ChatMessageView = { object: 'chat_message', id: 'pending', role: 'user', parent_id: null, content, model: null, status: 'complete', error_code: null, usage, created_at: Date.now() };
  return { message, siblings: [message], index: 0, fork: 'pending' };
}

/** ‹ 2/3 › over the siblings of one fork: answer versions, or branches of a user turn. */
function Pager({ item, onPick }: { item: ThreadItem; onPick: (fork: string, index: number) => void }) {
  const n = item.siblings.length;
  if (n < 2) return null;
  const answer = item.message.role === 'assistant';
  const what = answer ? 'version' : 'branch';
  return (
    <span className="versions" role="group" aria-label={answer ? 'Answer versions' : 'Message branches'}>
      <button type="button" className="btn btn-icon" aria-label={`Previous ${what}`} disabled={item.index === 0} onClick={() => onPick(item.fork, item.index - 1)}>
        ‹
      </button>
      <span aria-live="polite">
        {item.index + 1} / {n}
      </span>
      <button type="button" className="btn btn-icon" aria-label={`Next ${what}`} disabled={item.index === n - 1} onClick={() => onPick(item.fork, item.index + 1)}>
        ›
      </button>
    </span>
  );
}

export function Messages(props: {
  convId: string | null;
  /** The shown path (chat/thread.ts), including an assistant's system message. */
  items: ThreadItem[];
  stream: Stream | undefined;
  onEdit: (m: ChatMessageView) => void;
  onRetry: (m: ChatMessageView) => void;
  onPick: (fork: string, index: number) => void;
  /** Shown above an empty conversation (e.g. the picked assistant and its starters). */
  intro?: ReactNode;
  /** Whether answers may be rated (roles that may chat). */
  canRate?: boolean;
  /** Knowledge citations of stored answers, by message id. */
  citations?: Record<string, Citation[]>;
}) {
  const { stream } = props;
  // An assistant's instructions (the system message) are sent, not shown as a turn.
  const system = props.items.find((x) => x.message.role === 'system')?.message;
  const shown = withPending(
    props.items.filter((x) => x.message.role !== 'system'),
    stream,
  );
  const logRef = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = logRef.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [shown.length, stream?.text]);

  return (
    <div className="chat-log" ref={logRef} role="log" aria-live="polite" aria-busy={!!stream && !stream.stopped} aria-label="Conversation">
      {system ? (
        <details className="system-note">
          <summary>Instructions from the assistant</summary>
          <p className="msg-text">{system.content}</p>
        </details>
      ) : null}
      {shown.length === 0 && !stream && props.intro ? props.intro : null}
      {shown.length === 0 && !stream && !props.intro ? (
        <div className="empty">
          <p>Ask anything. Your messages go only to the models your organisation allows for the data classification you choose.</p>
          <p className="muted small">Enter sends · Shift+Enter adds a new line</p>
        </div>
      ) : null}
      {shown.map((item) => {
        const m = item.message;
        const notSent = m.status === 'not_sent';
        return (
          <article key={m.id} className={`msg msg-${m.role}${notSent ? ' msg-not-sent' : ''}`} aria-label={m.role === 'user' ? (notSent ? 'You wrote (not sent)' : 'You said') : 'Assistant said'}>
            <div className="msg-who">
              {m.role === 'user' ? 'You' : (m.model ?? 'Assistant')}
              {stream ? null : <Pager item={item} onPick={props.onPick} />}
              {m.status === 'stopped' ? <span className="tag">stopped</span> : null}
              {m.status === 'error' ? <span className="tag tag-error">error {m.error_code}</span> : null}
              {notSent ? <span className="tag tag-error">not sent</span> : null}
            </div>
            {m.attachments?.length && props.convId ? (
              <ul className="msg-images" aria-label="Attached images">
                {m.attachments.map((a) => (
                  <li key={a.id}>
                    <a href={attachmentUrl(props.convId!, a.id)} target="_blank" rel="noreferrer" aria-label={`Open image ${a.name ?? ''}`.trim()}>
                      <img src={attachmentUrl(props.convId!, a.id)} alt={a.name ?? 'Attached image'} loading="lazy" />
                    </a>
                  </li>
                ))}
              </ul>
            ) : null}
            {m.role === 'user' ? m.content ? <div className="msg-text">{m.content}</div> : null : <Markdown text={m.content} />}
            {m.role === 'assistant' && props.citations?.[m.id] ? <Sources citations={props.citations[m.id]!} /> : null}
            {!stream && m.id !== 'pending' ? (
              <div className="msg-actions">
                <CopyButton text={m.content} label={m.role === 'user' ? 'Copy your message' : 'Copy answer'} />
                {m.role === 'assistant' && props.canRate !== false && m.status !== 'error' ? <FeedbackButtons key={m.id} messageId={m.id} initial={m.feedback} /> : null}
                {notSent ? (
                  <>
                    <button type="button" className="btn btn-small" onClick={() => props.onRetry(m)}>
                      Retry
                    </button>
                    <button type="button" className="btn btn-small btn-ghost" onClick={() => props.onEdit(m)}>
                      Edit
                    </button>
                  </>
                ) : m.role === 'user' ? (
                  <button type="button" className="btn btn-small btn-ghost" onClick={() => props.onEdit(m)}>
                    Edit
                  </button>
                ) : null}
              </div>
            ) : null}
          </article>
        );
      })}
      {stream ? (
        <article className="msg msg-assistant" aria-label={stream.stopped ? 'Assistant answer (stopped)' : 'Assistant is answering'} data-testid="streaming-answer">
          <div className="msg-who">
            {stream.model}
            {stream.stopped ? <span className="tag">stopped</span> : null}
          </div>
          {stream.text ? <Markdown text={stream.text} /> : <Spinner label="Thinking…" />}
        </article>
      ) : null}
    </div>
  );
}
