import { and, eq, isNull } from 'drizzle-orm';
import type { RequestContext } from '../../context.js';
import type { ssoIdentities, ssoIdps, ssoSessions } from '../schema.js';
import type { Store } from '../store.js';
import type { TenantStore } from '../tenant-store.js';

/**
 * The SQL for SSO, on both dialects. Tenant IdPs (sso_idps, tenant-owned) go through TenantStore; the
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
    private readonly store: Store,
    private readonly data: TenantStore,
  ) {}

  // --- tenant IdPs (tenant-scoped) ---
  async idps(ctx: RequestContext): Promise<SsoIdpRow[]> {
    return (await this.data.ssoIdps.list(ctx)).sort((a, b) => (a.id < b.id ? -1 : 1));
  }
  idp(ctx: RequestContext, id: string): Promise<SsoIdpRow | undefined> {
    return this.data.ssoIdps.get(ctx, (i) => eq(i.id, id));
  }
  insertIdp(ctx: RequestContext, row: NewSsoIdp): Promise<SsoIdpRow> {
    return this.data.ssoIdps.insert(ctx, row);
  }
  updateIdp(ctx: RequestContext, id: string, patch: Partial<NewSsoIdp>): Promise<number> {
    return this.data.ssoIdps.update(ctx, (i) => eq(i.id, id), patch);
  }
  deleteIdp(ctx: RequestContext, id: string): Promise<number> {
    return this.data.ssoIdps.delete(ctx, (i) => eq(i.id, id));
  }

  /** Cross-tenant: the tenant of an IdP id (login route). */
  idpTenant(id: string): Promise<{ id: string; slug: string; status: 'active' | 'suspended' } | undefined> {
    const { q, t } = this.store;
    return this.store.one(
      q
        .select({ id: t.tenants.id, slug: t.tenants.slug, status: t.tenants.status })
        .from(t.ssoIdps)
        .innerJoin(t.tenants, eq(t.tenants.id, t.ssoIdps.tenantId))
        .where(eq(t.ssoIdps.id, id)),
    );
  }
  /** Cross-tenant: IdPs with this issuer (back-channel logout), with their tenant. */
  idpsByIssuer(issuer: string): Promise<{ id: string; tenantId: string; tenantSlug: string }[]> {
    const { q, t } = this.store;
    return this.store.all(
      q
        .select({ id: t.ssoIdps.id, tenantId: t.ssoIdps.tenantId, tenantSlug: t.tenants.slug })
        .from(t.ssoIdps)
        .innerJoin(t.tenants, eq(t.tenants.id, t.ssoIdps.tenantId))
        .where(eq(t.ssoIdps.issuer, issuer)),
    );
  }
  /** Cross-tenant: tenant ids with an enabled IdP that enforces SSO (password login check). */
  async enforcingTenants(): Promise<Set<string>> {
    const { q, t } = this.store;
    const rows = await this.store.all(q.select({ tenantId: t.ssoIdps.tenantId }).from(t.ssoIdps).where(and(eq(t.ssoIdps.enforceSso, true), eq(t.ssoIdps.enabled, true))));
    return new Set(rows.map((r) => r.tenantId));
  }

  // --- external identities ---
  identity(issuer: string, subject: string): Promise<SsoIdentityRow | undefined> {
    const { q, t } = this.store;
    return this.store.one(q.select().from(t.ssoIdentities).where(and(eq(t.ssoIdentities.issuer, issuer), eq(t.ssoIdentities.subject, subject))));
  }
  async insertIdentity(row: typeof ssoIdentities.$inferInsert): Promise<SsoIdentityRow> {
    const { q, t } = this.store;
    return (await this.store.one(q.insert(t.ssoIdentities).values(row).returning()))!;
  }
  async updateIdentity(id: string, patch: Partial<typeof ssoIdentities.$inferInsert>): Promise<void> {
    const { q, t } = this.store;
    await this.store.run(q.update(t.ssoIdentities).set(patch).where(eq(t.ssoIdentities.id, id)));
  }
  identitiesOfUser(userId: string): Promise<SsoIdentityRow[]> {
    const { q, t } = this.store;
    return this.store.all(q.select().from(t.ssoIdentities).where(eq(t.ssoIdentities.userId, userId)));
  }

  /** The platform IdP's mapping grants or takes back platform administration. */
  async setPlatformAdmin(userId: string, value: boolean, now: number): Promise<void> {
    const { q, t } = this.store;
    await this.store.run(q.update(t.users).set({ platformAdmin: value, updatedAt: now }).where(eq(t.users.id, userId)));
  }

  // --- SSO sessions ---
  async insertSession(row: typeof ssoSessions.$inferInsert): Promise<void> {
    const { q, t } = this.store;
    await this.store.run(q.insert(t.ssoSessions).values(row));
  }
  session(sessionId: string): Promise<SsoSessionRow | undefined> {
    const { q, t } = this.store;
    return this.store.one(q.select().from(t.ssoSessions).where(eq(t.ssoSessions.sessionId, sessionId)));
  }
  /** Live Enclave sessions of an IdP session (sid) or, without sid, of the subject. */
  async liveSessions(issuer: string, by: { sid?: string; sub?: string }): Promise<string[]> {
    // Neither: nothing matches (PostgreSQL text cannot hold the NUL the SQLite version compared with).
    if (!by.sid && by.sub === undefined) return [];
    const { q, t } = this.store;
    const cond = by.sid ? eq(t.ssoSessions.sid, by.sid) : eq(t.ssoSessions.subject, by.sub!);
    const rows = await this.store.all(
      q
        .select({ id: t.ssoSessions.sessionId })
        .from(t.ssoSessions)
        .innerJoin(t.sessions, eq(t.sessions.id, t.ssoSessions.sessionId))
        .where(and(eq(t.ssoSessions.issuer, issuer), cond, isNull(t.sessions.revokedAt))),
    );
    return rows.map((r) => r.id);
  }
}
