import { integer, primaryKey, sqliteTable, text } from 'drizzle-orm/sqlite-core';

/**
 * The database schema. Tenant-owned tables (every row belongs to one tenant) have a
 * non-null `tenant_id` and are listed in TENANT_OWNED below; they are read and written
 * only through server/db/tenant-scope.ts, which applies the request's tenant.
 */

/** Runtime settings (admin-editable, audited). Secret values are SecretBox ciphertexts. */
export const settings = sqliteTable('settings', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
  secret: integer('secret', { mode: 'boolean' }).notNull().default(false),
  updatedAt: integer('updated_at').notNull(),
});

export const tenants = sqliteTable('tenants', {
  id: text('id').primaryKey(),
  slug: text('slug').notNull().unique(),
  name: text('name').notNull(),
  status: text('status', { enum: ['active', 'suspended'] }).notNull().default('active'),
  createdAt: integer('created_at').notNull(),
  updatedAt: integer('updated_at').notNull(),
});

/** Tenant settings (tenant-admin-editable within the plan). Values are JSON text. */
export const tenantSettings = sqliteTable(
  'tenant_settings',
  {
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    key: text('key').notNull(),
    value: text('value').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.key] })],
);

/** Every table whose rows belong to a tenant. A test checks that no table with a tenant_id column is missing. */
export const TENANT_OWNED = { tenantSettings } as const;
