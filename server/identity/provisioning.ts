import { and, eq, sql } from 'drizzle-orm';
import type { Role } from '../access/permissions.js';
import type { RequestContext } from '../context.js';
import { requireTenant } from '../context.js';
import { sessions, users } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { IdentityDeps } from './deps.js';

/**
 * What a tenant's directory (SCIM, server/scim) may do to an account it provisioned:
 * suspend its membership in that tenant (deprovisioning) and restore it. Both act at once
 * in this process and, through the identity revision (server/identity/revision.ts), within
 * the revision poll in every other process: the user's sessions end, their keys in the
 * tenant stop (the key cache re-reads the owner's membership), and — when the tenant was
 * the account's only one — the account itself is deactivated, which frees its licence seat.
 */
export class ProvisioningService {
  constructor(private readonly d: IdentityDeps) {}

  private activeUsers(): number {
    return this.d.db.select({ n: sql<number>`count(*)` }).from(users).where(eq(users.status, 'active')).get()!.n;
  }

  /**
   * Ends the user's membership in ctx's tenant and every session of the user. Returns the
   * role the membership had (to restore later) and whether the account was deactivated
   * (no membership left anywhere, not a platform administrator).
   */
  suspend(ctx: RequestContext, userId: string, reason: string): { previousRole: Role | null; accountDeactivated: boolean } {
    const tenantId = requireTenant(ctx).id;
    const now = this.d.clock.now();
    const result = this.d.db.transaction(() => {
      const previousRole = this.d.repo.membership(ctx, userId)?.role ?? null;
      this.d.repo.deleteMembership(ctx, userId);
      this.d.db
        .update(sessions)
        .set({ revokedAt: now, revokedReason: reason })
        .where(and(eq(sessions.userId, userId), sql`${sessions.revokedAt} IS NULL`))
        .run();
      const user = this.d.db.select().from(users).where(eq(users.id, userId)).get();
      const elsewhere = this.d.repo.membershipsOfUser(userId).filter((m) => m.tenantId !== tenantId);
      let accountDeactivated = false;
      if (user && user.status === 'active' && !user.platformAdmin && elsewhere.length === 0) {
        this.d.db.update(users).set({ status: 'deactivated', updatedAt: now }).where(eq(users.id, userId)).run();
        accountDeactivated = true;
      }
      return { previousRole, accountDeactivated };
    });
    this.d.revision.bump();
    return result;
  }

  /**
   * Whether a deactivated account may be reactivated under the licence's seat limit; the
   * refusal is audited and thrown. Callers check before they write anything, so the audit
   * entry is not rolled back with their transaction.
   */
  checkSeat(ctx: RequestContext, userId: string): void {
    const user = this.d.db.select({ status: users.status }).from(users).where(eq(users.id, userId)).get();
    if (!user || user.status === 'active') return;
    const refusal = this.d.entitlements().checkGrowth('seats', this.activeUsers());
    if (refusal) {
      this.d.audit.record(ctx, { action: 'user.reactivate', outcome: 'denied', reason: refusal.code, target: { type: 'user', id: userId }, details: { via: 'scim' } });
      throw refusal;
    }
  }

  /**
   * Gives the user `role` in ctx's tenant again; with `reactivateAccount`, the account too
   * (seat-checked against the licence like any new user).
   */
  restore(ctx: RequestContext, userId: string, role: Role, reactivateAccount: boolean): void {
    const now = this.d.clock.now();
    const user = this.d.db.select().from(users).where(eq(users.id, userId)).get();
    if (!user) throw new AppError(404, 'not_found', 'User not found');
    if (reactivateAccount) this.checkSeat(ctx, userId);
    this.d.db.transaction(() => {
      if (reactivateAccount && user.status !== 'active') this.d.db.update(users).set({ status: 'active', updatedAt: now }).where(eq(users.id, userId)).run();
      this.d.repo.upsertMembership(ctx, userId, role, now);
    });
    this.d.revision.bump();
  }

  /**
   * The directory renamed the person or changed their address. The caller (server/scim)
   * decides whether the tenant may (its own account: no other tenant, no platform admin,
   * a domain verified for the tenant); here the address must still be free.
   */
  updateAccount(ctx: RequestContext, userId: string, patch: { email?: string; name?: string }): void {
    const set: { email?: string; name?: string; updatedAt: number } = { updatedAt: this.d.clock.now() };
    if (patch.email !== undefined) {
      const taken = this.d.db.select({ id: users.id }).from(users).where(eq(users.email, patch.email)).get();
      if (taken && taken.id !== userId) throw new AppError(409, 'user_exists', `A user with e-mail ${patch.email} already exists.`);
      set.email = patch.email;
    }
    if (patch.name !== undefined) set.name = patch.name;
    this.d.db.update(users).set(set).where(eq(users.id, userId)).run();
    if (patch.email !== undefined) this.d.revision.bump();
    this.d.audit.record(ctx, { action: 'user.update', target: { type: 'user', id: userId }, details: { ...patch, via: 'scim' } });
  }
}
