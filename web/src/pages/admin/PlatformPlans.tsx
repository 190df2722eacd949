import { useState, type FormEvent } from 'react';
import { api, type ListPage } from '../../api.js';
import { DataTable } from '../../components/DataTable.js';
import { ErrorNote, Spinner } from '../../components/ui.js';
import { useAction, useLoad, ActionStatus } from './common.js';
import { type Plan, type Tenant, CAPABILITIES, limitText, type LimitForm, emptyLimits, toForm, fromForm, LimitFields } from './plan-limits.js';

/** Plans (platform administrators): list, create, edit, and assign them to tenants. */
export function PlatformPlans() {
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
          <DataTable
            caption="Plans"
            rows={d.plans}
            rowKey={(p) => p.name}
            search={(p) => `${p.name} ${p.description ?? ''}`}
            empty="No plans yet: every tenant has the unlimited default plan."
            initialSort={{ key: 'plan' }}
            columns={[
              {
                key: 'plan',
                header: 'Plan',
                sort: (p) => p.name,
                cell: (p) => (
                  <>
                    {p.name}
                    {p.description ? <div className="small muted">{p.description}</div> : null}
                  </>
                ),
              },
              { key: 'limits', header: 'Limits', className: 'small', cell: (p) => limitText(p.limits) },
              { key: 'capabilities', header: 'Capabilities', className: 'small', cell: (p) => p.capabilities.join(', ') || '—' },
              { key: 'tenants', header: 'Tenants', className: 'small', cell: (p) => d.tenants.filter((t) => (t.plan ?? 'default') === p.name).map((t) => t.slug).join(', ') || '—' },
            ]}
            actions={(p) => (
              <button type="button" className="btn btn-small" onClick={() => edit(p)} aria-label={`Edit plan ${p.name}`}>
                Edit
              </button>
            )}
          />

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
