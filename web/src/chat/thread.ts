import type { ChatMessageView } from '../api.js';

/**
 * A conversation is a tree (server/chat/thread.ts): edited user turns are siblings (branches),
 * regenerated answers are siblings (versions). The UI shows one path: at each fork the
 * sibling the user picked (‹ 1/2 ›), else the newest.
 */
export interface ThreadItem {
  message: ChatMessageView;
  /** The message and its siblings (same parent), oldest first. */
  siblings: ChatMessageView[];
  /** Which sibling this is. */
  index: number;
  /** The key the pick of this fork is kept under (the parent's id, or "root"). */
  fork: string;
}
/** Picked sibling per fork (absent: the newest). */
export type Picks = Record<string, number>;

export const forkOf = (parentId: string | null): string => parentId ?? 'root';

export function thread(messages: ChatMessageView[], picks: Picks): ThreadItem[] {
  const children = new Map<string, ChatMessageView[]>();
  for (const m of messages) {
    const k = forkOf(m.parent_id);
    children.set(k, [...(children.get(k) ?? []), m]);
  }
  const out: ThreadItem[] = [];
  const seen = new Set<string>();
  let fork = 'root';
  for (;;) {
    const kids = children.get(fork);
    if (!kids?.length) return out;
    const index = Math.min(picks[fork] ?? kids.length - 1, kids.length - 1);
    const message = kids[index]!;
    if (seen.has(message.id)) return out; // never loop on a malformed tree
    seen.add(message.id);
    out.push({ message, siblings: kids, index, fork });
    fork = message.id;
  }
}
