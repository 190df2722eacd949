import { z } from 'zod';
import { ROLES, type Role } from '../access/permissions.js';

/**
 * Pure SSO logic: claim paths, the claim → role mapping, e-mail domains, returnTo.
 * Nothing here talks to the network or the database.
 */
export type ClaimSource = 'id_token' | 'access_token' | 'userinfo';
export const CLAIM_SOURCES = ['id_token', 'access_token', 'userinfo'] as const;

const ROLE_RANK: Record<Role, number> = { viewer: 1, member: 2, admin: 3, owner: 4 };

/** A dotted path: `realm_access.roles`, `resource_access.enclave.roles`, `groups`. */
export const claimPath = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9_:\-]+(\.[A-Za-z0-9_:\-]+)*$/, 'a dotted claim path such as realm_access.roles');

/** Tenant IdP rule: a claim value → a role in the IdP's own tenant. */
export const tenantRule = z.object({ claim: z.enum(['roles', 'groups']), value: z.string().min(1).max(300), role: z.enum(ROLES) }).strict();
export type TenantRule = z.infer<typeof tenantRule>;

/**
 * Platform IdP rule: a claim value → platform admin, or a role in a named tenant (slug).
 * Only the platform IdP has these, and only platform admins set them.
 */
export const platformRule = z.union([
  z.object({ claim: z.enum(['roles', 'groups']), value: z.string().min(1).max(300), platform_admin: z.literal(true) }).strict(),
  z.object({ claim: z.enum(['roles', 'groups']), value: z.string().min(1).max(300), tenant: z.string().min(1).max(100), role: z.enum(ROLES) }).strict(),
]);
export type PlatformRule = z.infer<typeof platformRule>;

/** Reads a dotted path; returns the string values found there (a string or an array of strings). */
export function readClaim(claims: Record<string, unknown> | undefined, path: string | null | undefined): string[] {
  if (!claims || !path) return [];
  let cur: unknown = claims;
  for (const part of path.split('.')) {
    if (!cur || typeof cur !== 'object' || Array.isArray(cur) || !Object.prototype.hasOwnProperty.call(cur, part)) return [];
    cur = (cur as Record<string, unknown>)[part];
  }
  if (typeof cur === 'string') return [cur];
  if (Array.isArray(cur)) return cur.filter((v): v is string => typeof v === 'string').slice(0, 500);
  return [];
}

export interface MappedValues {
  readonly roles: string[];
  readonly groups: string[];
}

export function mappedValues(claims: Record<string, unknown> | undefined, rolesPath: string | null, groupsPath: string | null): MappedValues {
  return { roles: readClaim(claims, rolesPath), groups: readClaim(claims, groupsPath) };
}

/** The highest role any matching rule gives, else `defaultRole`. */
export function tenantRole(values: MappedValues, rules: readonly TenantRule[], defaultRole: Role | null): Role | null {
  let best: Role | null = null;
  for (const r of rules) {
    if (values[r.claim].includes(r.value) && (!best || ROLE_RANK[r.role] > ROLE_RANK[best])) best = r.role;
  }
  return best ?? defaultRole;
}

/** Platform IdP: whether the user is a platform admin, and the role per tenant named by the rules (null = none). */
export function platformGrants(values: MappedValues, rules: readonly PlatformRule[]): { platformAdmin: boolean; tenants: Map<string, Role | null> } {
  let platformAdmin = false;
  const tenants = new Map<string, Role | null>();
  for (const r of rules) {
    const hit = values[r.claim].includes(r.value);
    if ('platform_admin' in r) {
      if (hit) platformAdmin = true;
      continue;
    }
    const cur = tenants.get(r.tenant) ?? null;
    if (!tenants.has(r.tenant)) tenants.set(r.tenant, null);
    if (hit && (!cur || ROLE_RANK[r.role] > ROLE_RANK[cur])) tenants.set(r.tenant, r.role);
  }
  return { platformAdmin, tenants };
}

/** E-mail domain check: an empty list allows any; otherwise a verified address in one of the domains. */
export function domainAllowed(email: string | undefined, verified: boolean, domains: readonly string[]): boolean {
  if (domains.length === 0) return true;
  if (!email || !verified) return false;
  const at = email.lastIndexOf('@');
  if (at < 1) return false;
  const d = email.slice(at + 1).toLowerCase();
  return domains.some((x) => x.toLowerCase() === d);
}

/** Post-login target: a relative path on this origin, else `/`. */
export function safeReturnTo(v: unknown): string {
  if (typeof v !== 'string' || v.length > 2000) return '/';
  if (!v.startsWith('/') || v.startsWith('//') || v.startsWith('/\\') || /[\u0000-\u001f\\]/.test(v)) return '/';
  try {
    const u = new URL(v, 'http://enclave.invalid');
    if (u.origin !== 'http://enclave.invalid') return '/';
    return u.pathname + u.search + u.hash;
  } catch {
    return '/';
  }
}

/** Entra's multi-tenant placeholder issuers cannot be pinned. */
export function issuerProblem(issuer: string, allowLoopbackHttp: boolean): string | undefined {
  let u: URL;
  try {
    u = new URL(issuer);
  } catch {
    return 'issuer must be an absolute URL';
  }
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback && allowLoopbackHttp)) return 'issuer must use https://';
  if (u.search || u.hash) return 'issuer must not have a query or fragment';
  if (/login\.microsoftonline\.com\/(common|organizations|consumers|\{tenantid\})/i.test(issuer)) {
    return 'Entra ID: use the tenant-specific issuer https://login.microsoftonline.com/<tenant-id>/v2.0, not common/organizations';
  }
  return undefined;
}
