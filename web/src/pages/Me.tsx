import { api } from '../api.js';
import { ErrorNote, formatCost, formatNumber, PageTitle, Spinner } from '../components/ui.js';
import { Link } from '../router.js';
import { useSession } from '../session.js';
import { useLoad } from './admin/common.js';

interface Conversation {
  id: string;
  title: string;
  model: string | null;
  usage: { prompt_tokens: number; completion_tokens: number; cost_micros: number };
  updated_at: number;
}

/** The user's own usage: chat conversations by model (the metering API adds daily figures). */
export function MePage() {
  const { session } = useSession();
  const list = useLoad(() => api<{ data: Conversation[] }>('/api/chat/conversations?limit=500'), [session.tenant?.id]);
  const byModel = new Map<string, { tokens: number; cost: number; conversations: number }>();
  for (const c of list.data?.data ?? []) {
    const k = c.model ?? '—';
    const cur = byModel.get(k) ?? { tokens: 0, cost: 0, conversations: 0 };
    cur.tokens += c.usage.prompt_tokens + c.usage.completion_tokens;
    cur.cost += c.usage.cost_micros;
    cur.conversations++;
    byModel.set(k, cur);
  }
  return (
    <section className="page">
      <PageTitle>My usage</PageTitle>
      <p>
        Signed in as <strong>{session.user.email}</strong>
        {session.role ? ` (${session.role})` : ''}.
      </p>
      <ErrorNote error={list.error} />
      {list.loading && !list.data ? <Spinner /> : null}
      {list.data ? (
        byModel.size === 0 ? (
          <p className="muted">
            No usage yet. <Link to="/chat">Start a chat</Link>.
          </p>
        ) : (
          <table className="table">
            <caption>Chat usage by model</caption>
            <thead>
              <tr>
                <th scope="col">Model</th>
                <th scope="col">Conversations</th>
                <th scope="col">Tokens</th>
                <th scope="col">Cost</th>
              </tr>
            </thead>
            <tbody>
              {[...byModel.entries()].map(([m, v]) => (
                <tr key={m}>
                  <td>{m}</td>
                  <td>{formatNumber(v.conversations)}</td>
                  <td>{formatNumber(v.tokens)}</td>
                  <td>{formatCost(v.cost)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )
      ) : null}
    </section>
  );
}
