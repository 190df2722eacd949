import { and, eq, inArray, isNull, sql, type SQL } from 'drizzle-orm';
import { requireTenant, type RequestContext } from '../../context.js';
import type { Db } from '../connection.js';
import { scimGroupMembers, scimGroups, scimTokens, scimUsers, tenants, tenantSettings } from '../schema.js';
import type { TenantData } from '../tenant-scope.js';

/**
 * The SQL of SCIM provisioning (issue 24). Everything is tenant-scoped through TenantData
 * (or, for joins, filtered by requireTenant(ctx) here), except the one lookup that must cross
 * tenants, named with its reason:
 *  - tokenByPrefix: a SCIM request names only its bearer token, before any tenant is known.
 */
export type ScimTokenRow = typeof scimTokens.$inferSelect;
export type ScimUserRow = typeof scimUsers.$inferSelect;
export type ScimGroupRow = typeof scimGroups.$inferSelect;

/** Most ids bound in one IN (…) list (SQLite allows 32,766 parameters per statement). */
const MAX_IN = 500;

export class ScimRepo {
  constructor(
    private readonly db: Db,
    private readonly data: TenantData,
  ) {}

  /** Runs fn in one transaction (nested calls become savepoints): a refused step leaves nothing half-done. */
  tx<T>(fn: () => T): T {
    return this.db.transaction(() => fn());
  }

  // --- tenant setting: group → role rules (JSON text; the service parses it) ---
  setting(ctx: RequestContext, key: string): string | undefined {
    return this.data.tenantSettings.get(ctx, eq(tenantSettings.key, key))?.value;
  }
  putSetting(ctx: RequestContext, key: string, value: string, now: number): void {
    this.data.tenantSettings.upsert(ctx, { key, value, updatedAt: now }, [tenantSettings.key], { value, updatedAt: now });
  }

  // --- tokens ---
  insertToken(ctx: RequestContext, row: Omit<typeof scimTokens.$inferInsert, 'tenantId'>): ScimTokenRow {
    return this.data.scimTokens.insert(ctx, row);
  }
  liveTokens(ctx: RequestContext): ScimTokenRow[] {
    return this.data.scimTokens.list(ctx, isNull(scimTokens.revokedAt));
  }
  /** Revokes every live token of ctx's tenant (all but `keepId`); returns their ids. */
  revokeTokens(ctx: RequestContext, by: string, now: number, keepId?: string): string[] {
    const ids = this.liveTokens(ctx)
      .map((t) => t.id)
      .filter((id) => id !== keepId);
    if (ids.length) this.data.scimTokens.update(ctx, inArray(scimTokens.id, ids), { revokedAt: now, revokedBy: by });
    return ids;
  }
  /** Cross-tenant: the token of a visible prefix, with its tenant. */
  tokenByPrefix(prefix: string): { token: ScimTokenRow; tenant: { id: string; slug: string; status: 'active' | 'suspended' } } | undefined {
    return this.db
      .select({ token: scimTokens, tenant: { id: tenants.id, slug: tenants.slug, status: tenants.status } })
      .from(scimTokens)
      .innerJoin(tenants, eq(tenants.id, scimTokens.tenantId))
      .where(eq(scimTokens.prefix, prefix))
      .get();
  }
  touchToken(ctx: RequestContext, id: string, now: number): void {
    this.data.scimTokens.update(ctx, eq(scimTokens.id, id), { lastUsedAt: now });
  }

  // --- users ---
  user(ctx: RequestContext, userId: string, opts: { includeDeleted?: boolean } = {}): ScimUserRow | undefined {
    return this.data.scimUsers.get(ctx, and(eq(scimUsers.userId, userId), opts.includeDeleted ? undefined : isNull(scimUsers.deletedAt))!);
  }
  userByName(ctx: RequestContext, userNameKey: string): ScimUserRow | undefined {
    return this.data.scimUsers.get(ctx, eq(scimUsers.userNameKey, userNameKey));
  }
  /** Served (not deleted) users, narrowed by the exact terms a filter names; ordered by user id. */
  users(ctx: RequestContext, by: { userNameKey?: string; externalId?: string; userId?: string; attributesContain?: readonly string[] } = {}): ScimUserRow[] {
    const where: (SQL | undefined)[] = [
      isNull(scimUsers.deletedAt),
      // Printable ASCII only (the caller checks): LIKE is case-insensitive for ASCII; % _ \ are escaped.
      ...(by.attributesContain ?? []).map((v) => sql`${scimUsers.attributes} LIKE ${`%${v.replace(/[\\%_]/g, (c) => `\\${c}`)}%`} ESCAPE '\\'`),
      by.userNameKey !== undefined ? eq(scimUsers.userNameKey, by.userNameKey) : undefined,
      by.externalId !== undefined ? eq(scimUsers.externalId, by.externalId) : undefined,
      by.userId !== undefined ? eq(scimUsers.userId, by.userId) : undefined,
    ];
    return this.data.scimUsers.list(ctx, and(...where)).sort((a, b) => (a.userId < b.userId ? -1 : 1));
  }
  insertUser(ctx: RequestContext, row: Omit<typeof scimUsers.$inferInsert, 'tenantId'>): ScimUserRow {
    return this.data.scimUsers.insert(ctx, row);
  }
  updateUser(ctx: RequestContext, userId: string, patch: Partial<Omit<typeof scimUsers.$inferInsert, 'tenantId' | 'userId'>>): void {
    this.data.scimUsers.update(ctx, eq(scimUsers.userId, userId), patch);
  }

  // --- groups ---
  insertGroup(ctx: RequestContext, row: Omit<typeof scimGroups.$inferInsert, 'tenantId'>): ScimGroupRow {
    return this.data.scimGroups.insert(ctx, row);
  }
  group(ctx: RequestContext, id: string): ScimGroupRow | undefined {
    return this.data.scimGroups.get(ctx, eq(scimGroups.id, id));
  }
  groups(ctx: RequestContext, by: { externalId?: string; id?: string } = {}): ScimGroupRow[] {
    const where = and(by.externalId !== undefined ? eq(scimGroups.externalId, by.externalId) : undefined, by.id !== undefined ? eq(scimGroups.id, by.id) : undefined);
    return this.data.scimGroups.list(ctx, where).sort((a, b) => (a.id < b.id ? -1 : 1));
  }
  updateGroup(ctx: RequestContext, id: string, patch: { displayName?: string; externalId?: string | null; updatedAt: number }): void {
    this.data.scimGroups.update(ctx, eq(scimGroups.id, id), patch);
  }
  deleteGroup(ctx: RequestContext, id: string): number {
    return this.data.scimGroups.delete(ctx, eq(scimGroups.id, id));
  }
  /** Members of ctx's tenant's groups (all groups, or those given), with the member's userName. */
  members(ctx: RequestContext, groupIds?: string[]): { groupId: string; userId: string; userName: string }[] {
    const tenantId = requireTenant(ctx).id;
    if (groupIds && groupIds.length === 0) return [];
    // A long id list would pass SQLite's bound-parameter limit: read the tenant's rows instead.
    if (groupIds && groupIds.length > MAX_IN) {
      const wanted = new Set(groupIds);
      return this.members(ctx).filter((m) => wanted.has(m.groupId));
    }
    return this.db
      .select({ groupId: scimGroupMembers.groupId, userId: scimGroupMembers.userId, userName: scimUsers.userName })
      .from(scimGroupMembers)
      .innerJoin(scimUsers, and(eq(scimUsers.tenantId, scimGroupMembers.tenantId), eq(scimUsers.userId, scimGroupMembers.userId)))
      .where(and(eq(scimGroupMembers.tenantId, tenantId), groupIds ? inArray(scimGroupMembers.groupId, groupIds) : undefined))
      .all();
  }
  /** The groups of some users of ctx's tenant, with their names. */
  groupsOfUsers(ctx: RequestContext, userIds: string[]): { userId: string; groupId: string; displayName: string }[] {
    const tenantId = requireTenant(ctx).id;
    if (userIds.length === 0) return [];
    const narrow = userIds.length <= MAX_IN;
    const rows = this.db
      .select({ userId: scimGroupMembers.userId, groupId: scimGroups.id, displayName: scimGroups.displayName })
      .from(scimGroupMembers)
      .innerJoin(scimGroups, eq(scimGroups.id, scimGroupMembers.groupId))
      .where(and(eq(scimGroupMembers.tenantId, tenantId), eq(scimGroups.tenantId, tenantId), narrow ? inArray(scimGroupMembers.userId, userIds) : undefined))
      .all();
    if (narrow) return rows;
    const wanted = new Set(userIds);
    return rows.filter((r) => wanted.has(r.userId));
  }
  /** Makes the group's members exactly `userIds` (already checked to be ctx's tenant's users). */
  setMembers(ctx: RequestContext, groupId: string, userIds: readonly string[], now: number): void {
    this.data.scimGroupMembers.delete(ctx, eq(scimGroupMembers.groupId, groupId));
    for (const userId of new Set(userIds)) this.data.scimGroupMembers.insert(ctx, { groupId, userId, createdAt: now });
  }
  removeUserFromGroups(ctx: RequestContext, userId: string): number {
    return this.data.scimGroupMembers.delete(ctx, eq(scimGroupMembers.userId, userId));
  }
}
