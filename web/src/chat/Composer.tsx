import { useLayoutEffect, type FormEvent, type KeyboardEvent, type RefObject } from 'react';
import { PICKER_ID, usePromptPicker } from './PromptPicker.js';
import { draftOf, setDraft, useChatStore, type Draft } from './store.js';

/**
 * The message box: grows with its text (up to 40% of the screen, then scrolls), keeps the
 * conversation's draft in the chat store (so it survives navigation), Enter sends.
 */
export function Composer(props: {
  convId: string | null;
  inputRef: RefObject<HTMLTextAreaElement | null>;
  streaming: boolean;
  canSend: boolean;
  canRegenerate: boolean;
  hint: boolean;
  onSend: (draft: Draft) => void;
  onRegenerate: () => void;
  onStop: () => void;
}) {
  useChatStore();
  const { convId, inputRef } = props;
  const draft = draftOf(convId);
  const picker = usePromptPicker(draft.text, (body) => setDraft(convId, { ...draft, text: body }));

  useLayoutEffect(() => {
    const el = inputRef.current;
    if (!el) return;
    el.style.height = 'auto';
    el.style.height = `${Math.min(el.scrollHeight + 2, Math.round(window.innerHeight * 0.4))}px`;
  }, [draft.text, inputRef]);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!draft.text.trim() || props.streaming || !props.canSend) return;
    props.onSend(draft);
  };
  const onKey = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (picker.onKey(e)) return;
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      submit(e);
    }
    if (e.key === 'Escape' && (draft.editing || draft.retryOf)) setDraft(convId, { text: '', editing: false });
  };

  return (
    <form className="composer" onSubmit={submit}>
      {picker.list}
      <label htmlFor="composer-input" className="sr-only">
        {draft.editing ? 'Edit your message' : 'Message'}
      </label>
      <textarea
        id="composer-input"
        ref={inputRef}
        rows={2}
        value={draft.text}
        placeholder={draft.editing ? 'Edit your message, then press Enter to resend' : 'Message (Enter sends, Shift+Enter new line, / for the prompt library)'}
        aria-describedby={picker.open ? `${PICKER_ID}-status` : undefined}
        aria-controls={picker.activeId ? PICKER_ID : undefined}
        aria-activedescendant={picker.activeId}
        onChange={(e) => setDraft(convId, { ...draft, text: e.target.value })}
        onKeyDown={onKey}
      />
      <div className="composer-bar">
        <span className="muted small composer-hint">{props.hint ? 'Enter sends · Shift+Enter new line' : ''}</span>
        <span className="composer-buttons">
          {draft.editing || draft.retryOf ? (
            <button type="button" className="btn btn-ghost" onClick={() => setDraft(convId, { text: '', editing: false })}>
              Cancel edit
            </button>
          ) : null}
          <button type="button" className="btn" disabled={!props.canRegenerate} onClick={props.onRegenerate}>
            Regenerate
          </button>
          {props.streaming ? (
            <button type="button" className="btn btn-danger" onClick={props.onStop}>
              Stop
            </button>
          ) : (
            <button type="submit" className="btn btn-primary" disabled={!draft.text.trim() || !props.canSend}>
              {draft.editing || draft.retryOf ? 'Resend' : 'Send'}
            </button>
          )}
        </span>
      </div>
    </form>
  );
}
