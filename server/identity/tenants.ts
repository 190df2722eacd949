import { and, desc, eq, lt, sql } from 'drizzle-orm';
import type { Classification, RequestContext } from '../context.js';
import { tenants } from '../db/schema.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import { hidden, isPlatform, page, type IdentityDeps, type Page } from './deps.js';

export type TenantRow = typeof tenants.$inferSelect;

export const SLUG = /^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$/;

export function serializeTenant(t: TenantRow) {
  return {
    object: 'tenant' as const,
    id: t.id,
    slug: t.slug,
    name: t.name,
    status: t.status,
    plan: t.plan,
    default_classification: t.defaultClassification,
    created_at: t.createdAt,
    updated_at: t.updatedAt,
  };
}

export class TenantService {
  constructor(private readonly d: IdentityDeps) {}

  byId(id: string): TenantRow | undefined {
    return this.d.db.select().from(tenants).where(eq(tenants.id, id)).get();
  }

  /** By id or slug (CLI). */
  resolve(ref: string): TenantRow | undefined {
    return this.d.db
      .select()
      .from(tenants)
      .where(ref.startsWith('ten_') ? eq(tenants.id, ref) : eq(tenants.slug, ref))
      .get();
  }

  /**
   * The context narrowed to a tenant the principal may see: its own tenant, or any tenant
   * for platform administrators and the CLI. Anything else is 404 (and audited).
   */
  scopeTo(ctx: RequestContext, tenantId: string, action = 'tenant.access'): RequestContext {
    const t = this.byId(tenantId);
    if (t && ctx.tenant?.id === t.id) return ctx;
    if (!t || !isPlatform(ctx)) throw hidden(this.d, ctx, 'tenant', tenantId, action);
    return { ...ctx, tenant: { id: t.id, slug: t.slug } };
  }

  create(ctx: RequestContext, input: { slug: string; name?: string; plan?: string | null; defaultClassification?: Classification }): TenantRow {
    this.d.access.require(ctx, 'platform:tenants:create', {}, { type: 'tenant' });
    if (!SLUG.test(input.slug)) {
      throw new AppError(400, 'invalid_slug', 'A tenant slug is 1–40 characters: lower-case letters, digits and inner hyphens.', { param: 'slug' });
    }
    const current = this.d.db.select({ n: sql<number>`count(*)` }).from(tenants).get()!.n;
    const refusal = this.d.entitlements().checkGrowth('tenants', current);
    if (refusal) {
      this.d.audit.record(ctx, { action: 'tenant.create', outcome: 'denied', reason: refusal.code, tenantId: null, details: { slug: input.slug } });
      throw refusal;
    }
    if (this.resolve(input.slug)) throw new AppError(409, 'tenant_exists', `A tenant with slug ${input.slug} already exists.`, { param: 'slug' });
    const now = this.d.clock.now();
    const row = this.d.db
      .insert(tenants)
      .values({
        id: newId('ten', now),
        slug: input.slug,
        name: input.name?.trim() || input.slug,
        plan: input.plan ?? null,
        defaultClassification: input.defaultClassification ?? 'internal',
        createdAt: now,
        updatedAt: now,
      })
      .returning()
      .get();
    this.d.audit.record(ctx, { action: 'tenant.create', tenantId: row.id, target: { type: 'tenant', id: row.id }, details: { slug: row.slug, name: row.name } });
    return row;
  }

  list(ctx: RequestContext, opts: { status?: 'active' | 'suspended'; cursor?: string; limit: number }): Page<ReturnType<typeof serializeTenant>> {
    if (!isPlatform(ctx)) {
      // Everyone else sees the tenant they act in.
      const own = ctx.tenant ? this.byId(ctx.tenant.id) : undefined;
      this.d.access.require(ctx, 'tenant:read');
      const rows = own && (!opts.status || own.status === opts.status) && !opts.cursor ? [own] : [];
      return page(rows, opts.limit, (t) => t.id, serializeTenant);
    }
    const rows = this.d.db
      .select()
      .from(tenants)
      .where(and(opts.status ? eq(tenants.status, opts.status) : undefined, opts.cursor ? lt(tenants.id, opts.cursor) : undefined))
      .orderBy(desc(tenants.id))
      .limit(opts.limit + 1)
      .all();
    return page(rows, opts.limit, (t) => t.id, serializeTenant);
  }

  get(ctx: RequestContext, id: string): TenantRow {
    const scoped = this.scopeTo(ctx, id, 'tenant.read');
    this.d.access.require(scoped, 'tenant:read', {}, { type: 'tenant', id });
    return this.byId(id)!;
  }

  update(
    ctx: RequestContext,
    id: string,
    patch: { name?: string; defaultClassification?: Classification; plan?: string | null },
  ): TenantRow {
    const scoped = this.scopeTo(ctx, id, 'tenant.update');
    this.d.access.require(scoped, 'tenant:update', {}, { type: 'tenant', id });
    if (patch.plan !== undefined) this.d.access.require(scoped, 'platform:tenants:plan', {}, { type: 'tenant', id });
    const set: Partial<TenantRow> = { updatedAt: this.d.clock.now() };
    if (patch.name !== undefined) {
      const name = patch.name.trim();
      if (!name || name.length > 200) throw new AppError(400, 'invalid_name', 'A tenant name is 1–200 characters.', { param: 'name' });
      set.name = name;
    }
    if (patch.defaultClassification !== undefined) set.defaultClassification = patch.defaultClassification;
    if (patch.plan !== undefined) set.plan = patch.plan;
    const before = this.byId(id)!;
    this.d.db.update(tenants).set(set).where(eq(tenants.id, id)).run();
    const after = this.byId(id)!;
    // The gateway caches each tenant's default classification (the floor of every call): drop it now.
    if (after.defaultClassification !== before.defaultClassification) this.d.revision.bump();
    this.d.audit.record(scoped, {
      action: 'tenant.update',
      target: { type: 'tenant', id },
      details: { before: { name: before.name, plan: before.plan, default_classification: before.defaultClassification }, after: { name: after.name, plan: after.plan, default_classification: after.defaultClassification } },
    });
    return after;
  }

  /** Suspend or resume. A suspended tenant's keys and sessions are refused (tenant_suspended); its data stays. */
  setStatus(ctx: RequestContext, id: string, status: 'active' | 'suspended'): TenantRow {
    const action = status === 'suspended' ? 'tenant.suspend' : 'tenant.resume';
    const scoped = this.scopeTo(ctx, id, action);
    this.d.access.require(scoped, 'platform:tenants:suspend', {}, { type: 'tenant', id });
    this.d.db.update(tenants).set({ status, updatedAt: this.d.clock.now() }).where(eq(tenants.id, id)).run();
    this.d.revision.bump();
    this.d.audit.record(scoped, { action, target: { type: 'tenant', id } });
    return this.byId(id)!;
  }
}
