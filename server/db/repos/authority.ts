import { and, eq, gt, isNotNull } from 'drizzle-orm';
import type { RequestContext } from '../../context.js';
import type { Db } from '../connection.js';
import { invitations, tenantDomains, tenants } from '../schema.js';
import type { TenantData } from '../tenant-scope.js';

/**
 * The SQL of the identity authority (issue 16): invitations and verified e-mail domains.
 * Tenant-scoped operations go through TenantData; the lookups that must cross tenants are
 * named here, each with the reason:
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

const tenantCols = { id: tenants.id, slug: tenants.slug, name: tenants.name, status: tenants.status };

export class AuthorityRepo {
  constructor(
    private readonly db: Db,
    private readonly data: TenantData,
  ) {}

  // --- invitations (tenant-scoped) ---
  insertInvitation(ctx: RequestContext, row: Omit<typeof invitations.$inferInsert, 'tenantId'>): InvitationRow {
    return this.data.invitations.insert(ctx, row);
  }
  invitation(ctx: RequestContext, id: string): InvitationRow | undefined {
    return this.data.invitations.get(ctx, eq(invitations.id, id));
  }
  pendingInvitations(ctx: RequestContext, now: number): InvitationRow[] {
    return this.data.invitations
      .list(ctx, and(eq(invitations.status, 'pending'), gt(invitations.expiresAt, now)))
      .sort((x, y) => (x.id < y.id ? 1 : -1));
  }
  /** Ends the tenant's pending invitations of an address (a new invitation replaces them). */
  supersede(ctx: RequestContext, email: string, now: number): number {
    return this.data.invitations.update(ctx, and(eq(invitations.email, email), eq(invitations.status, 'pending'))!, { status: 'revoked', decidedAt: now });
  }
  /** Moves a pending invitation to its final state; false when it was no longer pending (raced). */
  decide(ctx: RequestContext, id: string, status: 'accepted' | 'declined' | 'revoked', now: number, userId?: string): boolean {
    return (
      this.data.invitations.update(ctx, and(eq(invitations.id, id), eq(invitations.status, 'pending'))!, {
        status,
        decidedAt: now,
        ...(userId ? { acceptedUserId: userId } : {}),
      }) === 1
    );
  }

  /** Cross-tenant: the invitation of a link token (by its hash). */
  invitationByToken(tokenHash: string): InvitationWithTenant | undefined {
    const r = this.db.select({ invitation: invitations, tenant: tenantCols }).from(invitations).innerJoin(tenants, eq(tenants.id, invitations.tenantId)).where(eq(invitations.tokenHash, tokenHash)).get();
    return r ?? undefined;
  }
  /** Cross-tenant: one invitation, only if it is addressed to `email` (the signed-in invitee). */
  invitationForInvitee(id: string, email: string): InvitationWithTenant | undefined {
    const r = this.db
      .select({ invitation: invitations, tenant: tenantCols })
      .from(invitations)
      .innerJoin(tenants, eq(tenants.id, invitations.tenantId))
      .where(and(eq(invitations.id, id), eq(invitations.email, email)))
      .get();
    return r ?? undefined;
  }
  /** Cross-tenant: the pending, unexpired invitations addressed to an e-mail. */
  pendingForEmail(email: string, now: number): InvitationWithTenant[] {
    return this.db
      .select({ invitation: invitations, tenant: tenantCols })
      .from(invitations)
      .innerJoin(tenants, eq(tenants.id, invitations.tenantId))
      .where(and(eq(invitations.email, email), eq(invitations.status, 'pending'), gt(invitations.expiresAt, now)))
      .orderBy(invitations.id)
      .all();
  }

  // --- verified domains (tenant-scoped) ---
  domains(ctx: RequestContext): TenantDomainRow[] {
    return this.data.tenantDomains.list(ctx).sort((x, y) => (x.domain < y.domain ? -1 : 1));
  }
  domain(ctx: RequestContext, domain: string): TenantDomainRow | undefined {
    return this.data.tenantDomains.get(ctx, eq(tenantDomains.domain, domain));
  }
  insertDomain(ctx: RequestContext, row: Omit<typeof tenantDomains.$inferInsert, 'tenantId'>): TenantDomainRow {
    return this.data.tenantDomains.insert(ctx, row);
  }
  markVerified(ctx: RequestContext, domain: string, by: string, now: number): number {
    return this.data.tenantDomains.update(ctx, eq(tenantDomains.domain, domain), { verifiedAt: now, verifiedBy: by });
  }
  deleteDomain(ctx: RequestContext, domain: string): number {
    return this.data.tenantDomains.delete(ctx, eq(tenantDomains.domain, domain));
  }
  /** Cross-tenant: the tenant a domain is verified for (at most one), or undefined. */
  verifiedDomainOwner(domain: string): string | undefined {
    return this.db
      .select({ tenantId: tenantDomains.tenantId })
      .from(tenantDomains)
      .where(and(eq(tenantDomains.domain, domain), isNotNull(tenantDomains.verifiedAt)))
      .get()?.tenantId;
  }
}
