
import { type Role } from '../../api.js';
import { formatTime } from '../../components/ui.js';

export interface Rule {
  claim: 'roles' | 'groups';
  value: string;
  role: Role;
}
export interface Idp {
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
  protocol: 'oidc' | 'saml';
  /** SAML IdPs only (server/sso/saml/settings.ts samlView). */
  saml: SamlView | null;
}
export interface SamlCertificate {
  fingerprint_sha256: string;
  subject: string;
  not_after: string;
  pem: string;
}
export interface SamlView {
  idp_entity_id: string;
  sso_url: string;
  certificates: SamlCertificate[];
  email_attribute: string | null;
  name_attribute: string | null;
  groups_attribute: string | null;
  roles_attribute: string | null;
  allow_idp_initiated: boolean;
  metadata_path: string;
  acs_path: string;
}
export interface LastClaims {
  at: number;
  source: string;
  roles_path: string | null;
  groups_path: string | null;
  roles: string[];
  groups: string[];
  claim_names: string[];
  email_verified: boolean | null;
}
export interface PlatformView {
  configured: boolean;
  issuer: string | null;
  client_id: string | null;
  redirect_uri: string | null;
  settings: { claim_source: string; roles_path: string | null; groups_path: string | null; rules: unknown[]; allowed_domains: string[]; jit: boolean } | null;
}

export const ROLES: Role[] = ['owner', 'admin', 'member', 'viewer'];
export const SOURCES = ['id_token', 'access_token', 'userinfo'];

/** The values of the mapped claims from the last sign-in, with a button to map each value to a role. */
export function ClaimsView({ claims, onMap }: { claims: LastClaims | null; onMap?: (claim: 'roles' | 'groups', value: string) => void }) {
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
