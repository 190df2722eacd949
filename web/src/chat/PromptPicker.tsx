import { useEffect, useState } from 'react';
import { api, type PromptView } from '../api.js';
import { useSession } from '../session.js';

/**
 * The prompt library in the composer: typing `/` at the start of an empty message box opens
 * a list of the organisation's approved prompts, filtered by what follows the slash. Arrow
 * keys move, Enter or Tab inserts, Escape closes. The message box keeps focus throughout
 * (aria-activedescendant names the highlighted prompt), so it works without a mouse.
 */
/** The library per organisation, loaded once per page load (a failed load is retried next time). */
const cache = new Map<string, Promise<PromptView[]>>();
function loadPrompts(tenant: string): Promise<PromptView[]> {
  let p = cache.get(tenant);
  if (!p) {
    p = api<{ data: PromptView[] }>('/api/chat/prompts').then(
      (r) => r.data,
      () => {
        cache.delete(tenant);
        return [];
      },
    );
    cache.set(tenant, p);
  }
  return p;
}

export const PICKER_ID = 'prompt-picker';

export function usePromptPicker(text: string, insert: (body: string) => void) {
  const query = /^\/[^\n]*$/.test(text) ? text.slice(1).trim().toLowerCase() : null;
  const tenant = useSession().session.tenant?.id ?? '';
  const [prompts, setPrompts] = useState<PromptView[] | null>(null);
  const [active, setActive] = useState(0);
  const [closedFor, setClosedFor] = useState<string | null>(null);
  useEffect(() => {
    if (query !== null && !prompts) void loadPrompts(tenant).then(setPrompts);
  }, [query, prompts, tenant]);
  useEffect(() => setActive(0), [query]);
  const open = query !== null && closedFor !== text;
  const matches = open && prompts ? prompts.filter((p) => p.title.toLowerCase().includes(query) || p.body.toLowerCase().includes(query)).slice(0, 8) : [];
  const pick = (p: PromptView) => {
    insert(p.body);
    setClosedFor(null);
  };
  /** Handles the picker's keys; returns true when it used the key. */
  const onKey = (e: { key: string; preventDefault(): void }): boolean => {
    if (!open) return false;
    if (e.key === 'Escape') {
      setClosedFor(text);
      e.preventDefault();
      return true;
    }
    if (!matches.length) return false;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      setActive((a) => (a + (e.key === 'ArrowDown' ? 1 : matches.length - 1)) % matches.length);
      e.preventDefault();
      return true;
    }
    if (e.key === 'Enter' || e.key === 'Tab') {
      pick(matches[Math.min(active, matches.length - 1)]!);
      e.preventDefault();
      return true;
    }
    return false;
  };
  const activeId = open && matches.length ? `${PICKER_ID}-${matches[Math.min(active, matches.length - 1)]!.id}` : undefined;
  const list = open ? (
    <div className="prompt-picker">
      <p id={`${PICKER_ID}-status`} className="small muted" role="status">
        {!prompts ? 'Loading the prompt library…' : matches.length ? `${matches.length} prompt${matches.length > 1 ? 's' : ''}: ↑ ↓ to choose, Enter to insert, Esc to close` : 'No prompt in the library matches.'}
      </p>
      {matches.length ? (
        <ul id={PICKER_ID} role="listbox" aria-label="Prompt library">
          {matches.map((p, i) => (
            <li
              key={p.id}
              id={`${PICKER_ID}-${p.id}`}
              role="option"
              aria-selected={i === active}
              className={i === active ? 'active' : undefined}
              onMouseDown={(e) => {
                e.preventDefault(); // keep focus in the message box
                pick(p);
              }}
            >
              <strong>{p.title}</strong>
              <span className="small muted"> — {p.body.length > 90 ? `${p.body.slice(0, 87)}…` : p.body}</span>
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  ) : null;
  return { open, list, onKey, activeId };
}
