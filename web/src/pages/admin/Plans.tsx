import { useState, type FormEvent } from 'react';
import { api, type ListPage } from '../../api.js';
import { ErrorNote, formatCost, formatNumber, Note, PageTitle, Spinner } from '../../components/ui.js';
import { useSession } from '../../session.js';
import { tenantPath, useAction, useLoad, useTenantId, ActionStatus } from './common.js';

interface Plan {
  name: string;
  description: string;
  capabilities: string[];
  limits: Partial<Record<LimitName, number>>;
  allowed_models: string[] | null;
}
interface TenantLimits {
  plan: Plan;
  timezone: string;
  overrides: { subject_type: 'user' | 'key'; subject_id: string; limits: Partial<Record<LimitName, number>>; updated_at: number }[];
}
interface Tenant {
  id: string;
  slug: string;
  name: string;
  plan: string | null;
}

type LimitName = 'monthly_tokens' | 'monthly_cost_micros' | 'requests_per_minute' | 'tokens_per_minute' | 'concurrent_requests' | 'max_keys' | 'max_active_jobs';
const LIMITS: { name: LimitName; label: string; cost?: boolean }[] = [
  { name: 'monthly_tokens', label: 'Tokens per month' },
  { name: 'monthly_cost_micros', label: 'Cost per month ($)', cost: true },
  { name: 'requests_per_minute', label: 'Requests per minute' },
  { name: 'tokens_per_minute', label: 'Tokens per minute' },
  { name: 'concurrent_requests', label: 'Concurrent requests' },
  { name: 'max_keys', label: 'API keys' },
  { name: 'max_active_jobs', label: 'Active batch jobs' },
];
const CAPABILITIES: { name: string; label: string }[] = [
  { name: 'cloud_providers', label: 'Cloud providers' },
  { name: 'batch_api', label: 'Batch API' },
  { name: 'content_logging', label: 'Content logging' },
  { name: 'self_service_keys', label: 'Self-service API keys' },
  { name: 'custom_providers', label: 'Custom providers' },
];

function limitText(l: Partial<Record<LimitName, number>>): string {
  const parts = LIMITS.filter((x) => typeof l[x.name] === 'number').map((x) => `${x.label}: ${x.cost ? formatCost(l[x.name]) : formatNumber(l[x.name])}`);
  return parts.length ? parts.join(' · ') : 'No limits';
}

/** Form values (strings; empty = no limit) ↔ the API's limits (cost in micro-units). */
type LimitForm = Record<LimitName, string>;
const emptyLimits = (): LimitForm => Object.fromEntries(LIMITS.map((l) => [l.name, ''])) as LimitForm;
function toForm(l: Partial<Record<LimitName, number>>): LimitForm {
  const f = emptyLimits();
  for (const x of LIMITS) {
    const v = l[x.name];
    if (typeof v === 'number') f[x.name] = x.cost ? String(v / 1_000_000) : String(v);
  }
  return f;
}
function fromForm(f: LimitForm): Partial<Record<LimitName, number | null>> {
  const out: Partial<Record<LimitName, number | null>> = {};
  for (const x of LIMITS) {
    const s = f[x.name].trim();
    out[x.name] = s === '' ? null : x.cost ? Math.round(Number(s) * 1_000_000) : Math.round(Number(s));
  }
  return out;
}

function LimitFields({ value, onChange, idPrefix }: { value: LimitForm; onChange: (f: LimitForm) => void; idPrefix: string }) {
  return (
    <fieldset className="scopes limit-fields">
      <legend>Limits (empty = no limit)</legend>
      <div className="form-row">
        {LIMITS.map((l) => (
          <label className="field" key={l.name} htmlFor={`${idPrefix}-${l.name}`}>
            <span>{l.label}</span>
            <input
              id={`${idPrefix}-${l.name}`}
              type="number"
              min={0}
              step={l.cost ? 0.01 : 1}
              inputMode={l.cost ? 'decimal' : 'numeric'}
              value={value[l.name]}
              onChange={(e) => onChange({ ...value, [l.name]: e.target.value })}
            />
          </label>
        ))}
      </div>
    </fieldset>
  );
}

/** Plans and quotas: the organisation's plan and per-member/per-key limits; platform admins edit plans. */
export function PlansPage() {
  const { session } = useSession();
  return (
    <section className="page">
      <PageTitle>Plans & quotas</PageTitle>
      <TenantQuotas />
      {session.user.platform_admin ? <PlatformPlans /> : null}
    </section>
  );
}

function TenantQuotas() {
  const tenantId = useTenantId();
  const data = useLoad(async () => {
    if (!tenantId) return null;
    const [limits, members, keys] = await Promise.all([
      api<TenantLimits>(tenantPath(tenantId, '/limits')),
      api<ListPage<{ id: string; email: string; name: string | null }>>(tenantPath(tenantId, '/members?limit=200')),
      api<ListPage<{ id: string; name: string; prefix: string; status: string }>>(tenantPath(tenantId, '/keys?limit=200&status=active')),
    ]);
    return { limits, members: members.data, keys: keys.data };
  }, [tenantId]);
  const [type, setType] = useState<'user' | 'key'>('user');
  const [subject, setSubject] = useState('');
  const [form, setForm] = useState<LimitForm>(emptyLimits);
  const act = useAction();
  if (!tenantId) return <Note kind="warn">Choose an organisation first.</Note>;
  const d = data.data;
  const nameOf = (t: 'user' | 'key', id: string) =>
    t === 'user' ? (d?.members.find((m) => m.id === id)?.email ?? id) : (() => { const k = d?.keys.find((x) => x.id === id); return k ? `${k.name} (${k.prefix}…)` : id; })();

  const save = async (e: FormEvent) => {
    e.preventDefault();
    if (!subject) {
      act.setError(new Error(type === 'user' ? 'Pick a member.' : 'Pick an API key.'));
      return;
    }
    await act.run('save', async () => {
      await api(tenantPath(tenantId, `/limits/${type}/${encodeURIComponent(subject)}`), { method: 'PUT', body: fromForm(form) });
      await data.reload();
      return `Limits for ${nameOf(type, subject)} saved.`;
    });
  };
  const remove = async (t: 'user' | 'key', id: string) => {
    await act.run(`remove:${id}`, async () => {
      await api(tenantPath(tenantId, `/limits/${t}/${encodeURIComponent(id)}`), { method: 'DELETE' });
      await data.reload();
      return `Limits for ${nameOf(t, id)} removed.`;
    });
  };

  return (
    <>
      <ErrorNote error={data.error} title="Could not load the plan and limits." />
      {data.loading && !d ? <Spinner /> : null}
      {d ? (
        <>
          <div className="card">
            <h2 className="card-title">
              Your plan: <span data-testid="tenant-plan">{d.limits.plan.name}</span>
            </h2>
            {d.limits.plan.description ? <p>{d.limits.plan.description}</p> : null}
            <dl className="facts">
              <dt>Limits for the organisation</dt>
              <dd>{limitText(d.limits.plan.limits)}</dd>
              <dt>Includes</dt>
              <dd>{d.limits.plan.capabilities.map((c) => CAPABILITIES.find((x) => x.name === c)?.label ?? c).join(', ') || 'No optional capabilities'}</dd>
              <dt>Models</dt>
              <dd>{d.limits.plan.allowed_models ? d.limits.plan.allowed_models.join(', ') : 'Every model the platform offers'}</dd>
              <dt>Months start in</dt>
              <dd>{d.limits.timezone}</dd>
            </dl>
          </div>

          <h2>Limits for members and API keys</h2>
          {d.limits.overrides.length === 0 ? (
            <p className="muted">No member or key has its own limits; the organisation's plan applies to all.</p>
          ) : (
            <div className="table-wrap" tabIndex={0}>
              <table className="table">
                <caption className="sr-only">Limits set for members and API keys</caption>
                <thead>
                  <tr>
                    <th scope="col">For</th>
                    <th scope="col">Limits</th>
                    <th scope="col">
                      <span className="sr-only">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {d.limits.overrides.map((o) => (
                    <tr key={`${o.subject_type}:${o.subject_id}`}>
                      <td>
                        <span className="tag">{o.subject_type === 'user' ? 'member' : 'key'}</span> {nameOf(o.subject_type, o.subject_id)}
                      </td>
                      <td className="small">{limitText(o.limits)}</td>
                      <td>
                        <span className="button-row nowrap">
                          <button
                            type="button"
                            className="btn btn-small"
                            onClick={() => {
                              setType(o.subject_type);
                              setSubject(o.subject_id);
                              setForm(toForm(o.limits));
                            }}
                            aria-label={`Edit limits for ${nameOf(o.subject_type, o.subject_id)}`}
                          >
                            Edit
                          </button>
                          <button type="button" className="btn btn-small btn-ghost" disabled={!!act.busy} onClick={() => void remove(o.subject_type, o.subject_id)} aria-label={`Remove limits for ${nameOf(o.subject_type, o.subject_id)}`}>
                            Remove
                          </button>
                        </span>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}

          <form className="form card" onSubmit={save} aria-label="Set limits for a member or key">
            <div className="form-row">
              <label className="field">
                <span>Limit applies to</span>
                <select
                  value={type}
                  onChange={(e) => {
                    setType(e.target.value as 'user' | 'key');
                    setSubject('');
                  }}
                >
                  <option value="user">A member</option>
                  <option value="key">An API key</option>
                </select>
              </label>
              <label className="field">
                <span>{type === 'user' ? 'Member' : 'API key'}</span>
                <select value={subject} onChange={(e) => setSubject(e.target.value)} required>
                  <option value="">Choose…</option>
                  {type === 'user'
                    ? d.members.map((m) => (
                        <option key={m.id} value={m.id}>
                          {m.email}
                        </option>
                      ))
                    : d.keys.map((k) => (
                        <option key={k.id} value={k.id}>
                          {k.name} ({k.prefix}…)
                        </option>
                      ))}
                </select>
              </label>
            </div>
            <LimitFields value={form} onChange={setForm} idPrefix="subject-limit" />
            <button className="btn btn-primary" type="submit" disabled={!!act.busy}>
              {act.busy === 'save' ? <Spinner label="Saving…" /> : 'Save limits'}
            </button>
          </form>
          <ActionStatus act={act} />
        </>
      ) : null}
    </>
  );
}

function PlatformPlans() {
  const data = useLoad(async () => {
    const [plans, tenants] = await Promise.all([api<{ data: Plan[] }>('/admin/api/plans'), api<ListPage<Tenant>>('/admin/api/tenants?limit=200')]);
    return { plans: plans.data, tenants: tenants.data };
  }, []);
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [caps, setCaps] = useState<string[]>(CAPABILITIES.map((c) => c.name));
  const [models, setModels] = useState('');
  const [limits, setLimits] = useState<LimitForm>(emptyLimits);
  const [assignTenant, setAssignTenant] = useState('');
  const [assignPlan, setAssignPlan] = useState('');
  const act = useAction();
  const d = data.data;

  const edit = (p: Plan) => {
    setName(p.name);
    setDescription(p.description);
    setCaps(p.capabilities);
    setModels(p.allowed_models?.join(', ') ?? '');
    setLimits(toForm(p.limits));
  };
  const save = async (e: FormEvent) => {
    e.preventDefault();
    await act.run('plan', async () => {
      const allowed = models
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      await api(`/admin/api/plans/${encodeURIComponent(name)}`, {
        method: 'PUT',
        body: { description, capabilities: caps, limits: fromForm(limits), allowed_models: allowed.length ? allowed : null },
      });
      await data.reload();
      return `Plan ${name} saved.`;
    });
  };
  const assign = async (e: FormEvent) => {
    e.preventDefault();
    await act.run('assign', async () => {
      await api(`/admin/api/tenants/${encodeURIComponent(assignTenant)}/plan`, { method: 'PUT', body: { plan: assignPlan || null } });
      await data.reload();
      const t = d?.tenants.find((x) => x.id === assignTenant);
      return `${t?.name ?? 'The tenant'} is now on plan ${assignPlan || 'default'}.`;
    });
  };

  return (
    <>
      <h2>Plans (platform)</h2>
      <ErrorNote error={data.error} title="Could not load plans." />
      {data.loading && !d ? <Spinner /> : null}
      {d ? (
        <>
          <div className="table-wrap" tabIndex={0}>
            <table className="table">
              <caption className="sr-only">Plans</caption>
              <thead>
                <tr>
                  <th scope="col">Plan</th>
                  <th scope="col">Limits</th>
                  <th scope="col">Capabilities</th>
                  <th scope="col">Tenants</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {d.plans.map((p) => (
                  <tr key={p.name}>
                    <td>
                      {p.name}
                      {p.description ? <div className="small muted">{p.description}</div> : null}
                    </td>
                    <td className="small">{limitText(p.limits)}</td>
                    <td className="small">{p.capabilities.join(', ') || '—'}</td>
                    <td className="small">{d.tenants.filter((t) => (t.plan ?? 'default') === p.name).map((t) => t.slug).join(', ') || '—'}</td>
                    <td>
                      <button type="button" className="btn btn-small" onClick={() => edit(p)} aria-label={`Edit plan ${p.name}`}>
                        Edit
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {d.plans.length === 0 ? <p className="muted">No plans yet: every tenant has the unlimited default plan.</p> : null}

          <form className="form card" onSubmit={save} aria-label="Create or edit a plan">
            <div className="form-row">
              <label className="field">
                <span>Plan name</span>
                <input required pattern="[a-z0-9][a-z0-9_\-]{0,62}" title="lower-case letters, digits, - and _" value={name} onChange={(e) => setName(e.target.value)} />
              </label>
              <label className="field">
                <span>Description</span>
                <input maxLength={500} value={description} onChange={(e) => setDescription(e.target.value)} />
              </label>
              <label className="field">
                <span>Models (comma-separated, empty = all)</span>
                <input value={models} onChange={(e) => setModels(e.target.value)} />
              </label>
            </div>
            <fieldset className="scopes">
              <legend>Capabilities</legend>
              {CAPABILITIES.map((c) => (
                <label key={c.name} className="check">
                  <input type="checkbox" checked={caps.includes(c.name)} onChange={(e) => setCaps((cur) => (e.target.checked ? [...cur, c.name] : cur.filter((x) => x !== c.name)))} />
                  {c.label}
                </label>
              ))}
            </fieldset>
            <LimitFields value={limits} onChange={setLimits} idPrefix="plan-limit" />
            <button className="btn btn-primary" type="submit" disabled={!!act.busy}>
              {act.busy === 'plan' ? <Spinner label="Saving…" /> : 'Save plan'}
            </button>
          </form>

          <form className="form form-row card" onSubmit={assign} aria-label="Assign a plan to a tenant">
            <label className="field">
              <span>Tenant</span>
              <select required value={assignTenant} onChange={(e) => setAssignTenant(e.target.value)}>
                <option value="">Choose…</option>
                {d.tenants.map((t) => (
                  <option key={t.id} value={t.id}>
                    {t.name} ({t.plan ?? 'default'})
                  </option>
                ))}
              </select>
            </label>
            <label className="field">
              <span>Plan</span>
              <select value={assignPlan} onChange={(e) => setAssignPlan(e.target.value)}>
                <option value="">default</option>
                {d.plans
                  .filter((p) => p.name !== 'default')
                  .map((p) => (
                    <option key={p.name} value={p.name}>
                      {p.name}
                    </option>
                  ))}
              </select>
            </label>
            <button className="btn" type="submit" disabled={!!act.busy}>
              {act.busy === 'assign' ? <Spinner label="Assigning…" /> : 'Assign plan'}
            </button>
          </form>
          <ActionStatus act={act} />
        </>
      ) : null}
    </>
  );
}
