import { and, count, desc, eq, gt, inArray, isNotNull, isNull, lt, or, sql } from 'drizzle-orm';
import { requireTenant, type RequestContext } from '../../context.js';
import type { apiKeys, loginThrottle, memberships, sessions as sessionsTable, tenants as tenantsTable, users } from '../schema.js';
import type { Store } from '../store.js';
import type { TenantStore } from '../tenant-store.js';

/**
 * The SQL for the identity tables (issue 22: async, on the Store, both dialects). Tenant-owned
 * tables (memberships, api_keys) go through the TenantStore; the few lookups that must cross
 * tenants are named here, each with the reason:
 *  - membershipsOfUser: a user's tenants (login, tenant switch, the user's own profile);
 *  - keyByPrefix: API key verification, before the tenant is known;
 *  - keyTenant: the CLI addresses a key by id and learns its tenant here;
 *  - countActiveKeys: the licence's key limit is platform-wide;
 *  - touchKeys: writes last-used times gathered by the key cache;
 *  - keyIdsOwnedByUser: deactivation stops a user's keys everywhere.
 * Users, tenants and sessions are platform tables (no tenant column).
 */
export type MembershipRow = typeof memberships.$inferSelect;
export type ApiKeyRow = typeof apiKeys.$inferSelect;
export type NewApiKey = Omit<typeof apiKeys.$inferInsert, 'tenantId'>;
export type UserRow = typeof users.$inferSelect;
export type TenantRow = typeof tenantsTable.$inferSelect;
export type SessionRow = typeof sessionsTable.$inferSelect;
export type ThrottleRow = typeof loginThrottle.$inferSelect;

export interface KeyLookup {
  readonly key: ApiKeyRow;
  readonly tenant: { id: string; slug: string; status: 'active' | 'suspended' };
  readonly owner: { id: string; status: 'active' | 'deactivated'; role: MembershipRow['role'] | null } | null;
}

export class IdentityRepo {
  constructor(
    private readonly store: Store,
    private readonly data: TenantStore,
  ) {}

  // --- memberships (tenant-scoped) ---
  membership(ctx: RequestContext, userId: string): Promise<MembershipRow | undefined> {
    return this.data.memberships.get(ctx, (m) => eq(m.userId, userId));
  }
  upsertMembership(ctx: RequestContext, userId: string, role: MembershipRow['role'], now: number): Promise<MembershipRow> {
    return this.data.memberships.upsert(ctx, { userId, role, createdAt: now, updatedAt: now }, (m) => [m.userId], { role, updatedAt: now });
  }
  deleteMembership(ctx: RequestContext, userId: string): Promise<number> {
    return this.data.memberships.delete(ctx, (m) => eq(m.userId, userId));
  }
  countOwners(ctx: RequestContext): Promise<number> {
    return this.data.memberships.count(ctx, (m) => eq(m.role, 'owner'));
  }
  /** Cross-tenant: the tenants a user belongs to (login, switching tenant). */
  membershipsOfUser(userId: string): Promise<{ tenantId: string; slug: string; name: string; status: 'active' | 'suspended'; role: MembershipRow['role'] }[]> {
    const { q, t } = this.store;
    return this.store.all(
      q
        .select({ tenantId: t.tenants.id, slug: t.tenants.slug, name: t.tenants.name, status: t.tenants.status, role: t.memberships.role })
        .from(t.memberships)
        .innerJoin(t.tenants, eq(t.tenants.id, t.memberships.tenantId))
        .where(eq(t.memberships.userId, userId))
        .orderBy(t.tenants.slug),
    );
  }

  // --- API keys (tenant-scoped) ---
  insertKey(ctx: RequestContext, row: NewApiKey): Promise<ApiKeyRow> {
    return this.data.apiKeys.insert(ctx, row);
  }
  key(ctx: RequestContext, id: string): Promise<ApiKeyRow | undefined> {
    return this.data.apiKeys.get(ctx, (k) => eq(k.id, id));
  }
  async keys(ctx: RequestContext, opts: { ownerUserId?: string; status?: 'active' | 'revoked'; beforeId?: string; limit: number }): Promise<ApiKeyRow[]> {
    const rows = await this.data.apiKeys.list(ctx, (k) =>
      and(
        opts.ownerUserId ? eq(k.ownerUserId, opts.ownerUserId) : undefined,
        opts.status === 'active' ? isNull(k.revokedAt) : opts.status === 'revoked' ? isNotNull(k.revokedAt) : undefined,
        opts.beforeId ? lt(k.id, opts.beforeId) : undefined,
      ),
    );
    return rows.sort((a, b) => (a.id < b.id ? 1 : -1)).slice(0, opts.limit);
  }
  updateKey(ctx: RequestContext, id: string, patch: Partial<NewApiKey>): Promise<number> {
    return this.data.apiKeys.update(ctx, (k) => eq(k.id, id), patch);
  }
  /** The unrevoked keys owned by the user in ctx's tenant (membership removed). */
  keysOwnedBy(ctx: RequestContext, userId: string): Promise<ApiKeyRow[]> {
    return this.data.apiKeys.list(ctx, (k) => and(eq(k.ownerUserId, userId), isNull(k.revokedAt)));
  }
  /** Unrevoked, unexpired keys of one tenant (the plan's key limit). */
  countActiveTenantKeys(ctx: RequestContext, now: number): Promise<number> {
    return this.data.apiKeys.count(ctx, (k) => and(isNull(k.revokedAt), or(isNull(k.expiresAt), gt(k.expiresAt, now))));
  }

  /** Cross-tenant: verification by visible prefix, with the tenant and the owner's current state. */
  async keyByPrefix(prefix: string): Promise<KeyLookup | undefined> {
    const { q, t } = this.store;
    const row = await this.store.one(
      q
        .select({ key: t.apiKeys, tenant: { id: t.tenants.id, slug: t.tenants.slug, status: t.tenants.status } })
        .from(t.apiKeys)
        .innerJoin(t.tenants, eq(t.tenants.id, t.apiKeys.tenantId))
        .where(eq(t.apiKeys.prefix, prefix)),
    );
    if (!row) return undefined;
    let owner: KeyLookup['owner'] = null;
    if (row.key.ownerUserId) {
      const u = await this.store.one(
        q
          .select({ id: t.users.id, status: t.users.status, role: t.memberships.role })
          .from(t.users)
          .leftJoin(t.memberships, and(eq(t.memberships.userId, t.users.id), eq(t.memberships.tenantId, row.key.tenantId)))
          .where(eq(t.users.id, row.key.ownerUserId)),
      );
      owner = u ? { id: u.id, status: u.status, role: u.role ?? null } : { id: row.key.ownerUserId, status: 'deactivated', role: null };
    }
    return { key: row.key, tenant: row.tenant, owner };
  }
  /** Cross-tenant: the tenant of a key id (CLI). */
  keyTenant(id: string): Promise<{ id: string; slug: string } | undefined> {
    const { q, t } = this.store;
    return this.store.one(q.select({ id: t.tenants.id, slug: t.tenants.slug }).from(t.apiKeys).innerJoin(t.tenants, eq(t.tenants.id, t.apiKeys.tenantId)).where(eq(t.apiKeys.id, id)));
  }
  /** Cross-tenant: unrevoked, unexpired keys on the whole platform (licence key limit). */
  async countActiveKeys(now: number): Promise<number> {
    const { q, t } = this.store;
    const k = t.apiKeys;
    return (await this.store.one(q.select({ n: count() }).from(k).where(and(isNull(k.revokedAt), or(isNull(k.expiresAt), gt(k.expiresAt, now))))))?.n ?? 0;
  }
  /** Cross-tenant: last-used times collected in memory by the key cache, in one transaction. */
  async touchKeys(entries: Iterable<{ id: string; at: number; ip: string | null }>): Promise<void> {
    const list = [...entries];
    if (list.length === 0) return;
    const { q, t } = this.store;
    const k = t.apiKeys;
    await this.store.tx(async () => {
      for (const e of list) {
        // Never move a time backwards (another process may have written a later use).
        await this.store.run(q.update(k).set({ lastUsedAt: e.at, lastUsedIp: e.ip }).where(and(eq(k.id, e.id), or(isNull(k.lastUsedAt), lt(k.lastUsedAt, e.at)))));
      }
    });
  }
  /** Cross-tenant: revoke every key of a user everywhere (deactivation keeps rows, stops use). */
  async keyIdsOwnedByUser(userId: string): Promise<string[]> {
    const { q, t } = this.store;
    const rows = await this.store.all(q.select({ id: t.apiKeys.id }).from(t.apiKeys).where(and(eq(t.apiKeys.ownerUserId, userId), isNull(t.apiKeys.revokedAt))));
    return rows.map((r) => r.id);
  }
  async usersByIds(ids: string[]): Promise<UserRow[]> {
    if (!ids.length) return [];
    const { q, t } = this.store;
    return this.store.all(q.select().from(t.users).where(inArray(t.users.id, ids)));
  }
  /** Users who are members of ctx's tenant, newest first by id. */
  memberUsers(ctx: RequestContext, opts: { beforeId?: string; status?: 'active' | 'deactivated'; limit: number }): Promise<{ user: UserRow; role: MembershipRow['role'] }[]> {
    const tenantId = requireTenant(ctx).id;
    const { q, t } = this.store;
    return this.store.all(
      q
        .select({ user: t.users, role: t.memberships.role })
        .from(t.memberships)
        .innerJoin(t.users, eq(t.users.id, t.memberships.userId))
        .where(and(eq(t.memberships.tenantId, tenantId), opts.beforeId ? lt(t.users.id, opts.beforeId) : undefined, opts.status ? eq(t.users.status, opts.status) : undefined))
        .orderBy(desc(t.users.id))
        .limit(opts.limit),
    );
  }

  // --- users (platform table) ---
  user(id: string): Promise<UserRow | undefined> {
    const { q, t } = this.store;
    return this.store.one(q.select().from(t.users).where(eq(t.users.id, id)));
  }
  userByEmail(email: string): Promise<UserRow | undefined> {
    const { q, t } = this.store;
    return this.store.one(q.select().from(t.users).where(eq(t.users.email, email)));
  }
  async countUsers(where: { platformAdmin?: boolean; status?: 'active' | 'deactivated' }): Promise<number> {
    const { q, t } = this.store;
    const w = and(where.platformAdmin !== undefined ? eq(t.users.platformAdmin, where.platformAdmin) : undefined, where.status ? eq(t.users.status, where.status) : undefined);
    return (await this.store.one(q.select({ n: count() }).from(t.users).where(w)))?.n ?? 0;
  }
  async insertUser(row: typeof users.$inferInsert): Promise<UserRow> {
    const { q, t } = this.store;
    return (await this.store.one(q.insert(t.users).values(row).returning()))!;
  }
  updateUser(id: string, patch: Partial<typeof users.$inferInsert>): Promise<number> {
    const { q, t } = this.store;
    return this.store.run(q.update(t.users).set(patch).where(eq(t.users.id, id)));
  }
  listUsers(opts: { status?: 'active' | 'deactivated'; email?: string; beforeId?: string; limit: number }): Promise<UserRow[]> {
    const { q, t } = this.store;
    return this.store.all(
      q
        .select()
        .from(t.users)
        .where(and(opts.status ? eq(t.users.status, opts.status) : undefined, opts.email ? eq(t.users.email, opts.email) : undefined, opts.beforeId ? lt(t.users.id, opts.beforeId) : undefined))
        .orderBy(desc(t.users.id))
        .limit(opts.limit),
    );
  }

  // --- tenants (platform table) ---
  tenant(id: string): Promise<TenantRow | undefined> {
    const { q, t } = this.store;
    return this.store.one(q.select().from(t.tenants).where(eq(t.tenants.id, id)));
  }
  /** By id (`ten_…`) or slug. */
  tenantByRef(ref: string): Promise<TenantRow | undefined> {
    const { q, t } = this.store;
    return this.store.one(q.select().from(t.tenants).where(ref.startsWith('ten_') ? eq(t.tenants.id, ref) : eq(t.tenants.slug, ref)));
  }
  async countTenants(): Promise<number> {
    const { q, t } = this.store;
    return (await this.store.one(q.select({ n: count() }).from(t.tenants)))?.n ?? 0;
  }
  async insertTenant(row: typeof tenantsTable.$inferInsert): Promise<TenantRow> {
    const { q, t } = this.store;
    return (await this.store.one(q.insert(t.tenants).values(row).returning()))!;
  }
  updateTenant(id: string, patch: Partial<typeof tenantsTable.$inferInsert>): Promise<number> {
    const { q, t } = this.store;
    return this.store.run(q.update(t.tenants).set(patch).where(eq(t.tenants.id, id)));
  }
  listTenants(opts: { status?: 'active' | 'suspended'; beforeId?: string; limit: number }): Promise<TenantRow[]> {
    const { q, t } = this.store;
    return this.store.all(
      q
        .select()
        .from(t.tenants)
        .where(and(opts.status ? eq(t.tenants.status, opts.status) : undefined, opts.beforeId ? lt(t.tenants.id, opts.beforeId) : undefined))
        .orderBy(desc(t.tenants.id))
        .limit(opts.limit),
    );
  }

  // --- sessions (platform table) ---
  insertSession(row: typeof sessionsTable.$inferInsert): Promise<SessionRow> {
    const { q, t } = this.store;
    return this.store.one(q.insert(t.sessions).values(row).returning()) as Promise<SessionRow>;
  }
  /** The session of a token hash with its user (every authenticated cookie request). */
  sessionByTokenHash(tokenHash: string): Promise<{ session: SessionRow; user: UserRow } | undefined> {
    const { q, t } = this.store;
    return this.store.one(q.select({ session: t.sessions, user: t.users }).from(t.sessions).innerJoin(t.users, eq(t.users.id, t.sessions.userId)).where(eq(t.sessions.tokenHash, tokenHash)));
  }
  updateSession(id: string, patch: Partial<typeof sessionsTable.$inferInsert>): Promise<number> {
    const { q, t } = this.store;
    return this.store.run(q.update(t.sessions).set(patch).where(eq(t.sessions.id, id)));
  }
  /** Ends the user's open sessions, except `keep`; returns how many ended. */
  endSessionsOfUser(userId: string, at: number, reason: string, keep?: string): Promise<number> {
    const { q, t } = this.store;
    const s = t.sessions;
    return this.store.run(
      q
        .update(s)
        .set({ revokedAt: at, revokedReason: reason })
        .where(and(eq(s.userId, userId), isNull(s.revokedAt), keep ? sql`${s.id} <> ${keep}` : undefined)),
    );
  }
  /** Sessions neither ended nor past a timeout. */
  async countActiveSessions(now: number, idleMs: number): Promise<number> {
    const { q, t } = this.store;
    const s = t.sessions;
    return (await this.store.one(q.select({ n: count() }).from(s).where(and(isNull(s.revokedAt), gt(s.expiresAt, now), gt(s.lastSeenAt, now - idleMs)))))?.n ?? 0;
  }

  // --- login throttle (platform table) ---
  throttle(key: string): Promise<ThrottleRow | undefined> {
    const { q, t } = this.store;
    return this.store.one(q.select().from(t.loginThrottle).where(eq(t.loginThrottle.key, key)));
  }
  async putThrottle(row: ThrottleRow): Promise<void> {
    const { q, t } = this.store;
    const { key: _k, ...set } = row;
    await this.store.run(q.insert(t.loginThrottle).values(row).onConflictDoUpdate({ target: t.loginThrottle.key, set }));
  }
  async deleteThrottle(key: string): Promise<void> {
    const { q, t } = this.store;
    await this.store.run(q.delete(t.loginThrottle).where(eq(t.loginThrottle.key, key)));
  }

  /** Runs fn in one transaction (see server/db/store.ts). */
  tx<T>(fn: () => Promise<T>): Promise<T> {
    return this.store.tx(fn);
  }

  /**
   * Inside a transaction: serialises it against every other transaction that locks the same
   * `key` (a check-then-write such as "is this the last owner?"). PostgreSQL: a
   * transaction-scoped advisory lock (released at COMMIT/ROLLBACK), taken before the check reads,
   * so under READ COMMITTED the check sees the other transaction's committed write. SQLite:
   * nothing to do, store.tx is BEGIN IMMEDIATE (the database's write lock) and the store's gate
   * keeps other flows of the process out.
   */
  lock(key: string): Promise<void> {
    return this.store.lock(`enclave:${key}`);
  }
}
