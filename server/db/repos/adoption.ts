import { sql } from 'drizzle-orm';
import type { RequestContext } from '../../context.js';
import { requireTenant } from '../../context.js';
import type { Db } from '../connection.js';

/**
 * Adoption (issue 21: "which team is adopting the platform?"): distinct people who made at
 * least one AI call, per day and per week, from the usage rollups (kept when raw usage records
 * are purged). Calls made with a key that has no owner count for nobody. Tenant-scoped.
 */
export class AdoptionRepo {
  constructor(private readonly db: Db) {}

  /** `offsetMs` moves rollup hours into the tenant's wall clock (days and weeks in its time zone). */
  activeByDay(ctx: RequestContext, from: number, to: number, offsetMs: number): { day: string; users: number }[] {
    const t = requireTenant(ctx).id;
    return this.db.all<{ day: string; users: number }>(sql`
      SELECT strftime('%Y-%m-%d', (hour + ${offsetMs}) / 1000, 'unixepoch') AS day, count(DISTINCT user_id) AS users
      FROM usage_rollups WHERE tenant_id = ${t} AND hour >= ${from} AND hour < ${to} AND user_id <> '' AND requests > 0
      GROUP BY day ORDER BY day`);
  }
  /** Weeks start on Monday. */
  activeByWeek(ctx: RequestContext, from: number, to: number, offsetMs: number): { week: string; users: number }[] {
    const t = requireTenant(ctx).id;
    return this.db.all<{ week: string; users: number }>(sql`
      SELECT date((hour + ${offsetMs}) / 1000, 'unixepoch', '-6 days', 'weekday 1') AS week, count(DISTINCT user_id) AS users
      FROM usage_rollups WHERE tenant_id = ${t} AND hour >= ${from} AND hour < ${to} AND user_id <> '' AND requests > 0
      GROUP BY week ORDER BY week`);
  }
  activeIn(ctx: RequestContext, from: number, to: number): number {
    const t = requireTenant(ctx).id;
    return this.db.all<{ n: number }>(sql`SELECT count(DISTINCT user_id) AS n FROM usage_rollups WHERE tenant_id = ${t} AND hour >= ${from} AND hour < ${to} AND user_id <> '' AND requests > 0`)[0]?.n ?? 0;
  }
  /** Members with an active account. */
  members(ctx: RequestContext): number {
    const t = requireTenant(ctx).id;
    return this.db.all<{ n: number }>(sql`SELECT count(*) AS n FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.tenant_id = ${t} AND u.status = 'active'`)[0]?.n ?? 0;
  }
}
