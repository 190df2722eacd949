import { and, count, eq, gt, isNull, or, sql } from 'drizzle-orm';
import type { Entitlements } from '../access/entitlements.js';
import type { Store } from '../db/store.js';
import { AppError } from '../errors.js';
import { parseLimits } from '../metering/limits.js';

/**
 * The growth check of key creation: one more active key must fit under the tenant plan's
 * `max_keys` (level `tenant`, counted in the tenant) and the licence's key limit (level
 * `licence`, counted on the whole installation). Every level applies; when both are full the
 * refusal names the licence (a bigger plan would not help). The refusal is a 409 `key_limit`
 * naming the level, like quota refusals:
 *
 *   {"error":{"code":"key_limit","type":"conflict_error","level":"tenant","limit":"max_keys","limit_value":5,"current":5,…}}
 *
 * A rotation replaces a key, so the key it rotates is not counted.
 */
export class KeyGrowth {
  constructor(
    private readonly store: Store,
    private readonly entitlements: () => Entitlements,
  ) {}

  private async activeKeys(now: number, tenantId?: string): Promise<number> {
    const { q, t } = this.store;
    const k = t.apiKeys;
    const live = and(tenantId !== undefined ? eq(k.tenantId, tenantId) : undefined, isNull(k.revokedAt), or(isNull(k.expiresAt), gt(k.expiresAt, now)));
    return (await this.store.one(q.select({ n: count() }).from(k).where(live)))?.n ?? 0;
  }

  /** The tenant's plan limits, read fresh at each creation (rare): a plan change applies at once, in the CLI too. */
  private async planLimits(tenantId: string): Promise<string | undefined> {
    const { q, t } = this.store;
    const row = await this.store.one(
      q
        .select({ limits: t.plans.limits })
        .from(t.tenants)
        .innerJoin(t.plans, eq(t.plans.name, sql`COALESCE(${t.tenants.plan}, 'default')`))
        .where(eq(t.tenants.id, tenantId)),
    );
    return row?.limits;
  }

  /**
   * The refusal for one more key in `tenantId` at `now`, or undefined. Call it in the
   * transaction that inserts the key, so two creations at the limit do not both pass.
   */
  async check(tenantId: string, now: number, opts: { replacing?: boolean } = {}): Promise<AppError | undefined> {
    const minus = opts.replacing ? 1 : 0;
    const all = Math.max(0, (await this.activeKeys(now)) - minus);
    const lic = this.entitlements().checkGrowth('keys', all);
    if (lic) {
      // The licence's own refusal (key_limit, or license_lapsed), with the level named.
      const details = lic.code === 'key_limit' ? { level: 'licence', limit: 'max_keys', limit_value: lic.details?.limit, current: lic.details?.current ?? all } : { ...lic.details, level: 'licence' };
      return new AppError(lic.status, lic.code, lic.message, { type: lic.type, details, ...(lic.headers ? { headers: { ...lic.headers } } : {}) });
    }
    const max = parseLimits(await this.planLimits(tenantId)).max_keys;
    if (typeof max !== 'number') return undefined;
    const current = Math.max(0, (await this.activeKeys(now, tenantId)) - minus);
    if (current < max) return undefined;
    return new AppError(409, 'key_limit', `The tenant's plan allows ${max} active API key${max === 1 ? '' : 's'}; ${current} ${current === 1 ? 'is' : 'are'} in use. Revoke a key or ask for a bigger plan.`, {
      type: 'conflict_error',
      details: { level: 'tenant', limit: 'max_keys', limit_value: max, current },
    });
  }
}
