import { and, count, eq, gte, isNotNull, sum } from 'drizzle-orm';
import type { AuditLog } from '../../audit/log.js';
import { requireTenant, type RequestContext } from '../../context.js';
import type { Store } from '../../db/store.js';
import type { TenantStore } from '../../db/tenant-store.js';
import type { Revision } from '../../identity/revision.js';
import type { PolicyCache } from '../policy-cache.js';
import type { CacheRedis } from './redis-store.js';
import { CACHE_SETTING, cacheSettingsJson, mergeCacheSettings, type CacheSettings, type CacheSettingsInput } from './settings.js';

const DAY = 86_400_000;

export interface CacheStats {
  readonly days: number;
  readonly hits: number;
  readonly misses: number;
  readonly bypasses: number;
  /** hits / (hits + misses); null before the first lookup. */
  readonly hit_ratio: number | null;
  readonly saved_cost_micros: number;
  /** The tenant's encrypted bytes in Redis now; null when Redis does not answer. */
  readonly stored_bytes: number | null;
}

/**
 * The response cache as tenant administrators manage it: the setting (audited, both ways),
 * the effect (hits, misses and the saved cost from the tenant's usage records), and a purge.
 * Turning the cache off (for the tenant and every key) drops the tenant's entries at once.
 */
export class CacheAdmin {
  constructor(
    private readonly d: {
      readonly store: Store;
      readonly tenantStore: TenantStore;
      readonly policies: PolicyCache;
      readonly revision: Revision;
      readonly audit: AuditLog;
      readonly redis: CacheRedis | undefined;
      /** Writes pending usage records first, so the stats include calls that just finished. */
      readonly flushUsage: () => Promise<void>;
    },
  ) {}

  async settings(ctx: RequestContext): Promise<CacheSettings> {
    return (await this.d.policies.load(ctx)).cache;
  }

  async update(ctx: RequestContext, input: CacheSettingsInput): Promise<CacheSettings> {
    const tenantId = requireTenant(ctx).id;
    const before = await this.settings(ctx);
    const after = mergeCacheSettings(before, input);
    const value = JSON.stringify(cacheSettingsJson(after));
    const now = ctx.clock.now();
    await this.d.tenantStore.tenantSettings.upsert(ctx, { key: CACHE_SETTING, value, updatedAt: now }, (s) => [s.key], { value, updatedAt: now });
    await this.d.revision.bump(); // every process drops its cached policy entry (and with it this setting)
    const off = !after.enabled && !Object.values(after.keys).some(Boolean);
    const purged = off ? await this.purgeQuietly(ctx) : undefined;
    await this.d.audit.record(ctx, {
      action: 'tenant.response_cache',
      target: { type: 'tenant', id: tenantId },
      details: { before: cacheSettingsJson(before), after: cacheSettingsJson(after), ...(purged ? { entries_purged: purged } : {}) },
    });
    return after;
  }

  /** Drops every entry of the tenant (audited). */
  async purge(ctx: RequestContext): Promise<number> {
    const tenantId = requireTenant(ctx).id;
    if (!this.d.redis) return 0;
    const n = await this.d.redis.purge(tenantId);
    await this.d.audit.record(ctx, { action: 'tenant.response_cache.purge', target: { type: 'tenant', id: tenantId }, details: { entries: n } });
    return n;
  }

  private async purgeQuietly(ctx: RequestContext): Promise<number | undefined> {
    try {
      return await this.d.redis?.purge(requireTenant(ctx).id);
    } catch (e) {
      // The entries expire with their TTL; the setting already stops every lookup.
      ctx.log.warn({ err: (e as Error).message }, 'could not purge the response cache (redis unavailable)');
      return undefined;
    }
  }

  /** The cache's effect over the last `days` days, from the tenant's usage records. */
  async stats(ctx: RequestContext, days: number): Promise<CacheStats> {
    const tenantId = requireTenant(ctx).id;
    await this.d.flushUsage();
    // The tenant store's own table (SQLite or PostgreSQL), filtered by the context's tenant.
    const u = this.d.tenantStore.usageRecords.table;
    const { q } = this.d.store;
    const rows = await this.d.store.all(
      q
        .select({ cache: u.cache, n: count(), saved: sum(u.savedCostMicros) })
        .from(u)
        .where(and(eq(u.tenantId, tenantId), gte(u.createdAt, ctx.clock.now() - days * DAY), isNotNull(u.cache)))
        .groupBy(u.cache),
    );
    const by = (c: string) => rows.find((r) => r.cache === c);
    const hits = Number(by('hit')?.n ?? 0);
    const misses = Number(by('miss')?.n ?? 0);
    let stored: number | null = null;
    try {
      stored = this.d.redis ? await this.d.redis.bytes(tenantId) : 0;
    } catch {
      stored = null;
    }
    return {
      days,
      hits,
      misses,
      bypasses: Number(by('bypass')?.n ?? 0),
      hit_ratio: hits + misses ? hits / (hits + misses) : null,
      saved_cost_micros: Number(by('hit')?.saved ?? 0),
      stored_bytes: stored,
    };
  }
}
