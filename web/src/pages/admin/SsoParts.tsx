import { useEffect, useState, type FormEvent } from 'react';
import { api, type Role } from '../../api.js';
import { DataTable } from '../../components/DataTable.js';
import { ErrorNote, Spinner } from '../../components/ui.js';
import { tenantPath, useAction, useLoad, ActionStatus } from './common.js';
import { SamlSettings } from './SsoSaml.js';
import { type Rule, type Idp, type LastClaims, type PlatformView, ROLES, ClaimsView } from './sso-common.js';

/** One IdP's settings and mapping rules, and the platform IdP (single sign-on page). */
export function IdpDetail({ idp, tenantId, onSaved }: { idp: Idp; tenantId: string; onSaved: () => void }) {
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
        {idp.name}: {idp.saml ? 'settings, claims and mapping' : 'claims and mapping'}
      </h3>
      {idp.saml ? <SamlSettings idp={idp} saml={idp.saml} tenantId={tenantId} onSaved={onSaved} /> : null}
      {idp.saml ? null : (
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
      )}
      <h4>Last received claims</h4>
      <ErrorNote error={claims.error} />
      {claims.loading && !claims.data ? <Spinner /> : null}
      {claims.data ? <ClaimsView claims={claims.data.last_claims} onMap={(claim, value) => setDraft((d) => ({ ...d, claim, value }))} /> : null}

      <h4>Mapping rules (claim value → role in this organisation)</h4>
      {/* The highest role of any matching rule wins, so the order shown is only for reading. */}
      <DataTable
        caption={`Mapping rules of ${idp.name}`}
        rows={rules}
        rowKey={(r) => `${r.claim}:${r.value}`}
        empty={`No rules: everyone gets the default role (${idp.default_role ?? 'no access'}).`}
        dense
        columns={[
          { key: 'claim', header: 'Claim', cell: (r) => r.claim, sort: (r) => r.claim },
          { key: 'value', header: 'Value', cell: (r) => <code>{r.value}</code>, sort: (r) => r.value },
          { key: 'role', header: 'Role', cell: (r) => r.role, sort: (r) => r.role },
        ]}
        actions={(r) => (
          <button type="button" className="btn btn-small btn-ghost" disabled={!!act.busy} onClick={() => void save(rules.filter((x) => x !== r))} aria-label={`Remove rule ${r.claim} ${r.value}`}>
            Remove
          </button>
        )}
      />
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

export function PlatformIdp() {
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
