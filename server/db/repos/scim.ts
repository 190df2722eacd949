import { and, eq, inArray, isNull, sql, type SQL } from 'drizzle-orm';
import { requireTenant, type RequestContext } from '../../context.js';
import type { scimGroups, scimTokens, scimUsers } from '../schema.js';
import type { Store } from '../store.js';
import type { TenantStore } from '../tenant-store.js';

/**
 * The SQL of SCIM provisioning (issue 24), on both dialects. Everything is tenant-scoped through TenantStore
 * (or, for joins, filtered by requireTenant(ctx) here), except the one lookup that must cross
 * tenants, named with its reason:
 *  - tokenByPrefix: a SCIM request names only its bearer token, before any tenant is known.
 */
export type ScimTokenRow = typeof scimTokens.$inferSelect;
export type ScimUserRow = typeof scimUsers.$inferSelect;
export type ScimGroupRow = typeof scimGroups.$inferSelect;

/** Most ids bound in one IN (…) list (SQLite allows 32,766 parameters per statement, PostgreSQL 65,535). */
const MAX_IN = 500;

export class ScimRepo {
  constructor(
    private readonly store: Store,
    private readonly data: TenantStore,
  ) {}

  /** Runs fn in one transaction (nested calls join it): a refused step leaves nothing half-done. */
  tx<T>(fn: () => Promise<T>): Promise<T> {
    return this.store.tx(fn);
  }

  // --- tenant setting: group → role rules (JSON text; the service parses it) ---
  async setting(ctx: RequestContext, key: string): Promise<string | undefined> {
    return (await this.data.tenantSettings.get(ctx, (t) => eq(t.key, key)))?.value;
  }
  async putSetting(ctx: RequestContext, key: string, value: string, now: number): Promise<void> {
    await this.data.tenantSettings.upsert(ctx, { key, value, updatedAt: now }, (t) => [t.key], { value, updatedAt: now });
  }

  // --- tokens ---
  insertToken(ctx: RequestContext, row: Omit<typeof scimTokens.$inferInsert, 'tenantId'>): Promise<ScimTokenRow> {
    return this.data.scimTokens.insert(ctx, row);
  }
  liveTokens(ctx: RequestContext): Promise<ScimTokenRow[]> {
    return this.data.scimTokens.list(ctx, (t) => isNull(t.revokedAt));
  }
  /** Revokes every live token of ctx's tenant (all but `keepId`); returns their ids. */
  async revokeTokens(ctx: RequestContext, by: string, now: number, keepId?: string): Promise<string[]> {
    const ids = (await this.liveTokens(ctx)).map((t) => t.id).filter((id) => id !== keepId);
    if (ids.length) await this.data.scimTokens.update(ctx, (t) => inArray(t.id, ids), { revokedAt: now, revokedBy: by });
    return ids;
  }
  /** Cross-tenant: the token of a visible prefix, with its tenant. */
  tokenByPrefix(prefix: string): Promise<{ token: ScimTokenRow; tenant: { id: string; slug: string; status: 'active' | 'suspended' } } | undefined> {
    const { q, t } = this.store;
    return this.store.one(
      q
        .select({ token: t.scimTokens, tenant: { id: t.tenants.id, slug: t.tenants.slug, status: t.tenants.status } })
        .from(t.scimTokens)
        .innerJoin(t.tenants, eq(t.tenants.id, t.scimTokens.tenantId))
        .where(eq(t.scimTokens.prefix, prefix)),
    );
  }
  async touchToken(ctx: RequestContext, id: string, now: number): Promise<void> {
    await this.data.scimTokens.update(ctx, (t) => eq(t.id, id), { lastUsedAt: now });
  }

  // --- users ---
  user(ctx: RequestContext, userId: string, opts: { includeDeleted?: boolean } = {}): Promise<ScimUserRow | undefined> {
    return this.data.scimUsers.get(ctx, (u) => and(eq(u.userId, userId), opts.includeDeleted ? undefined : isNull(u.deletedAt)));
  }
  userByName(ctx: RequestContext, userNameKey: string): Promise<ScimUserRow | undefined> {
    return this.data.scimUsers.get(ctx, (u) => eq(u.userNameKey, userNameKey));
  }
  /** Served (not deleted) users, narrowed by the exact terms a filter names; ordered by user id. */
  async users(ctx: RequestContext, by: { userNameKey?: string; externalId?: string; userId?: string; attributesContain?: readonly string[] } = {}): Promise<ScimUserRow[]> {
    const pg = this.store.dialect === 'postgres';
    const rows = await this.data.scimUsers.list(ctx, (u) => {
      const where: (SQL | undefined)[] = [
        isNull(u.deletedAt),
        // Printable ASCII only (the caller checks); % _ \ are escaped. Case-insensitive for ASCII on
        // both: SQLite's LIKE is; PostgreSQL needs ILIKE, over the jsonb column's text.
        ...(by.attributesContain ?? []).map((v) => {
          const pattern = `%${v.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
          return pg ? sql`${u.attributes}::text ILIKE ${pattern} ESCAPE '\\'` : sql`${u.attributes} LIKE ${pattern} ESCAPE '\\'`;
        }),
        by.userNameKey !== undefined ? eq(u.userNameKey, by.userNameKey) : undefined,
        by.externalId !== undefined ? eq(u.externalId, by.externalId) : undefined,
        by.userId !== undefined ? eq(u.userId, by.userId) : undefined,
      ];
      return and(...where);
    });
    return rows.sort((a, b) => (a.userId < b.userId ? -1 : 1));
  }
  insertUser(ctx: RequestContext, row: Omit<typeof scimUsers.$inferInsert, 'tenantId'>): Promise<ScimUserRow> {
    return this.data.scimUsers.insert(ctx, row);
  }
  async updateUser(ctx: RequestContext, userId: string, patch: Partial<Omit<typeof scimUsers.$inferInsert, 'tenantId' | 'userId'>>): Promise<void> {
    await this.data.scimUsers.update(ctx, (u) => eq(u.userId, userId), patch);
  }

  // --- groups ---
  insertGroup(ctx: RequestContext, row: Omit<typeof scimGroups.$inferInsert, 'tenantId'>): Promise<ScimGroupRow> {
    return this.data.scimGroups.insert(ctx, row);
  }
  group(ctx: RequestContext, id: string): Promise<ScimGroupRow | undefined> {
    return this.data.scimGroups.get(ctx, (g) => eq(g.id, id));
  }
  async groups(ctx: RequestContext, by: { externalId?: string; id?: string } = {}): Promise<ScimGroupRow[]> {
    const rows = await this.data.scimGroups.list(ctx, (g) => and(by.externalId !== undefined ? eq(g.externalId, by.externalId) : undefined, by.id !== undefined ? eq(g.id, by.id) : undefined));
    return rows.sort((a, b) => (a.id < b.id ? -1 : 1));
  }
  async updateGroup(ctx: RequestContext, id: string, patch: { displayName?: string; externalId?: string | null; updatedAt: number }): Promise<void> {
    await this.data.scimGroups.update(ctx, (g) => eq(g.id, id), patch);
  }
  deleteGroup(ctx: RequestContext, id: string): Promise<number> {
    return this.data.scimGroups.delete(ctx, (g) => eq(g.id, id));
  }
  /** Members of ctx's tenant's groups (all groups, or those given), with the member's userName. */
  async members(ctx: RequestContext, groupIds?: string[]): Promise<{ groupId: string; userId: string; userName: string }[]> {
    const tenantId = requireTenant(ctx).id;
    if (groupIds && groupIds.length === 0) return [];
    // A long id list would pass the bound-parameter limit: read the tenant's rows instead.
    if (groupIds && groupIds.length > MAX_IN) {
      const wanted = new Set(groupIds);
      return (await this.members(ctx)).filter((m) => wanted.has(m.groupId));
    }
    const { q, t } = this.store;
    return this.store.all(
      q
        .select({ groupId: t.scimGroupMembers.groupId, userId: t.scimGroupMembers.userId, userName: t.scimUsers.userName })
        .from(t.scimGroupMembers)
        .innerJoin(t.scimUsers, and(eq(t.scimUsers.tenantId, t.scimGroupMembers.tenantId), eq(t.scimUsers.userId, t.scimGroupMembers.userId)))
        .where(and(eq(t.scimGroupMembers.tenantId, tenantId), groupIds ? inArray(t.scimGroupMembers.groupId, groupIds) : undefined)),
    );
  }
  /** The groups of some users of ctx's tenant, with their names. */
  async groupsOfUsers(ctx: RequestContext, userIds: string[]): Promise<{ userId: string; groupId: string; displayName: string }[]> {
    const tenantId = requireTenant(ctx).id;
    if (userIds.length === 0) return [];
    const narrow = userIds.length <= MAX_IN;
    const { q, t } = this.store;
    const rows = await this.store.all(
      q
        .select({ userId: t.scimGroupMembers.userId, groupId: t.scimGroups.id, displayName: t.scimGroups.displayName })
        .from(t.scimGroupMembers)
        .innerJoin(t.scimGroups, eq(t.scimGroups.id, t.scimGroupMembers.groupId))
        .where(and(eq(t.scimGroupMembers.tenantId, tenantId), eq(t.scimGroups.tenantId, tenantId), narrow ? inArray(t.scimGroupMembers.userId, userIds) : undefined)),
    );
    if (narrow) return rows;
    const wanted = new Set(userIds);
    return rows.filter((r) => wanted.has(r.userId));
  }
  /** Makes the group's members exactly `userIds` (already checked to be ctx's tenant's users). */
  async setMembers(ctx: RequestContext, groupId: string, userIds: readonly string[], now: number): Promise<void> {
    await this.store.tx(async () => {
      await this.data.scimGroupMembers.delete(ctx, (m) => eq(m.groupId, groupId));
      for (const userId of new Set(userIds)) await this.data.scimGroupMembers.insert(ctx, { groupId, userId, createdAt: now });
    });
  }
  removeUserFromGroups(ctx: RequestContext, userId: string): Promise<number> {
    return this.data.scimGroupMembers.delete(ctx, (m) => eq(m.userId, userId));
  }
}
