import { z } from 'zod';
import type { PlanCapabilities, Resource } from '../access/authorize.js';
import type { Action } from '../access/permissions.js';
import type { AuditLog } from '../audit/log.js';
import type { Clock } from '../clock.js';
import type { RequestContext } from '../context.js';
import type { MeteringRepo, PlanRow, TenantMeteringRow } from '../db/repos/metering.js';
import { AppError } from '../errors.js';
import { isPlatform } from '../identity/deps.js';
import type { Revision } from '../identity/revision.js';
import { webhookUrlSchema } from './webhooks.js';
import { CAPABILITIES, compactLimits, isTimeZone, limitsSchema, parseLimits, type Capability, type Limits } from './limits.js';

export const DEFAULT_PLAN = 'default';

export interface Plan {
  readonly name: string;
  readonly description: string;
  readonly capabilities: ReadonlySet<Capability>;
  readonly limits: Limits;
  /** null = every model. */
  readonly allowedModels: ReadonlySet<string> | null;
  readonly updatedAt: number;
}

export interface TenantMetering {
  readonly id: string;
  readonly slug: string;
  readonly plan: Plan;
  readonly timezone: string;
  readonly rawRetentionDays: number | null;
  readonly alertThresholds: readonly number[];
  readonly webhookUrl: string | null;
}

export const planInputSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lowercase letters, digits, - and _'),
    description: z.string().max(500).optional(),
    capabilities: z.array(z.enum(CAPABILITIES)).optional(),
    limits: limitsSchema.optional(),
    allowed_models: z.array(z.string().min(1).max(200)).nullable().optional(),
  })
  .strict();
export type PlanInput = z.infer<typeof planInputSchema>;

export const tenantSettingsSchema = z
  .object({
    timezone: z.string().refine(isTimeZone, 'an IANA time zone such as Europe/Berlin').optional(),
    raw_retention_days: z.number().int().min(1).max(36500).nullable().optional(),
    alert_thresholds: z.array(z.number().int().min(1).max(1000)).max(10).optional(),
    webhook_url: webhookUrlSchema.nullable().optional(),
    /** Issue a new signing secret (shown once in the response); the old one stops working. */
    rotate_webhook_secret: z.boolean().optional(),
  })
  .strict();

/** Which capability an action needs (actions not listed need none). */
const ACTION_CAPABILITY: Partial<Record<Action, Capability>> = {
  'batches:write': 'batch_api',
};

/**
 * Capabilities a tenant needs to configure something *itself*: tenant principals (users
 * and keys) are bound by them; platform administrators and the CLI configure on the
 * tenant's behalf whatever its plan.
 */
const SELF_SERVICE_CAPABILITY: Partial<Record<Action, Capability>> = {
  'providers:read': 'custom_providers',
  'providers:write': 'custom_providers',
};

function toPlan(r: PlanRow): Plan {
  let caps: string[] = [];
  let models: string[] | null = null;
  try {
    caps = JSON.parse(r.capabilities);
  } catch {
    /* a broken row grants nothing */
  }
  try {
    models = r.allowedModels ? JSON.parse(r.allowedModels) : null;
  } catch {
    models = [];
  }
  return {
    name: r.name,
    description: r.description,
    capabilities: new Set(caps.filter((c): c is Capability => (CAPABILITIES as readonly string[]).includes(c))),
    limits: parseLimits(r.limits),
    allowedModels: models ? new Set(models) : null,
    updatedAt: r.updatedAt,
  };
}

/**
 * Plans and tenants' plan assignments, cached in memory: the synchronous reads (`get`,
 * `tenant`, `check`, `has` — authorize() and the gateway call them per request) never touch
 * the database. The cache is one snapshot of every plan and every tenant's metering row,
 * loaded by `load()` (awaited at start), reloaded in the background when it is older than
 * 500 ms and read (a plan changed by the identity API does not bump our revision), when the
 * `metering` revision changes in any process, and at once by this process's own writes. A
 * tenant created since the last load is not in it yet: until the reload (already started by
 * that read) lands, its plan is the default plan, which is what a new tenant gets unless it
 * was created with another. Async callers that need the row as it is now use `tenantFresh`.
 */
export class PlanService implements PlanCapabilities {
  private plans = new Map<string, Plan>();
  private tenants = new Map<string, { at: number; value: TenantMetering }>();
  private loadedAt = 0;
  private loading: Promise<void> | undefined;
  private stale = false;
  /** The snapshot is reloaded when a read finds it older than this. */
  private readonly tenantTtlMs = 500;

  constructor(
    private readonly repo: MeteringRepo,
    private readonly revision: Revision,
    private readonly clock: Clock,
    private readonly audit: () => AuditLog | undefined,
    private readonly onError: (e: Error) => void = () => {},
  ) {
    revision.onChange(() => this.clear());
  }

  /** Drops the snapshot's freshness: the next read reloads it (in the background). */
  clear(): void {
    this.loadedAt = 0;
    this.refreshSoon();
  }

  /** Loads (or reloads) every plan and every tenant's metering row. Concurrent calls share one load. */
  load(): Promise<void> {
    if (this.loading !== undefined) {
      // A write landed after the running load read: load again once it ends.
      this.stale = true;
      return this.loading;
    }
    const started = Date.now();
    this.loading = (async () => {
      try {
        const [planRows, tenantRows] = await Promise.all([this.repo.plans(), this.repo.allTenants()]);
        const plans = new Map(planRows.map((r) => [r.name, toPlan(r)]));
        this.plans = plans;
        const tenants = new Map<string, { at: number; value: TenantMetering }>();
        for (const row of tenantRows) tenants.set(row.id, { at: started, value: this.toTenant(row) });
        this.tenants = tenants;
        this.loadedAt = started;
      } finally {
        this.loading = undefined;
      }
      if (this.stale) {
        this.stale = false;
        await this.load();
      }
    })();
    return this.loading;
  }

  private refreshSoon(): void {
    if (this.loading !== undefined) return;
    void this.load().catch((e: Error) => this.onError(e));
  }

  private toTenant(row: TenantMeteringRow): TenantMetering {
    const plan = this.plans.get(row.plan ?? DEFAULT_PLAN) ?? this.plans.get(DEFAULT_PLAN) ?? EMPTY_PLAN;
    let thresholds: number[] = [80, 100];
    try {
      if (row.alertThresholds) thresholds = JSON.parse(row.alertThresholds);
    } catch {
      /* defaults */
    }
    return {
      id: row.id,
      slug: row.slug,
      plan,
      timezone: row.timezone ?? 'UTC',
      rawRetentionDays: row.rawRetentionDays,
      alertThresholds: thresholds,
      webhookUrl: row.webhookUrl,
    };
  }

  get(name: string): Plan | undefined {
    if (Date.now() - this.loadedAt >= this.tenantTtlMs) this.refreshSoon();
    return this.plans.get(name);
  }

  /** Every plan, as stored now. */
  async list(): Promise<Plan[]> {
    return (await this.repo.plans()).map(toPlan);
  }

  /** The tenant's plan, time zone and alert settings from the snapshot (≤ 500 ms stale; see the class comment). */
  tenant(tenantId: string): TenantMetering | undefined {
    if (Date.now() - this.loadedAt >= this.tenantTtlMs) this.refreshSoon();
    return this.tenants.get(tenantId)?.value;
  }

  /** The tenant's metering row at most 500 ms old, read from the database when the snapshot's is older or missing. */
  async tenantFresh(tenantId: string): Promise<TenantMetering | undefined> {
    const now = Date.now();
    const c = this.tenants.get(tenantId);
    if (c && now - Math.max(c.at, this.loadedAt) < this.tenantTtlMs) return c.value;
    if (!this.loadedAt && !this.loading) await this.load().catch((e: Error) => this.onError(e));
    if (!this.plans.size) await this.load();
    const row = await this.repo.tenant(tenantId);
    if (!row) {
      this.tenants.delete(tenantId);
      return undefined;
    }
    const value = this.toTenant(row);
    this.tenants.set(tenantId, { at: now, value });
    return value;
  }

  /** The plan the tenant's requests are held to now (the default plan for a tenant not in the snapshot yet). */
  private planOf(tenantId: string): Plan {
    return this.tenant(tenantId)?.plan ?? this.plans.get(DEFAULT_PLAN) ?? EMPTY_PLAN;
  }

  // ---- PlanCapabilities (authorize() step 5) ------------------------------------------------

  check(ctx: RequestContext, action: Action, resource: Resource): string | undefined {
    if (!ctx.tenant) return undefined;
    const t = { plan: this.planOf(ctx.tenant.id) };
    const cap = ACTION_CAPABILITY[action];
    if (cap && !t.plan.capabilities.has(cap)) return `The tenant's plan (${t.plan.name}) does not include ${cap}.`;
    const selfCap = SELF_SERVICE_CAPABILITY[action];
    if (selfCap && !isPlatform(ctx)) {
      if (!t.plan.capabilities.has(selfCap)) return `The tenant's plan (${t.plan.name}) does not include ${selfCap}.`;
      // A tenant's own public (cloud) deployment needs what calls to public deployments need.
      if (action === 'providers:write' && resource.boundary === 'public' && !t.plan.capabilities.has('cloud_providers')) {
        return `The tenant's plan (${t.plan.name}) does not include cloud_providers, which a public provider deployment needs.`;
      }
    }
    // self_service_keys: without it only tenant owners/admins (and platform admins) create keys.
    if ((action === 'keys:write' || action === 'keys:write_own') && !t.plan.capabilities.has('self_service_keys')) {
      const p = ctx.principal;
      if (p && p.kind !== 'system' && !p.platformAdmin && p.role !== 'owner' && p.role !== 'admin') return `The tenant's plan (${t.plan.name}) does not include self_service_keys.`;
    }
    if (resource.model !== undefined && t.plan.allowedModels && (action === 'models:invoke' || action === 'embeddings:create') && !t.plan.allowedModels.has(resource.model)) {
      return `The tenant's plan (${t.plan.name}) does not include model ${resource.model}.`;
    }
    return undefined;
  }

  /** Capability check for other modules (e.g. cloud_providers at routing, self_service_keys). */
  has(tenantId: string, cap: Capability): boolean {
    return this.planOf(tenantId).capabilities.has(cap);
  }

  // ---- admin --------------------------------------------------------------------------------

  async upsert(ctx: RequestContext, input: PlanInput): Promise<Plan> {
    const now = this.clock.now();
    const before = await this.repo.plan(input.name);
    const prev = before ? toPlan(before) : undefined;
    await this.repo.upsertPlan({
      name: input.name,
      description: input.description ?? prev?.description ?? '',
      capabilities: JSON.stringify(input.capabilities ?? (prev ? [...prev.capabilities] : [...CAPABILITIES])),
      limits: JSON.stringify(compactLimits(input.limits ?? prev?.limits ?? {})),
      allowedModels: input.allowed_models === undefined ? (before?.allowedModels ?? null) : input.allowed_models === null ? null : JSON.stringify(input.allowed_models),
      createdAt: before?.createdAt ?? now,
      updatedAt: now,
    });
    await this.revision.bump();
    await this.load();
    const after = toPlan((await this.repo.plan(input.name))!);
    await this.audit()?.record(ctx, { action: before ? 'plan.update' : 'plan.create', tenantId: null, target: { type: 'plan', id: input.name }, details: { before: prev ? planJson(prev) : null, after: planJson(after) } });
    return after;
  }

  async remove(ctx: RequestContext, name: string): Promise<void> {
    if (name === DEFAULT_PLAN) throw new AppError(409, 'plan_in_use', 'The default plan cannot be deleted.');
    // One transaction: a tenant assigned this plan meanwhile would otherwise point at a deleted plan.
    await this.repo.tx(async () => {
      await this.repo.lockPlan(name); // an assignment running now finishes first, and is counted
      const n = await this.repo.tenantsOnPlan(name);
      if (n) throw new AppError(409, 'plan_in_use', `${n} tenant(s) use plan ${name}; assign them another plan first.`);
      if (!(await this.repo.deletePlan(name))) throw new AppError(404, 'plan_not_found', `Plan ${name} does not exist.`);
    });
    await this.revision.bump();
    await this.load();
    await this.audit()?.record(ctx, { action: 'plan.delete', tenantId: null, target: { type: 'plan', id: name } });
  }

  /** Assigns a plan to a tenant (audited; every process sees it within the revision poll, < 1 s). */
  async assign(ctx: RequestContext, tenantId: string, plan: string | null): Promise<void> {
    // One transaction: the plan cannot be deleted between the check and the assignment.
    const before = await this.repo.tx(async () => {
      if (plan !== null && !(await this.repo.lockPlan(plan))) throw new AppError(404, 'plan_not_found', `Plan ${plan} does not exist.`, { param: 'plan' });
      const row = await this.repo.tenant(tenantId);
      if (!row) throw new AppError(404, 'not_found', 'tenant not found');
      await this.repo.setTenantPlan(tenantId, plan, this.clock.now());
      return row;
    });
    await this.revision.bump();
    await this.load();
    await this.audit()?.record(ctx, { action: 'tenant.plan', tenantId, target: { type: 'tenant', id: tenantId }, details: { before: before.plan ?? DEFAULT_PLAN, after: plan ?? DEFAULT_PLAN } });
  }

  async updateTenantSettings(ctx: RequestContext, tenantId: string, input: z.infer<typeof tenantSettingsSchema>): Promise<TenantMetering> {
    // Read-modify-write of the settings row: one transaction, so two concurrent updates of different fields both land.
    const next = await this.repo.tx(async () => {
      await this.repo.lockTenant(tenantId);
      const cur = await this.repo.tenant(tenantId);
      if (!cur) throw new AppError(404, 'not_found', 'tenant not found');
      const row = {
        tenantId,
        timezone: input.timezone ?? cur.timezone ?? 'UTC',
        rawRetentionDays: input.raw_retention_days === undefined ? cur.rawRetentionDays : input.raw_retention_days,
        alertThresholds: JSON.stringify(input.alert_thresholds ?? (cur.alertThresholds ? JSON.parse(cur.alertThresholds) : [80, 100])),
        webhookUrl: input.webhook_url === undefined ? cur.webhookUrl : input.webhook_url,
        updatedAt: this.clock.now(),
      };
      await this.repo.upsertSettings(row);
      return row;
    });
    await this.revision.bump();
    await this.load();
    await this.audit()?.record(ctx, { action: 'tenant.metering_settings', tenantId, target: { type: 'tenant', id: tenantId }, details: { after: { ...next, webhookUrl: next.webhookUrl ? '(set)' : null } } });
    return (await this.tenantFresh(tenantId))!;
  }
}

const EMPTY_PLAN: Plan = { name: DEFAULT_PLAN, description: '', capabilities: new Set(CAPABILITIES), limits: {}, allowedModels: null, updatedAt: 0 };

export function planJson(p: Plan) {
  return {
    name: p.name,
    description: p.description,
    capabilities: [...p.capabilities].sort(),
    limits: compactLimits(p.limits),
    allowed_models: p.allowedModels ? [...p.allowedModels] : null,
  };
}
