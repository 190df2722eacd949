import { api, type ConversationView } from '../api.js';
import { navigate } from '../router.js';
import { setDraft, stop } from './store.js';

/** Rename, delete and delete-all for the conversation list; each asks first where it destroys, and reports errors through `onError`. */
export function useConversationActions(o: { currentId: string | null; reload: () => void; onRenamed: (id: string, title: string) => void; onError: (e: unknown) => void }) {
  const act = async (fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      o.onError(e);
    }
  };
  return {
    rename: (c: ConversationView, title: string) => {
      if (!title || title === c.title) return;
      void act(async () => {
        await api(`/api/chat/conversations/${c.id}`, { method: 'PATCH', body: { title } });
        o.reload();
        o.onRenamed(c.id, title);
      });
    },
    remove: (c: ConversationView) => {
      if (!confirm(`Delete “${c.title}”? This cannot be undone.`)) return;
      void act(async () => {
        stop(c.id);
        await api(`/api/chat/conversations/${c.id}`, { method: 'DELETE' });
        setDraft(c.id, { text: '', editing: false });
        if (c.id === o.currentId) navigate('/chat');
        o.reload();
      });
    },
    removeAll: () => {
      if (!confirm('Delete all your conversations in this organisation? This cannot be undone.')) return;
      void act(async () => {
        await api('/api/chat/conversations', { method: 'DELETE' });
        navigate('/chat');
        o.reload();
      });
    },
  };
}
