import { useState, type FormEvent } from 'react';
import { api, type Classification, type ListPage } from '../../api.js';
import { DataTable } from '../../components/DataTable.js';
import { ErrorNote, formatCost, formatNumber, formatTime, Note, PageTitle, Spinner } from '../../components/ui.js';
import { ActionStatus, tenantPath, useAction, useLoad, useTenantId } from './common.js';

/** GET /admin/api/tenants/:id/teams (server/teams). */
interface Team {
  id: string;
  name: string;
  description: string;
  allowed_models: string[] | null;
  max_classification: Classification | null;
  limits: Partial<Record<'monthly_tokens' | 'monthly_cost_micros' | 'requests_per_minute' | 'tokens_per_minute' | 'concurrent_requests', number>>;
  idp_group: string | null;
}
interface Member {
  user_id: string;
  email: string;
  name: string | null;
  role: 'admin' | 'member';
  source: 'manual' | 'idp' | 'scim';
}
interface TeamKey {
  id: string;
  name: string;
  prefix: string;
  status: string;
  created_at: number;
}
interface TeamUsage {
  month: string;
  usage: { tokens: number; cost_micros: number; requests: number };
  limits: Team['limits'];
  remaining: { monthly_tokens: number | null; monthly_cost_micros: number | null };
}

const num = (s: string): number | undefined => (s.trim() === '' ? undefined : Math.max(0, Math.floor(Number(s))));
const list = (s: string): string[] =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

/**
 * Teams inside the organisation (issue 24): each with members and team admins, its own
 * models, classification ceiling and budget (the `team` level of quotas), and team keys whose
 * calls count against it. Usage by team is on the usage page (Group by: Team).
 */
export function TeamsPage() {
  const tenantId = useTenantId();
  const teams = useLoad(() => api<ListPage<Team>>(tenantPath(tenantId, '/teams')), [tenantId]);
  const [selected, setSelected] = useState<string | null>(null);
  const act = useAction();
  const [name, setName] = useState('');
  const [budget, setBudget] = useState('');
  const [rpm, setRpm] = useState('');
  const [models, setModels] = useState('');
  const [ceiling, setCeiling] = useState<'' | Classification>('');
  const [group, setGroup] = useState('');
  if (!tenantId) return <Note kind="warn">Choose an organisation first.</Note>;

  const create = async (e: FormEvent) => {
    e.preventDefault();
    const limits = { ...(num(budget) !== undefined ? { monthly_tokens: num(budget) } : {}), ...(num(rpm) !== undefined ? { requests_per_minute: num(rpm) } : {}) };
    const ok = await act.run('create', async () => {
      const t = await api<Team>(tenantPath(tenantId, '/teams'), {
        body: { name: name.trim(), limits, ...(list(models).length ? { allowed_models: list(models) } : {}), ...(ceiling ? { max_classification: ceiling } : {}), ...(group.trim() ? { idp_group: group.trim() } : {}) },
      });
      setSelected(t.id);
      return `Team “${t.name}” created.`;
    });
    if (ok) {
      setName('');
      setBudget('');
      setRpm('');
      setModels('');
      setGroup('');
      await teams.reload();
    }
  };
  const current = teams.data?.data.find((t) => t.id === selected) ?? null;

  return (
    <section className="page">
      <PageTitle>Teams</PageTitle>
      <p className="muted">
        Departments with their own budget and models inside this organisation. A call counts against the team of its key (team keys) or else its user’s first team; the organisation’s plan still applies.
      </p>
      <form className="form card" onSubmit={create} aria-label="Create a team">
        <div className="form-row">
          <label className="field">
            <span>Name</span>
            <input required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
          </label>
          <label className="field">
            <span>Monthly token budget</span>
            <input inputMode="numeric" placeholder="No limit" value={budget} onChange={(e) => setBudget(e.target.value)} />
          </label>
          <label className="field">
            <span>Requests per minute</span>
            <input inputMode="numeric" placeholder="No limit" value={rpm} onChange={(e) => setRpm(e.target.value)} />
          </label>
        </div>
        <div className="form-row">
          <label className="field">
            <span>Allowed models (comma-separated, empty = the organisation’s)</span>
            <input value={models} onChange={(e) => setModels(e.target.value)} />
          </label>
          <label className="field">
            <span>Highest data classification</span>
            <select value={ceiling} onChange={(e) => setCeiling(e.target.value as '' | Classification)}>
              <option value="">No ceiling</option>
              <option value="public">public</option>
              <option value="internal">internal</option>
              <option value="confidential">confidential</option>
              <option value="restricted">restricted</option>
            </select>
          </label>
          <label className="field">
            <span>IdP / SCIM group (optional)</span>
            <input maxLength={256} value={group} onChange={(e) => setGroup(e.target.value)} />
          </label>
        </div>
        <button className="btn btn-primary" type="submit" disabled={act.busy !== null}>
          {act.busy === 'create' ? <Spinner label="Creating…" /> : 'Create team'}
        </button>
      </form>
      <ActionStatus act={act} />
      <ErrorNote error={teams.error} title="Could not load teams." />
      {teams.loading && !teams.data ? <Spinner /> : null}
      {teams.data ? (
        <DataTable
          caption="Teams of this organisation"
          rows={teams.data.data}
          rowKey={(t) => t.id}
          search={(t) => `${t.name} ${t.idp_group ?? ''}`}
          empty="No teams yet."
          initialSort={{ key: 'name', desc: false }}
          testId="teams-table"
          columns={[
            { key: 'name', header: 'Team', cell: (t) => t.name, sort: (t) => t.name },
            { key: 'budget', header: 'Monthly tokens', num: true, cell: (t) => (t.limits.monthly_tokens !== undefined ? formatNumber(t.limits.monthly_tokens) : 'No limit') },
            { key: 'models', header: 'Models', className: 'small break', cell: (t) => (t.allowed_models ? t.allowed_models.join(', ') : 'All allowed') },
            { key: 'ceiling', header: 'Ceiling', cell: (t) => t.max_classification ?? '—' },
            { key: 'group', header: 'IdP group', className: 'small', cell: (t) => t.idp_group ?? '—' },
          ]}
          actions={(t) => (
            <button type="button" className="btn btn-small" aria-expanded={t.id === selected} onClick={() => setSelected(t.id === selected ? null : t.id)} aria-label={`Manage ${t.name}`}>
              Manage
            </button>
          )}
        />
      ) : null}
      {current ? <TeamDetail key={current.id} tenantId={tenantId} team={current} onChanged={() => void teams.reload()} /> : null}
    </section>
  );
}

function TeamDetail({ tenantId, team, onChanged }: { tenantId: string; team: Team; onChanged: () => void }) {
  const base = `/teams/${team.id}`;
  const members = useLoad(() => api<ListPage<Member>>(tenantPath(tenantId, `${base}/members`)), [tenantId, team.id]);
  const keys = useLoad(() => api<ListPage<TeamKey>>(tenantPath(tenantId, `${base}/keys`)), [tenantId, team.id]);
  const usage = useLoad(() => api<TeamUsage>(tenantPath(tenantId, `${base}/usage`)), [tenantId, team.id]);
  const people = useLoad(() => api<ListPage<{ id: string; email: string; name: string | null }>>(tenantPath(tenantId, '/members?limit=200')), [tenantId]);
  const act = useAction();
  const [who, setWho] = useState('');
  const [role, setRole] = useState<'member' | 'admin'>('member');
  const [budget, setBudget] = useState(team.limits.monthly_tokens !== undefined ? String(team.limits.monthly_tokens) : '');
  const [keyName, setKeyName] = useState('');
  const [secret, setSecret] = useState<string | null>(null);

  const addMember = async (e: FormEvent) => {
    e.preventDefault();
    if (!who) return;
    if (await act.run('member', async () => void (await api(tenantPath(tenantId, `${base}/members/${who}`), { method: 'PUT', body: { role } })))) {
      setWho('');
      await members.reload();
    }
  };
  const saveBudget = async (e: FormEvent) => {
    e.preventDefault();
    const monthly = num(budget);
    const limits = { ...team.limits, monthly_tokens: monthly ?? null };
    if (await act.run('budget', async () => (await api(tenantPath(tenantId, base), { method: 'PATCH', body: { limits } }), 'Budget saved.'))) {
      onChanged();
      await usage.reload();
    }
  };
  const createKey = async (e: FormEvent) => {
    e.preventDefault();
    await act.run('key', async () => {
      const k = await api<{ secret: string }>(tenantPath(tenantId, `${base}/keys`), { body: { name: keyName.trim() } });
      setSecret(k.secret);
      setKeyName('');
      await keys.reload();
    });
  };
  const u = usage.data;
  const used = u?.usage.tokens ?? 0;
  const limit = u?.limits.monthly_tokens;

  return (
    <div className="card team-detail" data-testid="team-detail" aria-label={`Team ${team.name}`}>
      <h2 style={{ marginTop: 0 }}>{team.name}</h2>
      {u ? (
        <>
          <p data-testid="team-usage">
            {u.month}: {formatNumber(u.usage.requests)} requests, {formatNumber(used)} tokens{limit !== undefined ? ` of ${formatNumber(limit)}` : ''}, {formatCost(u.usage.cost_micros)}
          </p>
          {limit !== undefined ? (
            <meter style={{ display: 'block', width: '100%', maxWidth: 480 }} min={0} max={limit} value={Math.min(used, limit)} high={limit * 0.8} aria-label="Share of the monthly token budget used" />
          ) : null}
        </>
      ) : (
        <Spinner />
      )}
      <form className="form form-row" onSubmit={saveBudget} aria-label="Team budget">
        <label className="field">
          <span>Monthly token budget</span>
          <input inputMode="numeric" placeholder="No limit" value={budget} onChange={(e) => setBudget(e.target.value)} />
        </label>
        <button className="btn" type="submit" disabled={act.busy !== null}>
          Save budget
        </button>
      </form>
      <h3>Members</h3>
      <form className="form form-row" onSubmit={addMember} aria-label="Add a team member">
        <label className="field">
          <span>Member of the organisation</span>
          <select value={who} onChange={(e) => setWho(e.target.value)} required>
            <option value="">Choose…</option>
            {people.data?.data.map((p) => (
              <option key={p.id} value={p.id}>
                {p.name || p.email}
              </option>
            ))}
          </select>
        </label>
        <label className="field">
          <span>Team role</span>
          <select value={role} onChange={(e) => setRole(e.target.value as 'member' | 'admin')}>
            <option value="member">Member</option>
            <option value="admin">Team admin</option>
          </select>
        </label>
        <button className="btn" type="submit" disabled={act.busy !== null || !who}>
          Add to team
        </button>
      </form>
      {members.data ? (
        <DataTable
          caption={`Members of ${team.name}`}
          rows={members.data.data}
          rowKey={(m) => m.user_id}
          empty="No members yet."
          testId="team-members"
          columns={[
            { key: 'who', header: 'Member', className: 'break', cell: (m) => (m.name ? `${m.name} (${m.email})` : m.email), sort: (m) => m.email },
            { key: 'role', header: 'Role', cell: (m) => (m.role === 'admin' ? 'Team admin' : 'Member') },
            { key: 'source', header: 'Added by', cell: (m) => ({ manual: 'Hand', idp: 'IdP groups', scim: 'SCIM' })[m.source] },
          ]}
          actions={(m) => (
            <button
              type="button"
              className="btn btn-small btn-ghost"
              aria-label={`Remove ${m.email} from ${team.name}`}
              onClick={() => void act.run('remove', async () => void (await api(tenantPath(tenantId, `${base}/members/${m.user_id}`), { method: 'DELETE' }))).then(() => members.reload())}
            >
              Remove
            </button>
          )}
        />
      ) : null}
      <h3>Team keys</h3>
      <form className="form form-row" onSubmit={createKey} aria-label="Create a team key">
        <label className="field">
          <span>Key name</span>
          <input required maxLength={100} value={keyName} onChange={(e) => setKeyName(e.target.value)} />
        </label>
        <button className="btn" type="submit" disabled={act.busy !== null}>
          Create team key
        </button>
      </form>
      {secret ? (
        <div className="note note-ok secret" role="status">
          <p>Copy the key now: it is shown only once.</p>
          <code className="secret-value" data-testid="team-key-secret">
            {secret}
          </code>
        </div>
      ) : null}
      {keys.data ? (
        <DataTable
          caption={`Keys of ${team.name}`}
          rows={keys.data.data}
          rowKey={(k) => k.id}
          empty="No team keys."
          columns={[
            { key: 'name', header: 'Name', cell: (k) => k.name },
            { key: 'prefix', header: 'Prefix', cell: (k) => <code>{k.prefix}…</code> },
            { key: 'status', header: 'Status', cell: (k) => <span className={`tag tag-${k.status}`}>{k.status}</span> },
            { key: 'created', header: 'Created', cell: (k) => formatTime(k.created_at) },
          ]}
        />
      ) : null}
      <ActionStatus act={act} />
      <ErrorNote error={members.error ?? keys.error ?? usage.error} />
    </div>
  );
}
