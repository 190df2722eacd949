import type { SsoIdentityRow } from '../db/repos/sso.js';
import type { UserRow } from '../identity/users.js';

/**
 * Which IdP may assert which account (issue 16). Pure decisions, so each rule reads (and is
 * tested) on its own; server/sso/service.ts applies them at every tenant-IdP login.
 *
 * A tenant IdP is authoritative only for:
 *  - accounts it provisioned itself (JIT, for its tenant's verified domains, or an
 *    invitation of its tenant accepted through it) — origin `provisioned`;
 *  - accounts whose holder linked this (issuer, sub) while signed in as themselves —
 *    origin `linked_by_user`;
 *  - accounts linked by e-mail under the verified-domain rule below — `linked_by_email`.
 * It never signs in a platform administrator (they use the platform IdP or the local
 * break-glass login), and an identity is usable only through the IdP it was linked through
 * (two tenants may configure the same issuer).
 *
 * Links made before these rules (`legacy`) were made by the old "is a member of the IdP's
 * tenant" rule, which a tenant admin could satisfy by adding anyone: they stay usable only
 * while the account belongs to no tenant but the IdP's.
 */
export function assertionRefusal(x: {
  idpRef: string;
  tenantId: string;
  user: Pick<UserRow, 'platformAdmin'>;
  identity: Pick<SsoIdentityRow, 'idpRef' | 'origin'>;
  memberships: readonly string[];
}): string | undefined {
  if (x.user.platformAdmin) return 'platform_admin_requires_platform_idp';
  if (x.identity.idpRef !== x.idpRef) return 'account_link_refused';
  if (x.identity.origin === 'legacy' && x.memberships.some((t) => t !== x.tenantId)) return 'account_link_refused';
  return undefined;
}

/**
 * Linking an existing account by its (IdP-verified) e-mail: only when a platform admin
 * verified the address's domain for the IdP's tenant, and never for an account that is a
 * member of any other tenant or is a platform admin. A tenant admin's allowed_domains list
 * is a filter, never a grant.
 */
export function emailLinkAllowed(x: {
  tenantId: string;
  verifiedFor: string | undefined;
  user: Pick<UserRow, 'platformAdmin' | 'status'>;
  memberships: readonly string[];
}): boolean {
  if (x.user.platformAdmin || x.user.status !== 'active') return false;
  if (x.verifiedFor !== x.tenantId) return false;
  return x.memberships.every((t) => t === x.tenantId);
}
