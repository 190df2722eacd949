import type { Access } from '../access/authorize.js';
import type { AuditLog } from '../audit/log.js';
import { requireTenant, type RequestContext } from '../context.js';
import { AppError } from '../errors.js';
import { parseInput } from '../http/parse-input.js';
import { hidden, isPlatform } from '../identity/deps.js';
import { deploymentInputSchema, deploymentPatchSchema, serializeDeployment, type DeploymentRow, type DeploymentService } from './deployments.js';

/**
 * Tenant-private provider deployments, managed by the tenant's own administrators
 * (`providers:read` / `providers:write`; tenant principals also need the plan capability
 * `custom_providers`) or by platform administrators on the tenant's behalf. `ctx.tenant` is
 * the tenant (routes narrow it with tenants.scopeTo). Only deployments whose tenant_ref is
 * that tenant are visible here: any other id or name (another tenant's, or a platform
 * deployment) is 404 and audited.
 *
 * Rules on top of DeploymentService's (licence boundaries, unique names, encrypted
 * credential, audit, revision bump):
 *  - `tenant_id` may only name the tenant itself (absent, its id or its slug): another
 *    tenant → 404 (audited), null (platform-wide) → 403 platform_admin_required;
 *  - `approved` is for platform administrators: a tenant's own deployment is approved when
 *    created (the plan's custom_providers is the platform's consent), and a platform
 *    administrator's withdrawal of approval cannot be undone by the tenant;
 *  - a `public` boundary needs the plan's cloud_providers too (authorize → plan_forbidden),
 *    the same capability calls to public deployments need.
 */
export class TenantDeployments {
  constructor(private readonly d: { deployments: DeploymentService; access: Access; audit: AuditLog }) {}

  async list(ctx: RequestContext): Promise<ReturnType<typeof serializeDeployment>[]> {
    const t = requireTenant(ctx);
    await this.d.access.require(ctx, 'providers:read', {}, { type: 'provider_deployment' });
    return this.d.deployments.list({ tenantId: t.id });
  }

  async get(ctx: RequestContext, idOrName: string): Promise<ReturnType<typeof serializeDeployment>> {
    const r = await this.visible(ctx, idOrName, 'providers.read');
    await this.d.access.require(ctx, 'providers:read', {}, target(r));
    return serializeDeployment(r);
  }

  async create(ctx: RequestContext, raw: unknown): Promise<ReturnType<typeof serializeDeployment>> {
    const t = requireTenant(ctx);
    await this.d.access.require(ctx, 'providers:write', {}, { type: 'provider_deployment' });
    const input = parseInput(deploymentInputSchema, raw);
    await this.checkTenantField(ctx, input.tenant_id, 'providers.create');
    await this.checkApproved(ctx, input.approved, 'providers.create', { type: 'provider_deployment' });
    if (input.boundary === 'public') await this.d.access.require(ctx, 'providers:write', { boundary: 'public' }, { type: 'provider_deployment' });
    return this.d.deployments.createParsed(ctx, { ...input, tenant_id: t.id });
  }

  async update(ctx: RequestContext, idOrName: string, raw: unknown): Promise<ReturnType<typeof serializeDeployment>> {
    const r = await this.visible(ctx, idOrName, 'providers.update');
    await this.d.access.require(ctx, 'providers:write', {}, target(r));
    const { tenant_id: tenantField, ...patch } = parseInput(deploymentPatchSchema, raw);
    await this.checkTenantField(ctx, tenantField, 'providers.update');
    await this.checkApproved(ctx, patch.approved, 'providers.update', target(r));
    if (patch.boundary === 'public') await this.d.access.require(ctx, 'providers:write', { boundary: 'public' }, target(r));
    return this.d.deployments.updateParsed(ctx, r, patch);
  }

  async remove(ctx: RequestContext, idOrName: string): Promise<void> {
    const r = await this.visible(ctx, idOrName, 'providers.remove');
    await this.d.access.require(ctx, 'providers:write', {}, target(r));
    await this.d.deployments.remove(ctx, r.id);
  }

  /** Calls the upstream with the stored settings: outbound traffic with the credential, so it needs write. */
  async test(ctx: RequestContext, idOrName: string): ReturnType<DeploymentService['test']> {
    const r = await this.visible(ctx, idOrName, 'providers.test');
    await this.d.access.require(ctx, 'providers:write', {}, target(r));
    return this.d.deployments.test(r.id);
  }

  /** The tenant's own deployment, or 404 (audited) — also for platform deployments and other tenants'. */
  private async visible(ctx: RequestContext, idOrName: string, action: string): Promise<DeploymentRow> {
    const t = requireTenant(ctx);
    const r = await this.d.deployments.find(idOrName);
    if (!r || r.tenantRef !== t.id) throw await hidden(this.d, ctx, 'provider_deployment', idOrName, action);
    return r;
  }

  private async checkTenantField(ctx: RequestContext, value: string | null | undefined, action: string): Promise<void> {
    if (value === undefined) return;
    const t = requireTenant(ctx);
    if (value === t.id || value === t.slug) return;
    if (isPlatform(ctx)) {
      throw new AppError(400, 'tenant_mismatch', `tenant_id must be this tenant (${t.slug}); /admin/api/providers moves deployments between tenants.`, { param: 'tenant_id' });
    }
    if (value === null) {
      await this.d.audit.record(ctx, { action, outcome: 'denied', reason: 'platform_admin_required', target: { type: 'provider_deployment' } });
      throw new AppError(403, 'platform_admin_required', 'Platform-wide provider deployments are made by platform administrators.', { param: 'tenant_id' });
    }
    throw await hidden(this.d, ctx, 'tenant', value, action);
  }

  private async checkApproved(ctx: RequestContext, value: boolean | undefined, action: string, tgt: { type: string; id?: string }): Promise<void> {
    if (value === undefined || isPlatform(ctx)) return;
    await this.d.audit.record(ctx, { action, outcome: 'denied', reason: 'platform_admin_required', target: tgt, details: { field: 'approved' } });
    throw new AppError(403, 'platform_admin_required', "Approval of provider deployments is for platform administrators (a tenant's own deployment is approved when created; use enabled to switch it off).", {
      param: 'approved',
    });
  }
}

const target = (r: DeploymentRow) => ({ type: 'provider_deployment', id: r.id });
