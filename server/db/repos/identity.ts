import { and, desc, eq, gt, inArray, isNull, lt, or, sql, type SQL } from 'drizzle-orm';
import { requireTenant, type RequestContext } from '../../context.js';
import type { Db } from '../connection.js';
import { apiKeys, memberships, tenants, users } from '../schema.js';
import type { TenantData } from '../tenant-scope.js';

/**
 * The SQL for the tenant-owned identity tables (memberships, api_keys). Tenant-scoped
 * operations go through TenantData (tenantScoped); the few lookups that must cross
 * tenants are named here, each with the reason:
 *  - membershipsOfUser: a user's tenants (login, tenant switch, the user's own profile);
 *  - keyByPrefix: API key verification, before the tenant is known;
 *  - keyTenant: the CLI addresses a key by id and learns its tenant here;
 *  - countActiveKeys: the licence's key limit is platform-wide;
 *  - touchKeys: writes last-used times gathered by the key cache.
 */
export type MembershipRow = typeof memberships.$inferSelect;
export type ApiKeyRow = typeof apiKeys.$inferSelect;
export type NewApiKey = Omit<typeof apiKeys.$inferInsert, 'tenantId'>;

export interface KeyLookup {
  readonly key: ApiKeyRow;
  readonly tenant: { id: string; slug: string; status: 'active' | 'suspended' };
  readonly owner: { id: string; status: 'active' | 'deactivated'; role: MembershipRow['role'] | null } | null;
}

export class IdentityRepo {
  constructor(
    private readonly db: Db,
    private readonly data: TenantData,
  ) {}

  // --- memberships (tenant-scoped) ---
  membership(ctx: RequestContext, userId: string): MembershipRow | undefined {
    return this.data.memberships.get(ctx, eq(memberships.userId, userId));
  }
  upsertMembership(ctx: RequestContext, userId: string, role: MembershipRow['role'], now: number): MembershipRow {
    return this.data.memberships.upsert(
      ctx,
      { userId, role, createdAt: now, updatedAt: now },
      [memberships.userId],
      { role, updatedAt: now },
    );
  }
  deleteMembership(ctx: RequestContext, userId: string): number {
    return this.data.memberships.delete(ctx, eq(memberships.userId, userId));
  }
  countOwners(ctx: RequestContext): number {
    return this.data.memberships.count(ctx, eq(memberships.role, 'owner'));
  }
  /** Cross-tenant: the tenants a user belongs to (login, switching tenant). */
  membershipsOfUser(userId: string): { tenantId: string; slug: string; name: string; status: string; role: MembershipRow['role'] }[] {
    return this.db
      .select({ tenantId: tenants.id, slug: tenants.slug, name: tenants.name, status: tenants.status, role: memberships.role })
      .from(memberships)
      .innerJoin(tenants, eq(tenants.id, memberships.tenantId))
      .where(eq(memberships.userId, userId))
      .orderBy(tenants.slug)
      .all();
  }

  // --- API keys (tenant-scoped) ---
  insertKey(ctx: RequestContext, row: NewApiKey): ApiKeyRow {
    return this.data.apiKeys.insert(ctx, row);
  }
  key(ctx: RequestContext, id: string): ApiKeyRow | undefined {
    return this.data.apiKeys.get(ctx, eq(apiKeys.id, id));
  }
  keys(
    ctx: RequestContext,
    opts: { ownerUserId?: string; status?: 'active' | 'revoked'; beforeId?: string; limit: number },
  ): ApiKeyRow[] {
    const where: (SQL | undefined)[] = [
      opts.ownerUserId ? eq(apiKeys.ownerUserId, opts.ownerUserId) : undefined,
      opts.status === 'active' ? isNull(apiKeys.revokedAt) : opts.status === 'revoked' ? sql`${apiKeys.revokedAt} IS NOT NULL` : undefined,
      opts.beforeId ? lt(apiKeys.id, opts.beforeId) : undefined,
    ];
    return this.data.apiKeys
      .list(ctx, and(...where))
      .sort((a, b) => (a.id < b.id ? 1 : -1))
      .slice(0, opts.limit);
  }
  updateKey(ctx: RequestContext, id: string, patch: Partial<NewApiKey>): number {
    return this.data.apiKeys.update(ctx, eq(apiKeys.id, id), patch);
  }
  /** Revokes every unrevoked key owned by the user in ctx's tenant (membership removed). */
  keysOwnedBy(ctx: RequestContext, userId: string): ApiKeyRow[] {
    return this.data.apiKeys.list(ctx, and(eq(apiKeys.ownerUserId, userId), isNull(apiKeys.revokedAt)));
  }

  /** Cross-tenant: verification by visible prefix, with the tenant and the owner's current state. */
  keyByPrefix(prefix: string): KeyLookup | undefined {
    const row = this.db
      .select({ key: apiKeys, tenant: { id: tenants.id, slug: tenants.slug, status: tenants.status } })
      .from(apiKeys)
      .innerJoin(tenants, eq(tenants.id, apiKeys.tenantId))
      .where(eq(apiKeys.prefix, prefix))
      .get();
    if (!row) return undefined;
    let owner: KeyLookup['owner'] = null;
    if (row.key.ownerUserId) {
      const u = this.db
        .select({ id: users.id, status: users.status, role: memberships.role })
        .from(users)
        .leftJoin(memberships, and(eq(memberships.userId, users.id), eq(memberships.tenantId, row.key.tenantId)))
        .where(eq(users.id, row.key.ownerUserId))
        .get();
      owner = u ? { id: u.id, status: u.status, role: u.role ?? null } : { id: row.key.ownerUserId, status: 'deactivated', role: null };
    }
    return { key: row.key, tenant: row.tenant, owner };
  }
  /** Cross-tenant: the tenant of a key id (CLI). */
  keyTenant(id: string): { id: string; slug: string } | undefined {
    return this.db
      .select({ id: tenants.id, slug: tenants.slug })
      .from(apiKeys)
      .innerJoin(tenants, eq(tenants.id, apiKeys.tenantId))
      .where(eq(apiKeys.id, id))
      .get();
  }
  /** Cross-tenant: unrevoked, unexpired keys on the whole platform (licence key limit). */
  countActiveKeys(now: number): number {
    return this.db
      .select({ n: sql<number>`count(*)` })
      .from(apiKeys)
      .where(and(isNull(apiKeys.revokedAt), or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, now))))
      .get()!.n;
  }
  /** Cross-tenant: last-used times collected in memory by the key cache. */
  touchKeys(entries: Iterable<{ id: string; at: number; ip: string | null }>): void {
    const stmt = this.db.$client.prepare('UPDATE api_keys SET last_used_at = ?, last_used_ip = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)');
    const tx = this.db.$client.transaction((list: { id: string; at: number; ip: string | null }[]) => {
      for (const e of list) stmt.run(e.at, e.ip, e.id, e.at);
    });
    tx([...entries]);
  }
  /** Cross-tenant: revoke every key of a user everywhere (deactivation keeps rows, stops use). */
  keyIdsOwnedByUser(userId: string): string[] {
    return this.db.select({ id: apiKeys.id }).from(apiKeys).where(and(eq(apiKeys.ownerUserId, userId), isNull(apiKeys.revokedAt))).all().map((r) => r.id);
  }
  usersByIds(ids: string[]): (typeof users.$inferSelect)[] {
    return ids.length ? this.db.select().from(users).where(inArray(users.id, ids)).all() : [];
  }
  /** Users who are members of ctx's tenant, newest first by id. */
  memberUsers(ctx: RequestContext, opts: { beforeId?: string; status?: 'active' | 'deactivated'; limit: number }) {
    const tenantId = requireTenant(ctx).id;
    return this.db
      .select({ user: users, role: memberships.role })
      .from(memberships)
      .innerJoin(users, eq(users.id, memberships.userId))
      .where(and(eq(memberships.tenantId, tenantId), opts.beforeId ? lt(users.id, opts.beforeId) : undefined, opts.status ? eq(users.status, opts.status) : undefined))
      .orderBy(desc(users.id))
      .limit(opts.limit)
      .all();
  }
}
