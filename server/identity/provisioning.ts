import type { Role } from '../access/permissions.js';
import type { RequestContext } from '../context.js';
import { requireTenant } from '../context.js';
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

  /**
   * Ends the user's membership in ctx's tenant and every session of the user. Returns the
   * role the membership had (to restore later) and whether the account was deactivated
   * (no membership left anywhere, not a platform administrator).
   */
  async suspend(ctx: RequestContext, userId: string, reason: string): Promise<{ previousRole: Role | null; accountDeactivated: boolean }> {
    const tenantId = requireTenant(ctx).id;
    const now = this.d.clock.now();
    const result = await this.d.repo.tx(async () => {
      const previousRole = (await this.d.repo.membership(ctx, userId))?.role ?? null;
      await this.d.repo.deleteMembership(ctx, userId);
      await this.d.repo.endSessionsOfUser(userId, now, reason);
      const user = await this.d.repo.user(userId);
      const elsewhere = (await this.d.repo.membershipsOfUser(userId)).filter((m) => m.tenantId !== tenantId);
      let accountDeactivated = false;
      if (user && user.status === 'active' && !user.platformAdmin && elsewhere.length === 0) {
        await this.d.repo.updateUser(userId, { status: 'deactivated', updatedAt: now });
        accountDeactivated = true;
      }
      return { previousRole, accountDeactivated };
    });
    await this.d.revision.bump();
    return result;
  }

  /**
   * Whether a deactivated account may be reactivated under the licence's seat limit; the
   * refusal is audited and thrown. Callers check before they write anything, so the audit
   * entry is not rolled back with their transaction.
   */
  async checkSeat(ctx: RequestContext, userId: string): Promise<void> {
    const user = await this.d.repo.user(userId);
    if (!user || user.status === 'active') return;
    const refusal = this.d.entitlements().checkGrowth('seats', await this.d.repo.countUsers({ status: 'active' }));
    if (refusal) {
      await this.d.audit.record(ctx, { action: 'user.reactivate', outcome: 'denied', reason: refusal.code, target: { type: 'user', id: userId }, details: { via: 'scim' } });
      throw refusal;
    }
  }

  /**
   * Gives the user `role` in ctx's tenant again; with `reactivateAccount`, the account too
   * (seat-checked against the licence like any new user).
   */
  async restore(ctx: RequestContext, userId: string, role: Role, reactivateAccount: boolean): Promise<void> {
    const now = this.d.clock.now();
    const user = await this.d.repo.user(userId);
    if (!user) throw new AppError(404, 'not_found', 'User not found');
    if (reactivateAccount) await this.checkSeat(ctx, userId);
    await this.d.repo.tx(async () => {
      if (reactivateAccount && user.status !== 'active') await this.d.repo.updateUser(userId, { status: 'active', updatedAt: now });
      await this.d.repo.upsertMembership(ctx, userId, role, now);
    });
    await this.d.revision.bump();
  }

  /**
   * The directory renamed the person or changed their address. The caller (server/scim)
   * decides whether the tenant may (its own account: no other tenant, no platform admin,
   * a domain verified for the tenant); here the address must still be free.
   */
  async updateAccount(ctx: RequestContext, userId: string, patch: { email?: string; name?: string }): Promise<void> {
    const set: { email?: string; name?: string; updatedAt: number } = { updatedAt: this.d.clock.now() };
    if (patch.name !== undefined) set.name = patch.name;
    // The "address still free?" check and the write in one transaction.
    await this.d.repo.tx(async () => {
      if (patch.email !== undefined) {
        const taken = await this.d.repo.userByEmail(patch.email);
        if (taken && taken.id !== userId) throw new AppError(409, 'user_exists', `A user with e-mail ${patch.email} already exists.`);
        set.email = patch.email;
      }
      await this.d.repo.updateUser(userId, set);
    });
    if (patch.email !== undefined) await this.d.revision.bump();
    await this.d.audit.record(ctx, { action: 'user.update', target: { type: 'user', id: userId }, details: { ...patch, via: 'scim' } });
  }
}
