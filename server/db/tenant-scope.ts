import { and, eq, sql, type SQL } from 'drizzle-orm';
import type { SQLiteColumn, SQLiteTable } from 'drizzle-orm/sqlite-core';
import type { RequestContext } from '../context.js';
import { requireTenant } from '../context.js';
import type { Db } from './connection.js';
import { TENANT_OWNED } from './schema.js';

/** A table whose rows belong to a tenant. */
type TenantTable = SQLiteTable & { tenantId: SQLiteColumn };

type Row<T extends TenantTable> = T['$inferSelect'];
type NewRow<T extends TenantTable> = Omit<T['$inferInsert'], 'tenantId'>;
type Patch<T extends TenantTable> = Partial<NewRow<T>>;

/**
 * The one way to read and write tenant-owned rows. Every operation takes the request
 * context and applies its tenant: reads filter by it, inserts stamp it, updates and
 * deletes are limited to it, and a `tenantId` smuggled into values or patches is
 * dropped. Code outside server/db never imports a tenant-owned table directly (a test
 * enforces this), so there is no second path that could forget the filter.
 */
export interface TenantScoped<T extends TenantTable> {
  list(ctx: RequestContext, where?: SQL): Row<T>[];
  get(ctx: RequestContext, where: SQL): Row<T> | undefined;
  insert(ctx: RequestContext, values: NewRow<T>): Row<T>;
  upsert(ctx: RequestContext, values: NewRow<T>, target: SQLiteColumn[], set: Patch<T>): Row<T>;
  update(ctx: RequestContext, where: SQL, patch: Patch<T>): number;
  delete(ctx: RequestContext, where: SQL): number;
  count(ctx: RequestContext, where?: SQL): number;
}

function withoutTenant<V extends object>(values: V): V {
  const { tenantId: _ignored, ...rest } = values as V & { tenantId?: unknown };
  return rest as V;
}

export function tenantScoped<T extends TenantTable>(db: Db, table: T): TenantScoped<T> {
  const own = (ctx: RequestContext, where?: SQL): SQL =>
    and(eq(table.tenantId, requireTenant(ctx).id), where) as SQL;
  // drizzle's generic table types do not narrow through a type parameter; the casts
  // below only restate the row types declared above.
  const d = db as any; // any: drizzle's builders are not generic over an abstract table type
  return {
    list: (ctx, where) => d.select().from(table).where(own(ctx, where)).all(),
    get: (ctx, where) => d.select().from(table).where(own(ctx, where)).get(),
    insert: (ctx, values) =>
      d
        .insert(table)
        .values({ ...withoutTenant(values), tenantId: requireTenant(ctx).id })
        .returning()
        .get(),
    upsert: (ctx, values, target, set) =>
      d
        .insert(table)
        .values({ ...withoutTenant(values), tenantId: requireTenant(ctx).id })
        .onConflictDoUpdate({ target: [table.tenantId, ...target], set: withoutTenant(set) })
        .returning()
        .get(),
    update: (ctx, where, patch) => {
      const clean = withoutTenant(patch);
      if (Object.keys(clean).length === 0) return 0;
      return d.update(table).set(clean).where(own(ctx, where)).run().changes;
    },
    delete: (ctx, where) => d.delete(table).where(own(ctx, where)).run().changes,
    count: (ctx, where) =>
      (d.select({ n: sql<number>`count(*)` }).from(table).where(own(ctx, where)).get() as { n: number }).n,
  };
}

/** Tenant-scoped access to every tenant-owned table, built once per process. */
export function createTenantData(db: Db) {
  return {
    tenantSettings: tenantScoped(db, TENANT_OWNED.tenantSettings),
    memberships: tenantScoped(db, TENANT_OWNED.memberships),
    apiKeys: tenantScoped(db, TENANT_OWNED.apiKeys),
    usageRecords: tenantScoped(db, TENANT_OWNED.usageRecords),
    ssoIdps: tenantScoped(db, TENANT_OWNED.ssoIdps),
    conversations: tenantScoped(db, TENANT_OWNED.conversations),
    chatMessages: tenantScoped(db, TENANT_OWNED.chatMessages),
    assistants: tenantScoped(db, TENANT_OWNED.assistants),
    messageFeedback: tenantScoped(db, TENANT_OWNED.messageFeedback),
    prompts: tenantScoped(db, TENANT_OWNED.prompts),
    promptVersions: tenantScoped(db, TENANT_OWNED.promptVersions),
    files: tenantScoped(db, TENANT_OWNED.files),
    batches: tenantScoped(db, TENANT_OWNED.batches),
    batchLines: tenantScoped(db, TENANT_OWNED.batchLines),
    usageRollups: tenantScoped(db, TENANT_OWNED.usageRollups),
    meteringLimits: tenantScoped(db, TENANT_OWNED.meteringLimits),
    meteringSettings: tenantScoped(db, TENANT_OWNED.meteringSettings),
    meteringNotifications: tenantScoped(db, TENANT_OWNED.meteringNotifications),
    callContents: tenantScoped(db, TENANT_OWNED.callContents),
    invitations: tenantScoped(db, TENANT_OWNED.invitations),
    tenantDomains: tenantScoped(db, TENANT_OWNED.tenantDomains),
    storedResponses: tenantScoped(db, TENANT_OWNED.storedResponses),
    scimTokens: tenantScoped(db, TENANT_OWNED.scimTokens),
    scimUsers: tenantScoped(db, TENANT_OWNED.scimUsers),
    scimGroups: tenantScoped(db, TENANT_OWNED.scimGroups),
    scimGroupMembers: tenantScoped(db, TENANT_OWNED.scimGroupMembers),
  };
}

export type TenantData = ReturnType<typeof createTenantData>;
