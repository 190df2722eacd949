import { useEffect, useRef, useState, type ReactNode } from 'react';
import type { ChatMessageView } from '../api.js';
import { CopyButton } from '../components/CopyButton.js';
import { Markdown } from '../components/Markdown.js';
import { Spinner } from '../components/ui.js';
import { FeedbackButtons } from './Feedback.js';
import type { Stream } from './store.js';

/**
 * What the log shows while a turn is under way: the stored messages with the pending turn
 * applied (a send appends it, an edit rewrites the last user turn, both drop the answer that
 * is being replaced). Idempotent, so a reload during the stream (which already has the
 * stored turn) shows the same thing.
 */
export function withPending(messages: ChatMessageView[], s: Stream | undefined): ChatMessageView[] {
  if (!s) return messages;
  let ms = s.retryOf ? messages.filter((m) => m.id !== s.retryOf) : messages;
  if (s.mode === 'send') {
    const last = ms.at(-1);
    if (last?.role === 'user' && last.status === 'complete' && last.content === s.content) return ms;
    return [...ms, pendingUser(s.content ?? '')];
  }
  const lastUser = ms.findLastIndex((m) => m.role === 'user' && m.status !== 'not_sent');
  ms = ms.filter((m, i) => i <= lastUser || m.role === 'user');
  if (s.mode === 'edit' && lastUser >= 0) ms = ms.map((m, i) => (i === lastUser ? { ...m, content: s.content ?? m.content } : m));
  return ms;
}
function pendingUser(content: string): ChatMessageView {
  const usage = { prompt_tokens: 0, completion_tokens: 0, cost_micros: 0 };
  return { object: 'chat_message', id: 'pending', role: 'user', parent_id: null, content, model: null, status: 'complete', error_code: null, usage, created_at: Date.now() };
}

export function Messages(props: {
  messages: ChatMessageView[];
  stream: Stream | undefined;
  onEdit: (m: ChatMessageView) => void;
  onRetry: (m: ChatMessageView) => void;
  /** Shown above an empty conversation (e.g. the picked assistant and its starters). */
  intro?: ReactNode;
  /** Whether answers may be rated (roles that may chat). */
  canRate?: boolean;
}) {
  const { stream } = props;
  // An assistant's instructions (the system message) are sent, not shown as a turn.
  const system = props.messages.find((m) => m.role === 'system');
  const shown = withPending(
    props.messages.filter((m) => m.role !== 'system'),
    stream,
  );
  const lastSentUser = shown.findLastIndex((m) => m.role === 'user' && m.status !== 'not_sent');
  // Answers a regenerate replaced stay as versions: one answer per turn, with a pager.
  const [picked, setPicked] = useState<Record<string, number>>({});
  const runs = new Map<number, ChatMessageView[]>();
  shown.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    const start = i > 0 && shown[i - 1]!.role === 'assistant' ? [...runs.keys()].at(-1)! : i;
    runs.set(start, [...(runs.get(start) ?? []), m]);
  });
  const busy = !!stream;
  useEffect(() => {
    if (busy) setPicked({}); // after a regenerate, show the newest version
  }, [busy]);
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
      {shown.map((orig, i) => {
        const run = runs.get(i);
        if (orig.role === 'assistant' && !run) return null; // an earlier version, shown through the pager
        const v = run ? (picked[run[0]!.id] ?? run.length - 1) : 0;
        const m = run ? run[v]! : orig;
        const notSent = m.status === 'not_sent';
        return (
          <article key={m.id} className={`msg msg-${m.role}${notSent ? ' msg-not-sent' : ''}`} aria-label={m.role === 'user' ? (notSent ? 'You wrote (not sent)' : 'You said') : 'Assistant said'}>
            <div className="msg-who">
              {m.role === 'user' ? 'You' : (m.model ?? 'Assistant')}
              {run && run.length > 1 ? (
                <span className="versions" role="group" aria-label="Answer versions">
                  <button type="button" className="btn btn-icon" aria-label="Previous version" disabled={v === 0} onClick={() => setPicked({ ...picked, [run[0]!.id]: v - 1 })}>
                    ‹
                  </button>
                  <span aria-live="polite">
                    {v + 1} / {run.length}
                  </span>
                  <button type="button" className="btn btn-icon" aria-label="Next version" disabled={v === run.length - 1} onClick={() => setPicked({ ...picked, [run[0]!.id]: v + 1 })}>
                    ›
                  </button>
                </span>
              ) : null}
              {m.status === 'stopped' ? <span className="tag">stopped</span> : null}
              {m.status === 'error' ? <span className="tag tag-error">error {m.error_code}</span> : null}
              {notSent ? <span className="tag tag-error">not sent</span> : null}
            </div>
            {m.role === 'user' ? <div className="msg-text">{m.content}</div> : <Markdown text={m.content} />}
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
                ) : i === lastSentUser ? (
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
