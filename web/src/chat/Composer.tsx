import { useLayoutEffect, useRef, useState, type ClipboardEvent, type DragEvent, type FormEvent, type KeyboardEvent, type RefObject } from 'react';
import { acceptImages, ImageTray, IMAGE_TYPES } from './Attachments.js';
import { DOC_TYPES } from '../knowledge/types.js';
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
  /** The chosen model accepts images (a warning otherwise; the server refuses). */
  vision: boolean;
  /** Documents may be attached (the knowledge API is there). */
  docs: boolean;
  /** What is happening to attached documents (uploading, reading), or null. */
  docStatus: string | null;
  model: string;
  onSend: (draft: Draft) => void;
  onRegenerate: () => void;
  onStop: () => void;
}) {
  useChatStore();
  const { convId, inputRef } = props;
  const draft = draftOf(convId);
  const picker = usePromptPicker(draft.text, (body) => setDraft(convId, { ...draft, text: body }));
  const fileRef = useRef<HTMLInputElement>(null);
  const [problems, setProblems] = useState<string[]>([]);
  const [dragging, setDragging] = useState(false);
  const images = draft.images ?? [];
  /** Picked, pasted or dropped files: images are added to the draft, anything else is named in a note. */
  const addFiles = async (files: File[]) => {
    if (!files.length) return;
    const cur = draftOf(convId);
    const out = await acceptImages(files, cur.images ?? [], props.docs);
    setProblems(out.problems);
    const now = draftOf(convId);
    if (out.images.length || out.docs.length) setDraft(convId, { ...now, images: [...(now.images ?? []), ...out.images], docs: [...(now.docs ?? []), ...out.docs] });
  };
  const onPaste = (e: ClipboardEvent<HTMLTextAreaElement>) => {
    const files = Array.from(e.clipboardData.files);
    if (!files.length) return; // text pastes as text
    e.preventDefault();
    void addFiles(files);
  };
  const onDrop = (e: DragEvent<HTMLFormElement>) => {
    if (!e.dataTransfer.files.length) return;
    e.preventDefault();
    setDragging(false);
    void addFiles(Array.from(e.dataTransfer.files));
  };
  const docs = draft.docs ?? [];
  const hasContent = !!draft.text.trim() || images.length > 0;

  useLayoutEffect(() => {
    const el = inputRef.current;
    if (!el) return;
    el.style.height = 'auto';
    el.style.height = `${Math.min(el.scrollHeight + 2, Math.round(window.innerHeight * 0.4))}px`;
  }, [draft.text, inputRef]);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!hasContent || props.streaming || !props.canSend) return;
    setProblems([]);
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
    <form
      className={`composer${dragging ? ' composer-drop' : ''}`}
      onSubmit={submit}
      onDragOver={(e) => {
        if (!Array.from(e.dataTransfer.types).includes('Files')) return;
        e.preventDefault();
        setDragging(true);
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={onDrop}
    >
      {picker.list}
      <ImageTray images={images} docs={docs} onRemove={(key) => setDraft(convId, { ...draft, images: images.filter((i) => i.key !== key), docs: docs.filter((d) => d.key !== key) })} />
      {props.docStatus ? (
        <div className="composer-note muted small" role="status">
          {props.docStatus}
        </div>
      ) : null}
      {problems.length ? (
        <div className="note note-warn composer-note" role="alert">
          {problems.join(' ')}
        </div>
      ) : null}
      {images.length && !props.vision ? (
        <div className="note note-warn composer-note" role="status" data-testid="vision-warning">
          {props.model || 'This model'} does not accept images. Choose a model marked “images”, or remove the images.
        </div>
      ) : null}
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
        onPaste={onPaste}
      />
      <div className="composer-bar">
        <span className="muted small composer-hint">{props.hint ? 'Enter sends · Shift+Enter new line' : ''}</span>
        <span className="composer-buttons">
          <input
            ref={fileRef}
            type="file"
            accept={props.docs ? `${IMAGE_TYPES.join(',')},${DOC_TYPES}` : IMAGE_TYPES.join(',')}
            multiple
            hidden
            onChange={(e) => {
              void addFiles(Array.from(e.target.files ?? []));
              e.target.value = '';
            }}
          />
          <button type="button" className="btn btn-ghost" aria-label={props.docs ? 'Attach images or documents' : 'Attach images'} title="Attach (or paste or drop files)" disabled={!props.canSend || props.streaming} onClick={() => fileRef.current?.click()}>
            <svg className="icon" viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" focusable="false">
              <path d="M21 11.5l-8.6 8.6a5.5 5.5 0 01-7.8-7.8l8.6-8.6a3.7 3.7 0 015.2 5.2l-8.6 8.6a1.8 1.8 0 01-2.6-2.6l7.9-7.9" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round" />
            </svg>
          </button>
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
            <button type="submit" className="btn btn-primary" disabled={!hasContent || !props.canSend}>
              {draft.editing || draft.retryOf ? 'Resend' : 'Send'}
            </button>
          )}
        </span>
      </div>
    </form>
  );
}
