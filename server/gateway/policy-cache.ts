import { eq, inArray } from 'drizzle-orm';
import type { Classification, RequestContext } from '../context.js';
import type { Store } from '../db/store.js';
import type { TenantStore } from '../db/tenant-store.js';
import { AppError } from '../errors.js';
import { parseInput as parse } from '../http/parse-input.js';
import { parsePolicy, policySchema, type TenantPolicy } from '../routing/policy.js';
import type { Revision } from '../identity/revision.js';
import { CACHE_SETTING, parseCacheSettings, type CacheSettings } from './cache/settings.js';
import { CONTENT_LOGGING_SETTING, parseContentLogging, type ContentLogging } from './content-log.js';

export const POLICY_SETTING = 'gateway.policy';
const GATEWAY_KEYS = [POLICY_SETTING, CONTENT_LOGGING_SETTING, CACHE_SETTING];

interface Entry {
  policy: TenantPolicy;
  tenantDefault: Classification;
  contentLogging: ContentLogging;
  /** The response cache setting (server/gateway/cache/settings.ts), read on the call path. */
  cache: CacheSettings;
}

/**
 * Tenant policies (tenant setting `gateway.policy`), content logging (`gateway.content_logging`,
 * compiled into the policy so a call reads it with the policy) and tenant default
 * classifications, cached per tenant; the cache is dropped when the gateway or identity
 * revision moves. A cache hit reads no database and does not wait (ready() is undefined).
 */
export class PolicyCache {
  private readonly cache = new Map<string, Entry>();

  constructor(
    private readonly store: Store,
    private readonly data: TenantStore,
    private readonly revision: Revision,
  ) {}

  clear(): void {
    this.cache.clear();
  }

  /**
   * Loads the tenant's entry unless it is cached: undefined when cached (the AI-call path then
   * reads it synchronously with get() and pays no microtask), else a Promise to await first.
   */
  ready(ctx: RequestContext): Promise<Entry> | undefined {
    return this.cache.has(ctx.tenant!.id) ? undefined : this.load(ctx);
  }

  /** The cached entry; ready(ctx) must have been awaited (the planner runs after it). */
  get(ctx: RequestContext): Readonly<Entry> {
    const e = this.cache.get(ctx.tenant!.id);
    if (!e) throw new Error('PolicyCache.get before ready(): await policies.ready(ctx) first');
    return e;
  }

  /** The tenant's entry, loading it when it is not cached (admin pages and the chat UI). */
  async load(ctx: RequestContext): Promise<Readonly<Entry>> {
    const tenantId = ctx.tenant!.id;
    const cached = this.cache.get(tenantId);
    if (cached) return cached;
    const { q, t } = this.store;
    const [rows, tenant] = await Promise.all([
      this.data.tenantSettings.list(ctx, (s) => inArray(s.key, GATEWAY_KEYS)),
      this.store.one(q.select({ c: t.tenants.defaultClassification }).from(t.tenants).where(eq(t.tenants.id, tenantId))),
    ]);
    const value = (key: string) => rows.find((r) => r.key === key)?.value;
    const contentLogging = parseContentLogging(value(CONTENT_LOGGING_SETTING));
    const e: Entry = {
      policy: parsePolicy(value(POLICY_SETTING), contentLogging.enabled ? { retentionDays: contentLogging.retentionDays } : null),
      tenantDefault: tenant?.c ?? 'internal',
      contentLogging,
      cache: parseCacheSettings(value(CACHE_SETTING)),
    };
    this.cache.set(tenantId, e);
    return e;
  }

  /** The tenant's content logging setting (server/gateway/content-log.ts). */
  async contentLogging(ctx: RequestContext): Promise<ContentLogging> {
    return (await this.load(ctx)).contentLogging;
  }

  async writeContentLogging(ctx: RequestContext, v: ContentLogging, now: number): Promise<void> {
    const value = JSON.stringify({ enabled: v.enabled, retention_days: v.retentionDays });
    await this.data.tenantSettings.upsert(ctx, { key: CONTENT_LOGGING_SETTING, value, updatedAt: now }, (s) => [s.key], { value, updatedAt: now });
    await this.revision.bump();
  }

  /** The stored policy input (admin API). */
  async read(ctx: RequestContext): Promise<unknown> {
    return (await this.load(ctx)).policy.input;
  }

  async write(ctx: RequestContext, raw: unknown, now: number): Promise<unknown> {
    const p = parse(policySchema, raw);
    if (!ctx.tenant) throw new AppError(400, 'tenant_required', 'Choose a tenant first.');
    // The obsolete policy flag never stored anything; content logging is its own setting now.
    if (p.contentLogging === true) {
      throw new AppError(400, 'invalid_request', 'contentLogging is no longer part of the policy: use PUT /admin/api/tenants/:id/content-logging {"enabled":true}.', { param: 'contentLogging' });
    }
    delete p.contentLogging;
    const value = JSON.stringify(p);
    await this.data.tenantSettings.upsert(ctx, { key: POLICY_SETTING, value, updatedAt: now }, (s) => [s.key], { value, updatedAt: now });
    await this.revision.bump();
    return p;
  }
}
