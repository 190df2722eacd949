import { useState, type FormEvent } from 'react';
import { api } from '../../api.js';
import { DataTable } from '../../components/DataTable.js';
import { ErrorNote, PageTitle, Spinner } from '../../components/ui.js';
import { useSession } from '../../session.js';
import { tenantPath, useAction, useLoad, useTenantId, ActionStatus } from './common.js';
import { type Idp, ROLES, SOURCES } from './sso-common.js';
import { IdpDetail, PlatformIdp } from './SsoParts.js';
import { SamlAddForm } from './SsoSaml.js';

/** Single sign-on: the organisation's OpenID Connect and SAML providers, claim-to-role mapping, and the platform IdP for platform admins. */
export function SsoPage() {
  const { session } = useSession();
  const tenantId = useTenantId();
  const list = useLoad(async () => (tenantId ? (await api<{ data: Idp[] }>(tenantPath(tenantId, '/sso/idps'))).data : []), [tenantId]);
  const [selected, setSelected] = useState<string | null>(null);
  const act = useAction();
  const [protocol, setProtocol] = useState<'oidc' | 'saml'>('oidc');
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
        <DataTable
          caption="Sign-in providers"
          rows={list.data}
          rowKey={(i) => i.id}
          search={(i) => `${i.name} ${i.issuer}`}
          empty="No provider yet. Add your organisation's OpenID Connect or SAML provider (Keycloak, Entra ID, Okta, Google, ADFS…) below."
          initialSort={{ key: 'name' }}
          rowClassName={(i) => (selected === i.id ? 'selected' : undefined)}
          columns={[
            { key: 'name', header: 'Name', cell: (i) => i.name, sort: (i) => i.name },
            { key: 'protocol', header: 'Protocol', cell: (i) => (i.protocol === 'saml' ? 'SAML 2.0' : 'OpenID Connect'), sort: (i) => i.protocol },
            { key: 'issuer', header: 'Issuer or entity ID', className: 'small break', cell: (i) => i.issuer, sort: (i) => i.issuer },
            {
              key: 'status',
              header: 'Status',
              sort: (i) => (i.enabled ? 0 : 1),
              cell: (i) => (
                <>
                  <span className={`tag ${i.enabled ? 'tag-active' : ''}`}>{i.enabled ? 'enabled' : 'disabled'}</span>
                  {i.enforce_sso ? <span className="tag">SSO only</span> : null}
                </>
              ),
            },
            { key: 'rules', header: 'Mapping rules', num: true, cell: (i) => i.mapping.length, sort: (i) => i.mapping.length },
          ]}
          actions={(i) => (
            <span className="button-row nowrap">
              <button type="button" className="btn btn-small" aria-pressed={selected === i.id} onClick={() => setSelected(selected === i.id ? null : i.id)} aria-label={`Settings & mapping of ${i.name}`}>
                Settings & mapping
              </button>
              <button type="button" className="btn btn-small btn-ghost" disabled={!!act.busy} onClick={() => void remove(i)} aria-label={`Delete ${i.name}`}>
                Delete
              </button>
            </span>
          )}
        />
      ) : null}
      <ActionStatus act={act} />
      {current && tenantId ? <IdpDetail key={current.id} idp={current} tenantId={tenantId} onSaved={() => void list.reload()} /> : null}

      <h2>Add a provider</h2>
      <fieldset className="radio-row">
        <legend>Protocol</legend>
        <label className="check">
          <input type="radio" name="sso-protocol" checked={protocol === 'oidc'} onChange={() => setProtocol('oidc')} />
          OpenID Connect
        </label>
        <label className="check">
          <input type="radio" name="sso-protocol" checked={protocol === 'saml'} onChange={() => setProtocol('saml')} />
          SAML 2.0
        </label>
      </fieldset>
      {protocol === 'saml' && tenantId ? (
        <SamlAddForm
          tenantId={tenantId}
          onAdded={async (idp) => {
            await list.reload();
            setSelected(idp.id);
          }}
        />
      ) : null}
      {protocol === 'oidc' ? (
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
      ) : null}
    </section>
  );
}
