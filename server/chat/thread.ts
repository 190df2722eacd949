import type { ChatMessageRow } from '../db/repos/chat.js';

/**
 * A conversation is a tree of messages (parent_id): an edited user turn is a sibling of the
 * turn it rewrites (a branch), a regenerated answer a sibling of the earlier answers (a
 * version). What the user sees, and what the model is sent, is one path from the root.
 * Pure functions over the conversation's messages (oldest first).
 */
type Msg = Pick<ChatMessageRow, 'id' | 'role' | 'status' | 'parentId'>;

/**
 * Each message's parent (null: a first message; several first messages are branches of the
 * first turn). Messages stored before trees got theirs from migration 0014.
 */
export function parents<M extends Msg>(all: readonly M[]): Map<string, string | null> {
  return new Map(all.map((m) => [m.id, m.parentId ?? null]));
}

/** The path from the root to `tipId` (inclusive), oldest first; empty for an unknown tip. */
export function pathTo<M extends Msg>(all: readonly M[], tipId: string | null): M[] {
  const byId = new Map(all.map((m) => [m.id, m]));
  const parent = parents(all);
  const out: M[] = [];
  const seen = new Set<string>();
  for (let id = tipId; id && byId.has(id) && !seen.has(id); id = parent.get(id) ?? null) {
    seen.add(id);
    out.push(byId.get(id)!);
  }
  return out.reverse();
}

/** The default path's last message: from the newest root, always the newest child. */
export function defaultTip<M extends Msg>(all: readonly M[]): string | null {
  const parent = parents(all);
  const children = new Map<string | null, string[]>();
  for (const m of all) {
    const p = parent.get(m.id) ?? null;
    children.set(p, [...(children.get(p) ?? []), m.id]);
  }
  let tip: string | null = null;
  for (;;) {
    const next: string | undefined = children.get(tip)?.at(-1);
    if (!next) return tip;
    tip = next;
  }
}
