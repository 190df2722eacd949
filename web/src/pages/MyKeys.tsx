import { useState, type FormEvent } from 'react';
import { api, ApiError, type ListPage } from '../api.js';
import { CopyButton } from '../components/CopyButton.js';
import { DataTable } from '../components/DataTable.js';
import { ErrorNote, formatTime, Spinner } from '../components/ui.js';
import { useSession } from '../session.js';
import { ActionStatus, tenantPath, useAction, useLoad } from './admin/common.js';

/** My usage's own API keys: create (the secret shown once, with Copy key) and revoke, when the plan allows self-service keys. */
interface Key {
  id: string;
  name: string;
  prefix: string;
  status: string;
  scopes: string[];
  last_used_at: number | null;
  created_at: number;
}

const MY_SCOPES = ['models:invoke', 'models:list', 'embeddings:create'];

export function MyKeys({ canCreate, selfService }: { canCreate: boolean; selfService: boolean }) {
  const { session } = useSession();
  const tenantId = session.tenant?.id ?? null;
  const userId = session.user.id;
  const keys = useLoad(async () => {
    if (!tenantId) return null;
    try {
      return await api<ListPage<Key>>(tenantPath(tenantId, `/keys?owner=${encodeURIComponent(userId)}&limit=200`));
    } catch (e) {
      // Viewers may not hold keys at all.
      if (e instanceof ApiError && e.status === 403) return null;
      throw e;
    }
  }, [tenantId, userId]);
  const [name, setName] = useState('');
  const [secret, setSecret] = useState<{ name: string; secret: string } | null>(null);
  const act = useAction();
  if (!tenantId) return null;
  const mine = keys.data?.data ?? [];
  if (!canCreate && mine.length === 0 && !keys.error) {
    return (
      <>
        <h2>My API keys</h2>
        <p className="muted">{selfService ? 'Your role does not include API keys.' : "Your organisation's plan does not include self-service API keys. Ask an administrator for a key."}</p>
      </>
    );
  }
  const create = async (e: FormEvent) => {
    e.preventDefault();
    setSecret(null);
    await act.run('create', async () => {
      const k = await api<Key & { secret: string }>(tenantPath(tenantId, '/keys'), { body: { name, scopes: MY_SCOPES } });
      setSecret({ name: k.name, secret: k.secret });
      setName('');
      await keys.reload();
    });
  };
  const revoke = async (k: Key) => {
    if (!confirm(`Revoke your key “${k.name}”? Programs using it stop working at once.`)) return;
    await act.run(`revoke:${k.id}`, async () => {
      await api(tenantPath(tenantId, `/keys/${k.id}`), { method: 'DELETE' });
      await keys.reload();
      return `Key ${k.name} revoked.`;
    });
  };
  return (
    <>
      <h2>My API keys</h2>
      {canCreate ? (
        <form className="form form-row card" onSubmit={create} aria-label="Create my API key">
          <label className="field">
            <span>Key name</span>
            <input required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
          </label>
          <button className="btn btn-primary" type="submit" disabled={!!act.busy}>
            {act.busy === 'create' ? <Spinner label="Creating…" /> : 'Create key'}
          </button>
        </form>
      ) : null}
      <ActionStatus act={act} />
      {secret ? (
        <div className="note note-ok secret" role="status">
          <p>
            <strong>Key “{secret.name}” created.</strong> Copy it now: it is shown only once. It may call models ({MY_SCOPES.join(', ')}) as you.
          </p>
          <code className="secret-value" data-testid="my-key-secret">
            {secret.secret}
          </code>
          <CopyButton text={secret.secret} className="btn btn-small">
            Copy key
          </CopyButton>
        </div>
      ) : null}
      <ErrorNote error={keys.error} title="Could not load your keys." />
      {keys.data ? (
        <DataTable
          caption="My API keys"
          rows={mine}
          rowKey={(k) => k.id}
          empty="You have no API keys."
          columns={[
            { key: 'name', header: 'Name', cell: (k) => k.name, sort: (k) => k.name },
            { key: 'prefix', header: 'Prefix', cell: (k) => <code>{k.prefix}…</code> },
            { key: 'status', header: 'Status', cell: (k) => <span className={`tag tag-${k.status}`}>{k.status}</span>, sort: (k) => k.status },
            { key: 'used', header: 'Last used', cell: (k) => formatTime(k.last_used_at), sort: (k) => k.last_used_at ?? 0 },
          ]}
          actions={(k) =>
            k.status === 'active' ? (
              <button type="button" className="btn btn-small btn-ghost" disabled={!!act.busy} onClick={() => void revoke(k)} aria-label={`Revoke ${k.name}`}>
                Revoke
              </button>
            ) : null
          }
        />
      ) : null}
    </>
  );
}
