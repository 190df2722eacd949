import { eq, sql } from 'drizzle-orm';
import type { Classification, RequestContext } from '../context.js';
import type { Db } from '../db/connection.js';
import type { TenantData } from '../db/tenant-scope.js';
import { tenants } from '../db/schema.js';
import { AppError } from '../errors.js';
import { parseInput as parse } from '../http/parse-input.js';
import { parsePolicy, policySchema, type TenantPolicy } from '../routing/policy.js';
import type { Revision } from '../identity/revision.js';
import { CONTENT_LOGGING_SETTING, parseContentLogging, type ContentLogging } from './content-log.js';

export const POLICY_SETTING = 'gateway.policy';
const KEY_IS_POLICY = sql`key = ${POLICY_SETTING}`;
const KEY_IS_CONTENT_LOGGING = sql`key = ${CONTENT_LOGGING_SETTING}`;
const GATEWAY_KEYS = sql`key IN (${POLICY_SETTING}, ${CONTENT_LOGGING_SETTING})`;

interface Entry {
  policy: TenantPolicy;
  tenantDefault: Classification;
  contentLogging: ContentLogging;
}

/**
 * Tenant policies (tenant setting `gateway.policy`), content logging (`gateway.content_logging`,
 * compiled into the policy so a call reads it with the policy) and tenant default
 * classifications, cached per tenant; the cache is dropped when the gateway or identity
 * revision moves. A cache hit reads no SQLite.
 */
export class PolicyCache {
  private readonly cache = new Map<string, Entry>();

  constructor(
    private readonly db: Db,
    private readonly data: TenantData,
    private readonly revision: Revision,
  ) {}

  clear(): void {
    this.cache.clear();
  }

  get(ctx: RequestContext): Readonly<Entry> {
    const tenantId = ctx.tenant!.id;
    let e = this.cache.get(tenantId);
    if (!e) {
      const rows = this.data.tenantSettings.list(ctx, GATEWAY_KEYS);
      const value = (key: string) => rows.find((r) => r.key === key)?.value;
      const contentLogging = parseContentLogging(value(CONTENT_LOGGING_SETTING));
      const t = this.db.select({ c: tenants.defaultClassification }).from(tenants).where(eq(tenants.id, tenantId)).get();
      e = {
        policy: parsePolicy(value(POLICY_SETTING), contentLogging.enabled ? { retentionDays: contentLogging.retentionDays } : null),
        tenantDefault: t?.c ?? 'internal',
        contentLogging,
      };
      this.cache.set(tenantId, e);
    }
    return e;
  }

  /** The tenant's content logging setting (server/gateway/content-log.ts). */
  contentLogging(ctx: RequestContext): ContentLogging {
    return this.get(ctx).contentLogging;
  }

  writeContentLogging(ctx: RequestContext, v: ContentLogging, now: number): void {
    const value = JSON.stringify({ enabled: v.enabled, retention_days: v.retentionDays });
    if (!this.data.tenantSettings.update(ctx, KEY_IS_CONTENT_LOGGING, { value, updatedAt: now })) {
      this.data.tenantSettings.insert(ctx, { key: CONTENT_LOGGING_SETTING, value, updatedAt: now });
    }
    this.revision.bump();
  }

  /** The stored policy input (admin API). */
  read(ctx: RequestContext): unknown {
    return this.get(ctx).policy.input;
  }

  write(ctx: RequestContext, raw: unknown, now: number): unknown {
    const p = parse(policySchema, raw);
    if (!ctx.tenant) throw new AppError(400, 'tenant_required', 'Choose a tenant first.');
    // The obsolete policy flag never stored anything; content logging is its own setting now.
    if (p.contentLogging === true) {
      throw new AppError(400, 'invalid_request', 'contentLogging is no longer part of the policy: use PUT /admin/api/tenants/:id/content-logging {"enabled":true}.', { param: 'contentLogging' });
    }
    delete p.contentLogging;
    const value = JSON.stringify(p);
    if (!this.data.tenantSettings.update(ctx, KEY_IS_POLICY, { value, updatedAt: now })) {
      this.data.tenantSettings.insert(ctx, { key: POLICY_SETTING, value, updatedAt: now });
    }
    this.revision.bump();
    return p;
  }
}

