import { useSyncExternalStore } from 'react';
import { api, ApiError, raw, readSse, type Classification } from '../api.js';
import { explain, type Remaining } from './explain.js';

/**
 * The chat's state that outlives the page: answers being streamed (each belongs to its
 * conversation and keeps streaming when the user looks at another one), what the last turn
 * of a conversation ended with (a refusal, an error), and drafts (per conversation, so they
 * survive navigation). Components read it with useChatStore(); nothing here renders.
 */
export interface Stream {
  model: string;
  text: string;
  controller: AbortController;
  /** The turn being answered, shown at once (the server stores it when the answer starts). */
  mode: SendMode;
  content?: string;
  retryOf?: string;
  editOf?: string;
  /** send: the message answered after; regenerate: the user turn answered again. */
  parentId?: string;
  /** Stopped by the user: shown until the stored partial answer has been read back. */
  stopped?: boolean;
}
export interface Outcome {
  refusal?: string;
  error?: unknown;
  /** Detector types the gateway redacted before a cloud model saw the turn (x-enclave-redacted). */
  redacted?: string[];
}
export interface Draft {
  text: string;
  /** Editing a user message (a new branch from it) rather than writing a new one. */
  editing: boolean;
  /** The user message being edited (default: the last one sent). */
  editOf?: string;
  /** Resending (possibly changed) a message that was not sent. */
  retryOf?: string;
  /** Images to send with the message (chat/Attachments.tsx). */
  images?: DraftImage[];
  /** Documents to answer from: indexed into the conversation's own collection (chat/Attachments.tsx). */
  docs?: DraftDoc[];
}
export interface DraftDoc {
  key: string;
  name: string;
  file?: File;
  /** Set once uploaded and indexed: the conversation's collection. */
  collectionId?: string;
}
/** An image in the composer: the picked file until it is uploaded (then its attachment id). */
export interface DraftImage {
  key: string;
  name: string;
  /** A data URL for the preview (the CSP allows data: images). */
  preview: string;
  file?: File;
  id?: string;
}
export type SendMode = 'send' | 'regenerate' | 'edit';
/** The draft of a conversation not created yet. */
export const NEW = 'new';

const streams = new Map<string, Stream>();
const outcomes = new Map<string, Outcome>();
const drafts = new Map<string, Draft>();
/** Knowledge collections picked per conversation (sent with each turn). */
const knowledge = new Map<string, string[]>();
const finished = new Set<(convId: string) => void>();
const listeners = new Set<() => void>();
let version = 0;

function changed(): void {
  version++;
  for (const fn of listeners) fn();
}
function subscribe(fn: () => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Re-renders on any change of the store. */
export function useChatStore(): number {
  return useSyncExternalStore(subscribe, () => version);
}
/** Called with the conversation id when one of its turns has ended (answered, stopped, refused). */
export function onTurnFinished(fn: (convId: string) => void): () => void {
  finished.add(fn);
  return () => finished.delete(fn);
}

export const streamOf = (convId: string | null): Stream | undefined => (convId ? streams.get(convId) : undefined);
export const outcomeOf = (convId: string | null): Outcome | undefined => outcomes.get(convId ?? NEW);
export const draftOf = (convId: string | null): Draft => drafts.get(convId ?? NEW) ?? { text: '', editing: false };

export const knowledgeOf = (convId: string | null): string[] => knowledge.get(convId ?? NEW) ?? [];
export function setKnowledge(convId: string | null, ids: string[]): void {
  if (ids.length) knowledge.set(convId ?? NEW, ids);
  else knowledge.delete(convId ?? NEW);
  changed();
}

export function setDraft(convId: string | null, d: Draft): void {
  if (!d.text && !d.editing && !d.images?.length && !d.docs?.length) drafts.delete(convId ?? NEW);
  else drafts.set(convId ?? NEW, d);
  changed();
}
export function moveDraft(from: string | null, to: string): void {
  const d = drafts.get(from ?? NEW);
  drafts.delete(from ?? NEW);
  if (d) drafts.set(to, d);
  const k = knowledge.get(from ?? NEW);
  knowledge.delete(from ?? NEW);
  if (k) knowledge.set(to, k);
  changed();
}
export function clearOutcome(convId: string | null): void {
  if (outcomes.delete(convId ?? NEW)) changed();
}
export function setOutcome(convId: string | null, o: Outcome): void {
  outcomes.set(convId ?? NEW, o);
  changed();
}
export function stop(convId: string): void {
  streams.get(convId)?.controller.abort();
}
/** Everything of the signed-in user: forgotten at sign-out (drafts are customer data). */
export function resetChatStore(): void {
  for (const s of streams.values()) s.controller.abort();
  streams.clear();
  outcomes.clear();
  drafts.clear();
  knowledge.clear();
  changed();
}

export interface Turn {
  convId: string;
  mode: SendMode;
  content?: string;
  model: string;
  cls: Classification;
  retryOf?: string;
  editOf?: string;
  parentId?: string;
  policy: Record<Classification, string[]> | null;
  /** Knowledge collections to answer from. */
  knowledge?: string[];
  /** Uploaded images sent with the message; put back into the box if the turn is refused before it is stored. */
  images?: DraftImage[];
}

async function storedAnswer(convId: string): Promise<void> {
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline) {
    const c = await api<{ messages: { role: string }[] }>(`/api/chat/conversations/${encodeURIComponent(convId)}`).catch(() => null);
    if (!c || c.messages.at(-1)?.role === 'assistant') return;
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** Sends one turn and streams its answer into the store under its conversation. */
export async function runTurn(t: Turn): Promise<void> {
  if (streams.has(t.convId)) return;
  const controller = new AbortController();
  const stream: Stream = {
    model: t.model,
    text: '',
    controller,
    mode: t.mode,
    ...(t.content !== undefined ? { content: t.content } : {}),
    ...(t.retryOf ? { retryOf: t.retryOf } : {}),
    ...(t.editOf ? { editOf: t.editOf } : {}),
    ...(t.parentId ? { parentId: t.parentId } : {}),
  };
  streams.set(t.convId, stream);
  outcomes.delete(t.convId);
  changed();
  const outcome: Outcome = {};
  let sent = false;
  try {
    const res = await raw(`/api/chat/conversations/${encodeURIComponent(t.convId)}/completions`, {
      body: {
        mode: t.mode,
        model: t.model,
        classification: t.cls,
        ...(t.content !== undefined ? { content: t.content } : {}),
        ...(t.retryOf ? { retry_of: t.retryOf } : {}),
        ...(t.editOf ? { edit_of: t.editOf } : {}),
        ...(t.parentId ? { parent_id: t.parentId } : {}),
        ...(t.images?.length ? { attachments: t.images.map((i) => i.id) } : {}),
        ...(t.knowledge?.length ? { knowledge: t.knowledge } : {}),
      },
      signal: controller.signal,
      headers: { accept: 'text/event-stream' },
    });
    const types = (res.headers.get('x-enclave-redacted') ?? '')
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
    if (types.length) outcome.redacted = types;
    sent = true;
    await readSse(res, (event, data) => {
      if (event === 'enclave' || data === '[DONE]') return;
      const j = JSON.parse(data) as { choices?: { delta?: { content?: string } }[]; error?: { message: string; code: ApiError['code'] } };
      if (j.error) throw new ApiError(502, j.error.code, j.error.message);
      const d = j.choices?.[0]?.delta?.content;
      if (d) {
        stream.text += d;
        changed();
      }
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') {
      // The server stores the partial answer as `stopped` once it notices the disconnect:
      // keep showing it until the stored one can be read back (bounded).
      stream.stopped = true;
      changed();
      await storedAnswer(t.convId);
    } else if (e instanceof ApiError) {
      let remaining: Remaining | null = null;
      if (e.code === 'quota_exceeded') remaining = await api<{ remaining: Remaining }>('/api/ui/usage').then((u) => u.remaining, () => null);
      const text = explain(e, { cls: t.cls, model: t.model, policy: t.policy, remaining });
      // Failing mid-answer is not a refusal: the turn was sent (the stored answer says error).
      if (sent) outcome.error = new Error(text);
      else outcome.refusal = text;
      // An edit the server did not take goes back into the box, still as an edit.
      if (t.mode === 'edit' && t.content !== undefined && !drafts.get(t.convId)?.text) drafts.set(t.convId, { text: t.content, editing: true, ...(t.editOf ? { editOf: t.editOf } : {}), ...(t.images ? { images: t.images } : {}) });
      // A model that takes no images refuses before anything is stored: the message and its
      // images go back into the box, to send to another model or without the images.
      else if (e.code === 'vision_unsupported' && !drafts.get(t.convId)?.text) drafts.set(t.convId, { text: t.content ?? '', editing: false, ...(t.retryOf ? { retryOf: t.retryOf } : {}), ...(t.images ? { images: t.images } : {}) });
      // A refused send is stored as not sent (shown with Retry and Edit); nothing to put back.
    } else outcome.error = e;
  } finally {
    streams.delete(t.convId);
    if (outcome.refusal || outcome.error || outcome.redacted) outcomes.set(t.convId, outcome);
    changed();
    for (const fn of finished) fn(t.convId);
  }
}
