import { eq, sql } from 'drizzle-orm';
import type { Classification, RequestContext } from '../context.js';
import type { Db } from '../db/connection.js';
import type { TenantData } from '../db/tenant-scope.js';
import { tenants } from '../db/schema.js';
import { AppError } from '../errors.js';
import { parseInput as parse } from '../http/parse-input.js';
import { parsePolicy, policySchema, type TenantPolicy } from '../routing/policy.js';
import type { Revision } from '../identity/revision.js';

export const POLICY_SETTING = 'gateway.policy';
const KEY_IS_POLICY = sql`key = ${POLICY_SETTING}`;

/**
 * Tenant policies (tenant setting `gateway.policy`) and tenant default classifications,
 * cached per tenant; the cache is dropped when the gateway or identity revision moves.
 * A cache hit reads no SQLite.
 */
export class PolicyCache {
  private readonly cache = new Map<string, { policy: TenantPolicy; tenantDefault: Classification }>();

  constructor(
    private readonly db: Db,
    private readonly data: TenantData,
    private readonly revision: Revision,
  ) {}

  clear(): void {
    this.cache.clear();
  }

  get(ctx: RequestContext): { policy: TenantPolicy; tenantDefault: Classification } {
    const tenantId = ctx.tenant!.id;
    let e = this.cache.get(tenantId);
    if (!e) {
      const row = this.data.tenantSettings.get(ctx, KEY_IS_POLICY);
      const t = this.db.select({ c: tenants.defaultClassification }).from(tenants).where(eq(tenants.id, tenantId)).get();
      e = { policy: parsePolicy(row?.value), tenantDefault: t?.c ?? 'internal' };
      this.cache.set(tenantId, e);
    }
    return e;
  }

  /** The stored policy input (admin API). */
  read(ctx: RequestContext): unknown {
    return this.get(ctx).policy.input;
  }

  write(ctx: RequestContext, raw: unknown, now: number): unknown {
    const p = parse(policySchema, raw);
    if (!ctx.tenant) throw new AppError(400, 'tenant_required', 'Choose a tenant first.');
    const value = JSON.stringify(p);
    if (!this.data.tenantSettings.update(ctx, KEY_IS_POLICY, { value, updatedAt: now })) {
      this.data.tenantSettings.insert(ctx, { key: POLICY_SETTING, value, updatedAt: now });
    }
    this.revision.bump();
    return p;
  }
}

