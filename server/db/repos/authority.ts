import { and, eq, gt, isNotNull } from 'drizzle-orm';
import type { RequestContext } from '../../context.js';
import type { invitations, tenantDomains } from '../schema.js';
import type { Store } from '../store.js';
import type { TenantStore } from '../tenant-store.js';

/**
 * The SQL of the identity authority (issue 16): invitations and verified e-mail domains (issue
 * 22: async, on the Store, both dialects). Tenant-scoped operations go through the TenantStore;
 * the lookups that must cross tenants are named here, each with the reason:
 *  - invitationByToken: an invitation link names only its token, before any tenant is known;
 *  - invitationForInvitee / pendingForEmail: the invitee sees and accepts the invitations
 *    addressed to their own e-mail, across tenants;
 *  - verifiedDomainOwner: an IdP login and a link acceptance ask which tenant (if any)
 *    a platform administrator verified an e-mail domain for.
 */
export type InvitationRow = typeof invitations.$inferSelect;
export type TenantDomainRow = typeof tenantDomains.$inferSelect;
export interface InvitationWithTenant {
  readonly invitation: InvitationRow;
  readonly tenant: { id: string; slug: string; name: string; status: 'active' | 'suspended' };
}

export class AuthorityRepo {
  constructor(
    private readonly store: Store,
    private readonly data: TenantStore,
  ) {}

  private withTenant() {
    const { q, t } = this.store;
    return q
      .select({ invitation: t.invitations, tenant: { id: t.tenants.id, slug: t.tenants.slug, name: t.tenants.name, status: t.tenants.status } })
      .from(t.invitations)
      .innerJoin(t.tenants, eq(t.tenants.id, t.invitations.tenantId));
  }

  // --- invitations (tenant-scoped) ---
  insertInvitation(ctx: RequestContext, row: Omit<typeof invitations.$inferInsert, 'tenantId'>): Promise<InvitationRow> {
    return this.data.invitations.insert(ctx, row);
  }
  invitation(ctx: RequestContext, id: string): Promise<InvitationRow | undefined> {
    return this.data.invitations.get(ctx, (i) => eq(i.id, id));
  }
  async pendingInvitations(ctx: RequestContext, now: number): Promise<InvitationRow[]> {
    const rows = await this.data.invitations.list(ctx, (i) => and(eq(i.status, 'pending'), gt(i.expiresAt, now)));
    return rows.sort((x, y) => (x.id < y.id ? 1 : -1));
  }
  /** Ends the tenant's pending invitations of an address (a new invitation replaces them). */
  supersede(ctx: RequestContext, email: string, now: number): Promise<number> {
    return this.data.invitations.update(ctx, (i) => and(eq(i.email, email), eq(i.status, 'pending')), { status: 'revoked', decidedAt: now });
  }
  /**
   * Moves a pending invitation to its final state; false when it was no longer pending (raced).
   * One conditional UPDATE: of two concurrent decisions exactly one sees the row still pending.
   */
  async decide(ctx: RequestContext, id: string, status: 'accepted' | 'declined' | 'revoked', now: number, userId?: string): Promise<boolean> {
    const n = await this.data.invitations.update(ctx, (i) => and(eq(i.id, id), eq(i.status, 'pending')), {
      status,
      decidedAt: now,
      ...(userId ? { acceptedUserId: userId } : {}),
    });
    return n === 1;
  }

  /** Cross-tenant: the invitation of a link token (by its hash). */
  invitationByToken(tokenHash: string): Promise<InvitationWithTenant | undefined> {
    return this.store.one(this.withTenant().where(eq(this.store.t.invitations.tokenHash, tokenHash)));
  }
  /** Cross-tenant: one invitation, only if it is addressed to `email` (the signed-in invitee). */
  invitationForInvitee(id: string, email: string): Promise<InvitationWithTenant | undefined> {
    const i = this.store.t.invitations;
    return this.store.one(this.withTenant().where(and(eq(i.id, id), eq(i.email, email))));
  }
  /** Cross-tenant: the pending, unexpired invitations addressed to an e-mail. */
  pendingForEmail(email: string, now: number): Promise<InvitationWithTenant[]> {
    const i = this.store.t.invitations;
    return this.store.all(this.withTenant().where(and(eq(i.email, email), eq(i.status, 'pending'), gt(i.expiresAt, now))).orderBy(i.id));
  }

  // --- verified domains (tenant-scoped) ---
  async domains(ctx: RequestContext): Promise<TenantDomainRow[]> {
    return (await this.data.tenantDomains.list(ctx)).sort((x, y) => (x.domain < y.domain ? -1 : 1));
  }
  domain(ctx: RequestContext, domain: string): Promise<TenantDomainRow | undefined> {
    return this.data.tenantDomains.get(ctx, (d) => eq(d.domain, domain));
  }
  insertDomain(ctx: RequestContext, row: Omit<typeof tenantDomains.$inferInsert, 'tenantId'>): Promise<TenantDomainRow> {
    return this.data.tenantDomains.insert(ctx, row);
  }
  markVerified(ctx: RequestContext, domain: string, by: string, now: number): Promise<number> {
    return this.data.tenantDomains.update(ctx, (d) => eq(d.domain, domain), { verifiedAt: now, verifiedBy: by });
  }
  deleteDomain(ctx: RequestContext, domain: string): Promise<number> {
    return this.data.tenantDomains.delete(ctx, (d) => eq(d.domain, domain));
  }
  /** Cross-tenant: the tenant a domain is verified for (at most one), or undefined. */
  async verifiedDomainOwner(domain: string): Promise<string | undefined> {
    const { q, t } = this.store;
    const d = t.tenantDomains;
    return (await this.store.one(q.select({ tenantId: d.tenantId }).from(d).where(and(eq(d.domain, domain), isNotNull(d.verifiedAt)))))?.tenantId;
  }
}
