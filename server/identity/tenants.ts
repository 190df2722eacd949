import type { Classification, RequestContext } from '../context.js';
import type { TenantRow } from '../db/repos/identity.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import { hidden, isPlatform, page, type IdentityDeps, type Page } from './deps.js';

export type { TenantRow };

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

  byId(id: string): Promise<TenantRow | undefined> {
    return this.d.repo.tenant(id);
  }

  /** By id or slug (CLI). */
  resolve(ref: string): Promise<TenantRow | undefined> {
    return this.d.repo.tenantByRef(ref);
  }

  /**
   * The context narrowed to a tenant the principal may see: its own tenant, or any tenant
   * for platform administrators and the CLI. Anything else is 404 (and audited).
   */
  async scopeTo(ctx: RequestContext, tenantId: string, action = 'tenant.access'): Promise<RequestContext> {
    const t = await this.byId(tenantId);
    if (t && ctx.tenant?.id === t.id) return ctx;
    if (!t || !isPlatform(ctx)) throw await hidden(this.d, ctx, 'tenant', tenantId, action);
    return { ...ctx, tenant: { id: t.id, slug: t.slug } };
  }

  async create(ctx: RequestContext, input: { slug: string; name?: string; plan?: string | null; defaultClassification?: Classification }): Promise<TenantRow> {
    await this.d.access.require(ctx, 'platform:tenants:create', {}, { type: 'tenant' });
    if (!SLUG.test(input.slug)) {
      throw new AppError(400, 'invalid_slug', 'A tenant slug is 1–40 characters: lower-case letters, digits and inner hyphens.', { param: 'slug' });
    }
    const now = this.d.clock.now();
    // The licence count, the slug check and the insert in one transaction: two creations at the
    // tenant limit must not both pass.
    const out = await this.d.repo.tx(async (): Promise<{ row: TenantRow } | { refusal: AppError }> => {
      await this.d.repo.lock('tenants');
      const refusal = this.d.entitlements().checkGrowth('tenants', await this.d.repo.countTenants());
      if (refusal) return { refusal };
      if (await this.resolve(input.slug)) throw new AppError(409, 'tenant_exists', `A tenant with slug ${input.slug} already exists.`, { param: 'slug' });
      const row = await this.d.repo.insertTenant({
        id: newId('ten', now),
        slug: input.slug,
        name: input.name?.trim() || input.slug,
        plan: input.plan ?? null,
        defaultClassification: input.defaultClassification ?? 'internal',
        createdAt: now,
        updatedAt: now,
      });
      return { row };
    });
    if ('refusal' in out) {
      await this.d.audit.record(ctx, { action: 'tenant.create', outcome: 'denied', reason: out.refusal.code, tenantId: null, details: { slug: input.slug } });
      throw out.refusal;
    }
    const row = out.row;
    await this.d.audit.record(ctx, { action: 'tenant.create', tenantId: row.id, target: { type: 'tenant', id: row.id }, details: { slug: row.slug, name: row.name } });
    return row;
  }

  async list(ctx: RequestContext, opts: { status?: 'active' | 'suspended'; cursor?: string; limit: number }): Promise<Page<ReturnType<typeof serializeTenant>>> {
    if (!isPlatform(ctx)) {
      // Everyone else sees the tenant they act in.
      const own = ctx.tenant ? await this.byId(ctx.tenant.id) : undefined;
      await this.d.access.require(ctx, 'tenant:read');
      const rows = own && (!opts.status || own.status === opts.status) && !opts.cursor ? [own] : [];
      return page(rows, opts.limit, (t) => t.id, serializeTenant);
    }
    const rows = await this.d.repo.listTenants({ limit: opts.limit + 1, ...(opts.status ? { status: opts.status } : {}), ...(opts.cursor ? { beforeId: opts.cursor } : {}) });
    return page(rows, opts.limit, (t) => t.id, serializeTenant);
  }

  async get(ctx: RequestContext, id: string): Promise<TenantRow> {
    const scoped = await this.scopeTo(ctx, id, 'tenant.read');
    await this.d.access.require(scoped, 'tenant:read', {}, { type: 'tenant', id });
    return (await this.byId(id))!;
  }

  async update(
    ctx: RequestContext,
    id: string,
    patch: { name?: string; defaultClassification?: Classification; plan?: string | null },
  ): Promise<TenantRow> {
    const scoped = await this.scopeTo(ctx, id, 'tenant.update');
    await this.d.access.require(scoped, 'tenant:update', {}, { type: 'tenant', id });
    if (patch.plan !== undefined) await this.d.access.require(scoped, 'platform:tenants:plan', {}, { type: 'tenant', id });
    const set: Partial<TenantRow> = { updatedAt: this.d.clock.now() };
    if (patch.name !== undefined) {
      const name = patch.name.trim();
      if (!name || name.length > 200) throw new AppError(400, 'invalid_name', 'A tenant name is 1–200 characters.', { param: 'name' });
      set.name = name;
    }
    if (patch.defaultClassification !== undefined) set.defaultClassification = patch.defaultClassification;
    if (patch.plan !== undefined) set.plan = patch.plan;
    // Before and after read in the update's transaction, so the audited change is exactly this one.
    const { before, after } = await this.d.repo.tx(async () => {
      const b = (await this.byId(id))!;
      await this.d.repo.updateTenant(id, set);
      return { before: b, after: (await this.byId(id))! };
    });
    // The gateway caches each tenant's default classification (the floor of every call): drop it now.
    if (after.defaultClassification !== before.defaultClassification) await this.d.revision.bump();
    await this.d.audit.record(scoped, {
      action: 'tenant.update',
      target: { type: 'tenant', id },
      details: { before: { name: before.name, plan: before.plan, default_classification: before.defaultClassification }, after: { name: after.name, plan: after.plan, default_classification: after.defaultClassification } },
    });
    return after;
  }

  /** Suspend or resume. A suspended tenant's keys and sessions are refused (tenant_suspended); its data stays. */
  async setStatus(ctx: RequestContext, id: string, status: 'active' | 'suspended'): Promise<TenantRow> {
    const action = status === 'suspended' ? 'tenant.suspend' : 'tenant.resume';
    const scoped = await this.scopeTo(ctx, id, action);
    await this.d.access.require(scoped, 'platform:tenants:suspend', {}, { type: 'tenant', id });
    await this.d.repo.updateTenant(id, { status, updatedAt: this.d.clock.now() });
    await this.d.revision.bump();
    await this.d.audit.record(scoped, { action, target: { type: 'tenant', id } });
    return (await this.byId(id))!;
  }
}
