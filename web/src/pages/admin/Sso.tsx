import { useEffect, useState, type FormEvent } from 'react';
import { api, type Role } from '../../api.js';
import { ErrorNote, formatTime, PageTitle, Spinner } from '../../components/ui.js';
import { useSession } from '../../session.js';
import { tenantPath, useAction, useLoad, useTenantId, ActionStatus } from './common.js';

interface Rule {
  claim: 'roles' | 'groups';
  value: string;
  role: Role;
}
interface Idp {
  id: string;
  name: string;
  issuer: string;
  client_id: string;
  scopes: string;
  claim_source: string;
  roles_path: string | null;
  groups_path: string | null;
  mapping: Rule[];
  default_role: Role | null;
  allowed_domains: string[];
  jit: boolean;
  enforce_sso: boolean;
  enabled: boolean;
  login_path: string;
}
interface LastClaims {
  at: number;
  source: string;
  roles_path: string | null;
  groups_path: string | null;
  roles: string[];
  groups: string[];
  claim_names: string[];
  email_verified: boolean | null;
}
interface PlatformView {
  configured: boolean;
  issuer: string | null;
  client_id: string | null;
  redirect_uri: string | null;
  settings: { claim_source: string; roles_path: string | null; groups_path: string | null; rules: unknown[]; allowed_domains: string[]; jit: boolean } | null;
}

const ROLES: Role[] = ['owner', 'admin', 'member', 'viewer'];
const SOURCES = ['id_token', 'access_token', 'userinfo'];

/** The values of the mapped claims from the last sign-in, with a button to map each value to a role. */
function ClaimsView({ claims, onMap }: { claims: LastClaims | null; onMap?: (claim: 'roles' | 'groups', value: string) => void }) {
  if (!claims) return <p className="muted">No sign-in received through this provider yet. Sign in once, then come back to map the values it sends.</p>;
  const list = (claim: 'roles' | 'groups', values: string[], path: string | null) => (
    <div>
      <h4 className="claims-title">
        {claim === 'roles' ? 'Roles' : 'Groups'} <span className="muted small">({path ?? 'no claim path set'})</span>
      </h4>
      {values.length === 0 ? (
        <p className="muted small">None received.</p>
      ) : (
        <ul className="claim-values">
          {values.map((v) => (
            <li key={v}>
              <code>{v}</code>
              {onMap ? (
                <button type="button" className="btn btn-small btn-ghost" onClick={() => onMap(claim, v)} aria-label={`Map ${claim === 'roles' ? 'role' : 'group'} ${v} to a role`}>
                  Map…
                </button>
              ) : null}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
  return (
    <div className="claims" data-testid="last-claims">
      <p className="small">
        Last sign-in {formatTime(claims.at)} · from the {claims.source.replace('_', ' ')} · e-mail verified: {claims.email_verified === null ? 'not sent' : claims.email_verified ? 'yes' : 'no'}
      </p>
      <div className="claims-grid">
        {list('roles', claims.roles, claims.roles_path)}
        {list('groups', claims.groups, claims.groups_path)}
      </div>
      <p className="small muted">Claims received: {claims.claim_names.join(', ') || '—'} (names only; other values are never stored)</p>
    </div>
  );
}

/** Single sign-on: the organisation's OpenID Connect providers, claim-to-role mapping, and the platform IdP for platform admins. */
export function SsoPage() {
  const { session } = useSession();
  const tenantId = useTenantId();
  const list = useLoad(async () => (tenantId ? (await api<{ data: Idp[] }>(tenantPath(tenantId, '/sso/idps'))).data : []), [tenantId]);
  const [selected, setSelected] = useState<string | null>(null);
  const act = useAction();
  const [form, setForm] = useState({ name: '', issuer: '', client_id: '', client_secret: '', claim_source: 'id_token', roles_path: '', groups_path: 'groups', default_role: 'member' });
  const set = (k: keyof typeof form) => (e: { target: { value: string } }) => setForm((f) => ({ ...f, [k]: e.target.value }));

  const add = async (e: FormEvent) => {
    e.preventDefault();
    if (!tenantId) return;
    await act.run('add', async () => {
      const idp = await api<Idp>(tenantPath(tenantId, '/sso/idps'), {
        body: {
          name: form.name,
          issuer: form.issuer,
          client_id: form.client_id,
          client_secret: form.client_secret,
          claim_source: form.claim_source,
          roles_path: form.roles_path.trim() || null,
          groups_path: form.groups_path.trim() || null,
          default_role: form.default_role || null,
        },
      });
      setForm((f) => ({ ...f, name: '', client_secret: '' }));
      await list.reload();
      setSelected(idp.id);
      return `Provider ${idp.name} added. Its sign-in button appears on the sign-in page for this organisation.`;
    });
  };
  const remove = async (idp: Idp) => {
    if (!tenantId || !confirm(`Delete the sign-in provider ${idp.name}? Its users can no longer sign in through it.`)) return;
    await act.run(`delete:${idp.id}`, async () => {
      await api(tenantPath(tenantId, `/sso/idps/${idp.id}`), { method: 'DELETE' });
      if (selected === idp.id) setSelected(null);
      await list.reload();
      return `Provider ${idp.name} deleted.`;
    });
  };

  const current = list.data?.find((i) => i.id === selected) ?? null;
  return (
    <section className="page">
      <PageTitle>Single sign-on</PageTitle>
      {session.user.platform_admin ? <PlatformIdp /> : null}
      <h2>Sign-in providers of this organisation</h2>
      <ErrorNote error={list.error} title="Could not load the sign-in providers." />
      {list.loading && !list.data ? <Spinner /> : null}
      {list.data ? (
        list.data.length === 0 ? (
          <p className="muted">No provider yet. Add your organisation's OpenID Connect provider (Keycloak, Entra ID, Okta, Google…) below.</p>
        ) : (
          <div className="table-wrap" tabIndex={0}>
            <table className="table">
              <caption className="sr-only">Sign-in providers</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Issuer</th>
                  <th scope="col">Status</th>
                  <th scope="col">Mapping rules</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.map((i) => (
                  <tr key={i.id} className={selected === i.id ? 'selected' : undefined}>
                    <td>{i.name}</td>
                    <td className="small break">{i.issuer}</td>
                    <td>
                      <span className={`tag ${i.enabled ? 'tag-active' : ''}`}>{i.enabled ? 'enabled' : 'disabled'}</span>
                      {i.enforce_sso ? <span className="tag">SSO only</span> : null}
                    </td>
                    <td>{i.mapping.length}</td>
                    <td>
                      <span className="button-row nowrap">
                        <button type="button" className="btn btn-small" aria-pressed={selected === i.id} onClick={() => setSelected(selected === i.id ? null : i.id)} aria-label={`Claims & mapping of ${i.name}`}>
                          Claims & mapping
                        </button>
                        <button type="button" className="btn btn-small btn-ghost" disabled={!!act.busy} onClick={() => void remove(i)} aria-label={`Delete ${i.name}`}>
                          Delete
                        </button>
                      </span>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )
      ) : null}
      <ActionStatus act={act} />
      {current && tenantId ? <IdpDetail key={current.id} idp={current} tenantId={tenantId} onSaved={() => void list.reload()} /> : null}

      <h2>Add a provider</h2>
      <form className="form card" onSubmit={add} aria-label="Add a sign-in provider">
        <div className="form-row">
          <label className="field">
            <span>Button label</span>
            <input required maxLength={100} value={form.name} onChange={set('name')} placeholder="Company login" />
          </label>
          <label className="field">
            <span>Issuer URL</span>
            <input required type="url" value={form.issuer} onChange={set('issuer')} placeholder="https://login.example.com/realms/acme" />
          </label>
        </div>
        <div className="form-row">
          <label className="field">
            <span>Client ID</span>
            <input required value={form.client_id} onChange={set('client_id')} />
          </label>
          <label className="field">
            <span>Client secret (stored encrypted)</span>
            <input required type="password" autoComplete="off" value={form.client_secret} onChange={set('client_secret')} />
          </label>
        </div>
        <div className="form-row">
          <label className="field">
            <span>Read claims from</span>
            <select value={form.claim_source} onChange={set('claim_source')}>
              {SOURCES.map((s) => (
                <option key={s} value={s}>
                  {s.replace('_', ' ')}
                </option>
              ))}
            </select>
          </label>
          <label className="field">
            <span>Roles claim path</span>
            <input value={form.roles_path} onChange={set('roles_path')} placeholder="realm_access.roles" />
          </label>
          <label className="field">
            <span>Groups claim path</span>
            <input value={form.groups_path} onChange={set('groups_path')} placeholder="groups" />
          </label>
          <label className="field">
            <span>Role when no rule matches</span>
            <select value={form.default_role} onChange={set('default_role')}>
              <option value="">No access</option>
              {ROLES.filter((r) => r !== 'owner').map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </select>
          </label>
        </div>
        <button className="btn btn-primary" type="submit" disabled={!!act.busy}>
          {act.busy === 'add' ? <Spinner label="Adding…" /> : 'Add provider'}
        </button>
      </form>
    </section>
  );
}

function IdpDetail({ idp, tenantId, onSaved }: { idp: Idp; tenantId: string; onSaved: () => void }) {
  const claims = useLoad(() => api<{ last_claims: LastClaims | null }>(tenantPath(tenantId, `/sso/idps/${idp.id}/claims`)), [tenantId, idp.id]);
  const [rules, setRules] = useState<Rule[]>(idp.mapping);
  const [draft, setDraft] = useState<Rule>({ claim: 'groups', value: '', role: 'member' });
  const [test, setTest] = useState<{ ok: boolean; reason: string | null } | null>(null);
  const act = useAction();
  useEffect(() => setRules(idp.mapping), [idp.mapping]);

  const save = async (next: Rule[]) => {
    await act.run('mapping', async () => {
      await api(tenantPath(tenantId, `/sso/idps/${idp.id}`), { method: 'PATCH', body: { mapping: next } });
      setRules(next);
      onSaved();
      return 'Mapping saved. It applies at each user’s next sign-in.';
    });
  };
  const addRule = (e: FormEvent) => {
    e.preventDefault();
    if (!draft.value.trim()) return;
    void save([...rules.filter((r) => !(r.claim === draft.claim && r.value === draft.value.trim())), { ...draft, value: draft.value.trim() }]);
    setDraft((d) => ({ ...d, value: '' }));
  };
  const runTest = async () => {
    setTest(null);
    await act.run('test', async () => {
      const r = await api<{ ok: boolean; reason: string | null }>(tenantPath(tenantId, `/sso/idps/${idp.id}/test`), { body: {} });
      setTest(r);
    });
  };

  return (
    <div className="card" aria-labelledby={`idp-${idp.id}`}>
      <h3 id={`idp-${idp.id}`} className="card-title">
        {idp.name}: claims and mapping
      </h3>
      <div className="button-row">
        <button type="button" className="btn btn-small" onClick={() => void runTest()} disabled={!!act.busy}>
          {act.busy === 'test' ? <Spinner label="Testing…" /> : 'Test connection'}
        </button>
        {test ? (
          <span className={`small ${test.ok ? 'ok' : 'bad'}`} role="status">
            {test.ok ? 'Discovery and keys reachable.' : `Not reachable: ${test.reason}`}
          </span>
        ) : null}
      </div>
      <h4>Last received claims</h4>
      <ErrorNote error={claims.error} />
      {claims.loading && !claims.data ? <Spinner /> : null}
      {claims.data ? <ClaimsView claims={claims.data.last_claims} onMap={(claim, value) => setDraft((d) => ({ ...d, claim, value }))} /> : null}

      <h4>Mapping rules (claim value → role in this organisation)</h4>
      {rules.length === 0 ? (
        <p className="muted small">No rules: everyone gets the default role ({idp.default_role ?? 'no access'}).</p>
      ) : (
        <table className="table table-dense">
          <caption className="sr-only">Mapping rules of {idp.name}</caption>
          <thead>
            <tr>
              <th scope="col">Claim</th>
              <th scope="col">Value</th>
              <th scope="col">Role</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rules.map((r) => (
              <tr key={`${r.claim}:${r.value}`}>
                <td>{r.claim}</td>
                <td>
                  <code>{r.value}</code>
                </td>
                <td>{r.role}</td>
                <td>
                  <button type="button" className="btn btn-small btn-ghost" disabled={!!act.busy} onClick={() => void save(rules.filter((x) => x !== r))} aria-label={`Remove rule ${r.claim} ${r.value}`}>
                    Remove
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form className="form-row" onSubmit={addRule} aria-label="Add a mapping rule">
        <label className="field">
          <span>Claim</span>
          <select value={draft.claim} onChange={(e) => setDraft((d) => ({ ...d, claim: e.target.value as Rule['claim'] }))}>
            <option value="groups">groups</option>
            <option value="roles">roles</option>
          </select>
        </label>
        <label className="field">
          <span>Value</span>
          <input value={draft.value} onChange={(e) => setDraft((d) => ({ ...d, value: e.target.value }))} required maxLength={300} />
        </label>
        <label className="field">
          <span>Role</span>
          <select value={draft.role} onChange={(e) => setDraft((d) => ({ ...d, role: e.target.value as Role }))}>
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" className="btn" disabled={!!act.busy}>
          {act.busy === 'mapping' ? <Spinner label="Saving…" /> : 'Add rule'}
        </button>
      </form>
      <ActionStatus act={act} />
    </div>
  );
}

function PlatformIdp() {
  const data = useLoad(async () => {
    const [view, claims] = await Promise.all([api<PlatformView>('/admin/api/sso/platform'), api<{ last_claims: LastClaims | null }>('/admin/api/sso/platform/claims')]);
    return { view, claims: claims.last_claims };
  }, []);
  const d = data.data;
  return (
    <>
      <h2>Platform sign-in provider</h2>
      <ErrorNote error={data.error} title="Could not load the platform provider." />
      {data.loading && !d ? <Spinner /> : null}
      {d ? (
        <div className="card">
          {d.view.configured ? (
            <>
              <dl className="facts">
                <dt>Issuer</dt>
                <dd className="break">{d.view.issuer}</dd>
                <dt>Client ID</dt>
                <dd>{d.view.client_id}</dd>
                <dt>Redirect URI</dt>
                <dd className="break">{d.view.redirect_uri ?? 'set ENCLAVE_PUBLIC_URL'}</dd>
                <dt>Rules</dt>
                <dd>
                  {d.view.settings?.rules.length ?? 0} claim {(d.view.settings?.rules.length ?? 0) === 1 ? 'rule' : 'rules'} (set through PUT /admin/api/sso/platform)
                </dd>
              </dl>
              <h3 className="card-title">Last received claims</h3>
              <ClaimsView claims={d.claims} />
            </>
          ) : (
            <p className="muted">No platform provider is configured (ENCLAVE_OIDC_ISSUER). Organisations can still add their own below.</p>
          )}
        </div>
      ) : null}
    </>
  );
}
