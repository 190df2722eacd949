import { useState, type ChangeEvent, type FormEvent } from 'react';
import { api } from '../../api.js';
import { Spinner } from '../../components/ui.js';
import { tenantPath, useAction, ActionStatus } from './common.js';
import { type Idp, type SamlView, ROLES } from './sso-common.js';

/**
 * SAML 2.0 IdPs on the single sign-on page (issue 21/24): add one from its metadata XML or by
 * hand (entity id, SSO URL, signing certificates), and view/edit an existing one. The admin API
 * (server/sso/saml/settings.ts) validates everything; these forms only collect the fields.
 */

/** Several PEM certificates pasted into one box (rollover: old and new side by side). */
export function splitPems(text: string): string[] {
  const found = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g);
  if (found) return found;
  const bare = text.trim();
  return bare ? [bare] : [];
}

type Attrs = { email_attribute: string; name_attribute: string; groups_attribute: string; roles_attribute: string };
const ATTR_FIELDS: [keyof Attrs, string, string][] = [
  ['email_attribute', 'E-mail attribute', 'NameID when empty'],
  ['name_attribute', 'Name attribute', 'displayName'],
  ['groups_attribute', 'Groups attribute', 'groups'],
  ['roles_attribute', 'Roles attribute', 'roles'],
];
const orNull = (s: string) => s.trim() || null;

function AttributeFields({ value, onChange }: { value: Attrs; onChange: (next: Attrs) => void }) {
  return (
    <div className="form-row">
      {ATTR_FIELDS.map(([k, label, placeholder]) => (
        <label className="field" key={k}>
          <span>{label}</span>
          <input value={value[k]} maxLength={300} placeholder={placeholder} onChange={(e) => onChange({ ...value, [k]: e.target.value })} />
        </label>
      ))}
    </div>
  );
}

function IdpInitiated({ checked, onChange }: { checked: boolean; onChange: (v: boolean) => void }) {
  return (
    <label className="check">
      <input type="checkbox" checked={checked} onChange={(e) => onChange(e.target.checked)} />
      Allow IdP-initiated sign-in (unsolicited responses from the IdP's portal; off is safer)
    </label>
  );
}

/** Reads a chosen metadata file into the text box (it never leaves the browser until saved). */
function MetadataFile({ onText }: { onText: (xml: string) => void }) {
  const pick = async (e: ChangeEvent<HTMLInputElement>) => {
    const f = e.target.files?.[0];
    if (f) onText(await f.text());
  };
  return (
    <label className="field">
      <span>Metadata file</span>
      <input type="file" accept=".xml,application/xml,text/xml,application/samlmetadata+xml" onChange={(e) => void pick(e)} />
    </label>
  );
}

const emptyAttrs: Attrs = { email_attribute: '', name_attribute: '', groups_attribute: 'groups', roles_attribute: '' };

export function SamlAddForm({ tenantId, onAdded }: { tenantId: string; onAdded: (idp: Idp) => Promise<void> }) {
  const act = useAction();
  const [name, setName] = useState('');
  const [source, setSource] = useState<'metadata' | 'manual'>('metadata');
  const [metadata, setMetadata] = useState('');
  const [manual, setManual] = useState({ idp_entity_id: '', sso_url: '', certificates: '' });
  const [attrs, setAttrs] = useState<Attrs>(emptyAttrs);
  const [defaultRole, setDefaultRole] = useState('member');
  const [idpInitiated, setIdpInitiated] = useState(false);

  const add = async (e: FormEvent) => {
    e.preventDefault();
    await act.run('add-saml', async () => {
      const idp = await api<Idp>(tenantPath(tenantId, '/sso/idps'), {
        body: {
          protocol: 'saml',
          name,
          ...(source === 'metadata' ? { metadata_xml: metadata } : { idp_entity_id: manual.idp_entity_id.trim(), sso_url: manual.sso_url.trim(), certificates: splitPems(manual.certificates) }),
          email_attribute: orNull(attrs.email_attribute),
          name_attribute: orNull(attrs.name_attribute),
          groups_attribute: orNull(attrs.groups_attribute),
          roles_attribute: orNull(attrs.roles_attribute),
          default_role: defaultRole || null,
          allow_idp_initiated: idpInitiated,
        },
      });
      setName('');
      setMetadata('');
      setManual({ idp_entity_id: '', sso_url: '', certificates: '' });
      await onAdded(idp);
      return `SAML provider ${idp.name} added. Give its administrator our metadata (shown under Settings & mapping).`;
    });
  };

  return (
    <form className="form card" onSubmit={add} aria-label="Add a SAML provider">
      <label className="field">
        <span>Button label</span>
        <input required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} placeholder="Company login" />
      </label>
      <fieldset className="radio-row">
        <legend>The IdP's settings</legend>
        <label className="check">
          <input type="radio" name="saml-source" checked={source === 'metadata'} onChange={() => setSource('metadata')} />
          Import its metadata
        </label>
        <label className="check">
          <input type="radio" name="saml-source" checked={source === 'manual'} onChange={() => setSource('manual')} />
          Enter them by hand
        </label>
      </fieldset>
      {source === 'metadata' ? (
        <>
          <MetadataFile onText={setMetadata} />
          <label className="field">
            <span>Metadata XML</span>
            <textarea required rows={4} value={metadata} onChange={(e) => setMetadata(e.target.value)} placeholder="<md:EntityDescriptor …>" spellCheck={false} />
          </label>
        </>
      ) : (
        <>
          <div className="form-row">
            <label className="field">
              <span>IdP entity ID</span>
              <input required value={manual.idp_entity_id} onChange={(e) => setManual((m) => ({ ...m, idp_entity_id: e.target.value }))} placeholder="https://idp.example.com/saml" />
            </label>
            <label className="field">
              <span>SSO URL (HTTP-Redirect)</span>
              <input required type="url" value={manual.sso_url} onChange={(e) => setManual((m) => ({ ...m, sso_url: e.target.value }))} placeholder="https://idp.example.com/sso" />
            </label>
          </div>
          <label className="field">
            <span>Signing certificates (PEM, one or more)</span>
            <textarea required rows={4} value={manual.certificates} onChange={(e) => setManual((m) => ({ ...m, certificates: e.target.value }))} placeholder="-----BEGIN CERTIFICATE-----" spellCheck={false} />
          </label>
        </>
      )}
      <AttributeFields value={attrs} onChange={setAttrs} />
      <div className="form-row">
        <label className="field">
          <span>Role when no rule matches</span>
          <select value={defaultRole} onChange={(e) => setDefaultRole(e.target.value)}>
            <option value="">No access</option>
            {ROLES.filter((r) => r !== 'owner').map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </label>
      </div>
      <IdpInitiated checked={idpInitiated} onChange={setIdpInitiated} />
      <button className="btn btn-primary" type="submit" disabled={!!act.busy}>
        {act.busy ? <Spinner label="Adding…" /> : 'Add SAML provider'}
      </button>
      <ActionStatus act={act} />
    </form>
  );
}

const attrsOf = (s: SamlView): Attrs => ({
  email_attribute: s.email_attribute ?? '',
  name_attribute: s.name_attribute ?? '',
  groups_attribute: s.groups_attribute ?? '',
  roles_attribute: s.roles_attribute ?? '',
});

/** One SAML IdP: what to give its administrator (our metadata, ACS URL), and its editable settings. */
export function SamlSettings({ idp, saml, tenantId, onSaved }: { idp: Idp; saml: SamlView; tenantId: string; onSaved: () => void }) {
  const act = useAction();
  const origin = window.location.origin;
  const [form, setForm] = useState({ idp_entity_id: saml.idp_entity_id, sso_url: saml.sso_url, certificates: '', metadata: '' });
  const [attrs, setAttrs] = useState<Attrs>(attrsOf(saml));
  const [idpInitiated, setIdpInitiated] = useState(saml.allow_idp_initiated);

  const save = async (e: FormEvent) => {
    e.preventDefault();
    await act.run('save', async () => {
      const certs = splitPems(form.certificates);
      // Explicit fields win over imported metadata on the server; send only what was changed here.
      const body: Record<string, unknown> = {
        email_attribute: orNull(attrs.email_attribute),
        name_attribute: orNull(attrs.name_attribute),
        groups_attribute: orNull(attrs.groups_attribute),
        roles_attribute: orNull(attrs.roles_attribute),
        allow_idp_initiated: idpInitiated,
      };
      if (form.metadata.trim()) body.metadata_xml = form.metadata;
      if (form.idp_entity_id.trim() !== saml.idp_entity_id) body.idp_entity_id = form.idp_entity_id.trim();
      if (form.sso_url.trim() !== saml.sso_url) body.sso_url = form.sso_url.trim();
      if (certs.length) body.certificates = certs;
      const next = await api<Idp>(tenantPath(tenantId, `/sso/idps/${idp.id}`), { method: 'PATCH', body });
      setForm({ idp_entity_id: next.saml?.idp_entity_id ?? '', sso_url: next.saml?.sso_url ?? '', certificates: '', metadata: '' });
      onSaved();
      return 'SAML settings saved.';
    });
  };

  return (
    <div className="saml-settings">
      <h4>For the IdP's administrator</h4>
      <dl className="facts">
        <dt>Our entity ID</dt>
        <dd className="break">
          <code>{origin + saml.metadata_path}</code>
        </dd>
        <dt>ACS URL (HTTP-POST)</dt>
        <dd className="break">
          <code>{origin + saml.acs_path}</code>
        </dd>
        <dt>Our metadata</dt>
        <dd>
          <a href={saml.metadata_path} target="_blank" rel="noreferrer">
            Download SP metadata
          </a>
        </dd>
      </dl>
      <h4>Signing certificates the IdP may use</h4>
      <ul className="cert-list" aria-label={`Certificates of ${idp.name}`}>
        {saml.certificates.map((c) => (
          <li key={c.fingerprint_sha256}>
            <span className="break">{c.subject.replace(/\n/g, ', ')}</span>
            <span className={`small ${Date.parse(c.not_after) < Date.now() ? 'bad' : 'muted'}`}>valid until {new Date(c.not_after).toLocaleDateString()}</span>
            <code className="small break">SHA-256 {c.fingerprint_sha256}</code>
          </li>
        ))}
      </ul>
      <form className="form" onSubmit={save} aria-label={`SAML settings of ${idp.name}`}>
        <div className="form-row">
          <label className="field">
            <span>IdP entity ID</span>
            <input required value={form.idp_entity_id} onChange={(e) => setForm((f) => ({ ...f, idp_entity_id: e.target.value }))} />
          </label>
          <label className="field">
            <span>SSO URL (HTTP-Redirect)</span>
            <input required type="url" value={form.sso_url} onChange={(e) => setForm((f) => ({ ...f, sso_url: e.target.value }))} />
          </label>
        </div>
        <label className="field">
          <span>Replace the certificates (PEM, one or more; empty keeps them)</span>
          <textarea rows={3} value={form.certificates} onChange={(e) => setForm((f) => ({ ...f, certificates: e.target.value }))} spellCheck={false} />
        </label>
        <details className="field-more">
          <summary>Re-import the IdP's metadata</summary>
          <MetadataFile onText={(xml) => setForm((f) => ({ ...f, metadata: xml }))} />
          <label className="field">
            <span>Metadata XML (fields above win when you changed them)</span>
            <textarea rows={3} value={form.metadata} onChange={(e) => setForm((f) => ({ ...f, metadata: e.target.value }))} spellCheck={false} />
          </label>
        </details>
        <AttributeFields value={attrs} onChange={setAttrs} />
        <IdpInitiated checked={idpInitiated} onChange={setIdpInitiated} />
        <div className="button-row">
          <button className="btn" type="submit" disabled={!!act.busy}>
            {act.busy ? <Spinner label="Saving…" /> : 'Save SAML settings'}
          </button>
        </div>
        <ActionStatus act={act} />
      </form>
    </div>
  );
}
