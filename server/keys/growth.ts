import type { Entitlements } from '../access/entitlements.js';
import type { Statement } from 'better-sqlite3';
import type { Db } from '../db/connection.js';
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
  private stmts: { planLimits: Statement; tenantKeys: Statement; allKeys: Statement } | undefined;

  constructor(
    private readonly db: Db,
    private readonly entitlements: () => Entitlements,
  ) {}

  /** Prepared on first use (the CLI builds the services before it looks at the schema). */
  private get s(): { planLimits: Statement; tenantKeys: Statement; allKeys: Statement } {
    const c = this.db.$client;
    return (this.stmts ??= {
      // Read fresh at each creation (rare): a plan change applies at once, in the CLI too.
      planLimits: c.prepare(`SELECT p.limits FROM tenants t JOIN plans p ON p.name = COALESCE(t.plan, 'default') WHERE t.id = ?`).pluck(),
      tenantKeys: c.prepare('SELECT COUNT(*) FROM api_keys WHERE tenant_id = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)').pluck(),
      allKeys: c.prepare('SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)').pluck(),
    });
  }

  /** The refusal for one more key in `tenantId` at `now`, or undefined. */
  check(tenantId: string, now: number, opts: { replacing?: boolean } = {}): AppError | undefined {
    const minus = opts.replacing ? 1 : 0;
    const all = Math.max(0, (this.s.allKeys.get(now) as number) - minus);
    const lic = this.entitlements().checkGrowth('keys', all);
    if (lic) {
      // The licence's own refusal (key_limit, or license_lapsed), with the level named.
      const details = lic.code === 'key_limit' ? { level: 'licence', limit: 'max_keys', limit_value: lic.details?.limit, current: lic.details?.current ?? all } : { ...lic.details, level: 'licence' };
      return new AppError(lic.status, lic.code, lic.message, { type: lic.type, details, ...(lic.headers ? { headers: { ...lic.headers } } : {}) });
    }
    const raw = this.s.planLimits.get(tenantId) as string | undefined;
    const max = parseLimits(raw).max_keys;
    if (typeof max !== 'number') return undefined;
    const current = Math.max(0, (this.s.tenantKeys.get(tenantId, now) as number) - minus);
    if (current < max) return undefined;
    return new AppError(409, 'key_limit', `The tenant's plan allows ${max} active API key${max === 1 ? '' : 's'}; ${current} ${current === 1 ? 'is' : 'are'} in use. Revoke a key or ask for a bigger plan.`, {
      type: 'conflict_error',
      details: { level: 'tenant', limit: 'max_keys', limit_value: max, current },
    });
  }
}
