import { and, eq, isNull } from 'drizzle-orm';
import type { RequestContext } from '../../context.js';
import type { Db } from '../connection.js';
import { sessions, ssoIdentities, ssoIdps, ssoSessions, tenants, users } from '../schema.js';
import type { TenantData } from '../tenant-scope.js';

/**
 * The SQL for SSO. Tenant IdPs (sso_idps, tenant-owned) go through TenantData; the
 * lookups that must cross tenants are named here, each with the reason:
 *  - idpTenant: the login URL names an IdP id before any tenant is known;
 *  - idpsByIssuer: a back-channel logout token names only its issuer;
 *  - enforcingTenants: local password login asks whether any of a user's tenants enforces SSO.
 * sso_identities and sso_sessions are not tenant-owned (they belong to users and sessions).
 */
export type SsoIdpRow = typeof ssoIdps.$inferSelect;
export type NewSsoIdp = Omit<typeof ssoIdps.$inferInsert, 'tenantId'>;
export type SsoIdentityRow = typeof ssoIdentities.$inferSelect;
export type SsoSessionRow = typeof ssoSessions.$inferSelect;

export class SsoRepo {
  constructor(
    private readonly db: Db,
    private readonly data: TenantData,
  ) {}

  // --- tenant IdPs (tenant-scoped) ---
  idps(ctx: RequestContext): SsoIdpRow[] {
    return this.data.ssoIdps.list(ctx).sort((a, b) => (a.id < b.id ? -1 : 1));
  }
  idp(ctx: RequestContext, id: string): SsoIdpRow | undefined {
    return this.data.ssoIdps.get(ctx, eq(ssoIdps.id, id));
  }
  insertIdp(ctx: RequestContext, row: NewSsoIdp): SsoIdpRow {
    return this.data.ssoIdps.insert(ctx, row);
  }
  updateIdp(ctx: RequestContext, id: string, patch: Partial<NewSsoIdp>): number {
    return this.data.ssoIdps.update(ctx, eq(ssoIdps.id, id), patch);
  }
  deleteIdp(ctx: RequestContext, id: string): number {
    return this.data.ssoIdps.delete(ctx, eq(ssoIdps.id, id));
  }

  /** Cross-tenant: the tenant of an IdP id (login route). */
  idpTenant(id: string): { id: string; slug: string; status: 'active' | 'suspended' } | undefined {
    return this.db
      .select({ id: tenants.id, slug: tenants.slug, status: tenants.status })
      .from(ssoIdps)
      .innerJoin(tenants, eq(tenants.id, ssoIdps.tenantId))
      .where(eq(ssoIdps.id, id))
      .get();
  }
  /** Cross-tenant: IdPs with this issuer (back-channel logout), with their tenant. */
  idpsByIssuer(issuer: string): { id: string; tenantId: string; tenantSlug: string }[] {
    return this.db
      .select({ id: ssoIdps.id, tenantId: ssoIdps.tenantId, tenantSlug: tenants.slug })
      .from(ssoIdps)
      .innerJoin(tenants, eq(tenants.id, ssoIdps.tenantId))
      .where(eq(ssoIdps.issuer, issuer))
      .all();
  }
  /** Cross-tenant: tenant ids with an enabled IdP that enforces SSO (password login check). */
  enforcingTenants(): Set<string> {
    const rows = this.db
      .select({ tenantId: ssoIdps.tenantId })
      .from(ssoIdps)
      .where(and(eq(ssoIdps.enforceSso, true), eq(ssoIdps.enabled, true)))
      .all();
    return new Set(rows.map((r) => r.tenantId));
  }

  // --- external identities ---
  identity(issuer: string, subject: string): SsoIdentityRow | undefined {
    return this.db.select().from(ssoIdentities).where(and(eq(ssoIdentities.issuer, issuer), eq(ssoIdentities.subject, subject))).get();
  }
  insertIdentity(row: typeof ssoIdentities.$inferInsert): SsoIdentityRow {
    return this.db.insert(ssoIdentities).values(row).returning().get();
  }
  updateIdentity(id: string, patch: Partial<typeof ssoIdentities.$inferInsert>): void {
    this.db.update(ssoIdentities).set(patch).where(eq(ssoIdentities.id, id)).run();
  }
  identitiesOfUser(userId: string): SsoIdentityRow[] {
    return this.db.select().from(ssoIdentities).where(eq(ssoIdentities.userId, userId)).all();
  }

  /** The platform IdP's mapping grants or takes back platform administration. */
  setPlatformAdmin(userId: string, value: boolean, now: number): void {
    this.db.update(users).set({ platformAdmin: value, updatedAt: now }).where(eq(users.id, userId)).run();
  }

  // --- SSO sessions ---
  insertSession(row: typeof ssoSessions.$inferInsert): void {
    this.db.insert(ssoSessions).values(row).run();
  }
  session(sessionId: string): SsoSessionRow | undefined {
    return this.db.select().from(ssoSessions).where(eq(ssoSessions.sessionId, sessionId)).get();
  }
  /** Live Enclave sessions of an IdP session (sid) or, without sid, of the subject. */
  liveSessions(issuer: string, by: { sid?: string; sub?: string }): string[] {
    const cond = by.sid ? eq(ssoSessions.sid, by.sid) : eq(ssoSessions.subject, by.sub ?? '\u0000');
    return this.db
      .select({ id: ssoSessions.sessionId })
      .from(ssoSessions)
      .innerJoin(sessions, eq(sessions.id, ssoSessions.sessionId))
      .where(and(eq(ssoSessions.issuer, issuer), cond, isNull(sessions.revokedAt)))
      .all()
      .map((r) => r.id);
  }
}
