import { useState, type FormEvent } from 'react';
import { api, type ListPage } from '../../api.js';
import { DataTable } from '../../components/DataTable.js';
import { ErrorNote, Note, PageTitle, Spinner } from '../../components/ui.js';
import { useSession } from '../../session.js';
import { tenantPath, useAction, useLoad, useTenantId, ActionStatus } from './common.js';
import { type TenantLimits, CAPABILITIES, limitText, type LimitForm, emptyLimits, toForm, fromForm, LimitFields } from './plan-limits.js';
import { PlatformPlans } from './PlatformPlans.js';

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
          <DataTable
            caption="Limits set for members and API keys"
            rows={d.limits.overrides}
            rowKey={(o) => `${o.subject_type}:${o.subject_id}`}
            search={(o) => nameOf(o.subject_type, o.subject_id)}
            empty="No member or key has its own limits; the organisation's plan applies to all."
            initialSort={{ key: 'for' }}
            columns={[
              {
                key: 'for',
                header: 'For',
                sort: (o) => nameOf(o.subject_type, o.subject_id),
                cell: (o) => (
                  <>
                    <span className="tag">{o.subject_type === 'user' ? 'member' : 'key'}</span> {nameOf(o.subject_type, o.subject_id)}
                  </>
                ),
              },
              { key: 'limits', header: 'Limits', className: 'small', cell: (o) => limitText(o.limits) },
            ]}
            actions={(o) => (
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
            )}
          />

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
