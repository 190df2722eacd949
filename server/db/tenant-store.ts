import { and, count, eq, type SQL } from 'drizzle-orm';
import type { SQLiteColumn, SQLiteTable } from 'drizzle-orm/sqlite-core';
import type { RequestContext } from '../context.js';
import { requireTenant } from '../context.js';
import { TENANT_OWNED } from './schema.js';
import type { Store } from './store.js';

/** A table whose rows belong to a tenant. */
type TenantTable = SQLiteTable & { tenantId: SQLiteColumn };
type TenantTableName = keyof typeof TENANT_OWNED;

type Row<T extends TenantTable> = T['$inferSelect'];
type NewRow<T extends TenantTable> = Omit<T['$inferInsert'], 'tenantId'>;
type Patch<T extends TenantTable> = Partial<NewRow<T>>;

/**
 * The async, dialect-neutral form of server/db/tenant-scope.ts (issue 22): the one way to read
 * and write tenant-owned rows through a Store. Every operation takes the request context and
 * applies its tenant: reads filter by it, inserts stamp it, updates and deletes are limited to
 * it, and a `tenantId` smuggled into values or patches is dropped.
 *
 * Conditions (`where`) are built by the caller from the same table the store holds, so they
 * take a function of the table: `data.chatMessages.list(ctx, (m) => eq(m.conversationId, id))`
 * — on PostgreSQL the table is the pg one, and a condition built from an imported SQLite table
 * would name the wrong column objects.
 */
export interface TenantScopedAsync<T extends TenantTable> {
  /** The dialect's table, for ordering and columns in repository code. */
  readonly table: T;
  list(ctx: RequestContext, where?: (t: T) => SQL | undefined): Promise<Row<T>[]>;
  get(ctx: RequestContext, where: (t: T) => SQL | undefined): Promise<Row<T> | undefined>;
  insert(ctx: RequestContext, values: NewRow<T>): Promise<Row<T>>;
  upsert(ctx: RequestContext, values: NewRow<T>, target: (t: T) => SQLiteColumn[], set: Patch<T>): Promise<Row<T>>;
  update(ctx: RequestContext, where: (t: T) => SQL | undefined, patch: Patch<T>): Promise<number>;
  delete(ctx: RequestContext, where: (t: T) => SQL | undefined): Promise<number>;
  count(ctx: RequestContext, where?: (t: T) => SQL | undefined): Promise<number>;
}

function withoutTenant<V extends object>(values: V): V {
  const { tenantId: _ignored, ...rest } = values as V & { tenantId?: unknown };
  return rest as V;
}

function scoped<N extends TenantTableName>(store: Store, name: N): TenantScopedAsync<(typeof TENANT_OWNED)[N]> {
  type T = (typeof TENANT_OWNED)[N];
  const table = store.t[name] as T;
  const own = (ctx: RequestContext, where?: (t: T) => SQL | undefined): SQL =>
    and(eq(table.tenantId, requireTenant(ctx).id), where?.(table)) as SQL;
  // drizzle's builders are not generic over an abstract table type; the casts below only
  // restate the row types declared above.
  const q = () => store.q as any; // any: drizzle's builders are not generic over an abstract table type
  return {
    table,
    list: (ctx, where) => store.all(q().select().from(table).where(own(ctx, where))),
    get: (ctx, where) => store.one(q().select().from(table).where(own(ctx, where)).limit(1)),
    insert: async (ctx, values) =>
      (await store.one<Row<T>>(
        q()
          .insert(table)
          .values({ ...withoutTenant(values), tenantId: requireTenant(ctx).id })
          .returning(),
      )) as Row<T>,
    upsert: async (ctx, values, target, set) =>
      (await store.one<Row<T>>(
        q()
          .insert(table)
          .values({ ...withoutTenant(values), tenantId: requireTenant(ctx).id })
          .onConflictDoUpdate({ target: [table.tenantId, ...target(table)], set: withoutTenant(set) })
          .returning(),
      )) as Row<T>,
    update: async (ctx, where, patch) => {
      const clean = withoutTenant(patch);
      if (Object.keys(clean).length === 0) return 0;
      return store.run(q().update(table).set(clean).where(own(ctx, where)));
    },
    delete: (ctx, where) => store.run(q().delete(table).where(own(ctx, where))),
    count: async (ctx, where) => (await store.one<{ n: number }>(q().select({ n: count() }).from(table).where(own(ctx, where))))?.n ?? 0,
  };
}

/** Tenant-scoped async access to every tenant-owned table of a store, built once per process. */
export function createTenantStore(store: Store): { [N in TenantTableName]: TenantScopedAsync<(typeof TENANT_OWNED)[N]> } {
  const out = {} as { [N in TenantTableName]: TenantScopedAsync<(typeof TENANT_OWNED)[N]> };
  for (const name of Object.keys(TENANT_OWNED) as TenantTableName[]) {
    (out as Record<TenantTableName, unknown>)[name] = scoped(store, name);
  }
  return out;
}

export type TenantStore = ReturnType<typeof createTenantStore>;
