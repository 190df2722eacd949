import { and, count, countDistinct, eq, gt, gte, lt, ne, type SQL, sql } from 'drizzle-orm';
import type { RequestContext } from '../../context.js';
import { requireTenant } from '../../context.js';
import type { Store } from '../store.js';

/**
 * Adoption (issue 21: "which team is adopting the platform?"): distinct people who made at
 * least one AI call, per day and per week, from the usage rollups (kept when raw usage records
 * are purged). Calls made with a key that has no owner count for nobody. Tenant-scoped (an
 * explicit tenant condition on every query), on either dialect.
 *
 * Days and weeks are those of the tenant's wall clock: the service passes the time zone's
 * offset (`offsetMs`, at the end of the period), which moves each rollup hour before it is
 * cut into a UTC day. The day expression is dialect-specific SQL (SQLite's strftime/date,
 * PostgreSQL's to_char/date_trunc) with the same result: YYYY-MM-DD, weeks starting on Monday.
 */
export class AdoptionRepo {
  constructor(private readonly store: Store) {}

  /** The rollup hour moved by `offsetMs`, as a UTC day (YYYY-MM-DD) or its week's Monday. */
  private dayOf(offsetMs: number, unit: 'day' | 'week'): SQL<string> {
    const hour = this.store.t.usageRollups.hour;
    // A literal, not a parameter: the same expression is selected and grouped by, and
    // PostgreSQL matches GROUP BY expressions only when their parameters are the same ones.
    const off = sql.raw(String(Math.trunc(offsetMs)));
    if (this.store.dialect === 'postgres') {
      // timestamptz + interval, read in UTC; date_trunc('week') is the ISO week's Monday.
      const local = sql`((${hour} + ${off}::bigint * interval '1 millisecond') AT TIME ZONE 'UTC')`;
      return unit === 'day' ? sql<string>`to_char(${local}, 'YYYY-MM-DD')` : sql<string>`to_char(date_trunc('week', ${local}), 'YYYY-MM-DD')`;
    }
    // Hours and offsets are whole seconds, so the integer division loses nothing.
    return unit === 'day' ? sql<string>`strftime('%Y-%m-%d', (${hour} + ${off}) / 1000, 'unixepoch')` : sql<string>`date((${hour} + ${off}) / 1000, 'unixepoch', '-6 days', 'weekday 1')`;
  }

  /** Rollups of the tenant in [from, to) with at least one request by a person. */
  private active(ctx: RequestContext, from: number, to: number): SQL | undefined {
    const r = this.store.t.usageRollups;
    return and(eq(r.tenantId, requireTenant(ctx).id), gte(r.hour, from), lt(r.hour, to), ne(r.userId, ''), gt(r.requests, 0));
  }

  private async activeBy(ctx: RequestContext, from: number, to: number, offsetMs: number, unit: 'day' | 'week'): Promise<{ key: string; users: number }[]> {
    const r = this.store.t.usageRollups;
    const key = this.dayOf(offsetMs, unit);
    return this.store.all(
      this.store.q
        .select({ key, users: countDistinct(r.userId) })
        .from(r)
        .where(this.active(ctx, from, to))
        .groupBy(key)
        .orderBy(key),
    );
  }

  /** `offsetMs` moves rollup hours into the tenant's wall clock (days and weeks in its time zone). */
  async activeByDay(ctx: RequestContext, from: number, to: number, offsetMs: number): Promise<{ day: string; users: number }[]> {
    return (await this.activeBy(ctx, from, to, offsetMs, 'day')).map((r) => ({ day: r.key, users: r.users }));
  }
  /** Weeks start on Monday. */
  async activeByWeek(ctx: RequestContext, from: number, to: number, offsetMs: number): Promise<{ week: string; users: number }[]> {
    return (await this.activeBy(ctx, from, to, offsetMs, 'week')).map((r) => ({ week: r.key, users: r.users }));
  }
  async activeIn(ctx: RequestContext, from: number, to: number): Promise<number> {
    const r = this.store.t.usageRollups;
    return (await this.store.one(this.store.q.select({ n: countDistinct(r.userId) }).from(r).where(this.active(ctx, from, to))))?.n ?? 0;
  }
  /** Members with an active account. */
  async members(ctx: RequestContext): Promise<number> {
    const { memberships: m, users: u } = this.store.t;
    const row = await this.store.one(
      this.store.q
        .select({ n: count() })
        .from(m)
        .innerJoin(u, eq(u.id, m.userId))
        .where(and(eq(m.tenantId, requireTenant(ctx).id), eq(u.status, 'active'))),
    );
    return row?.n ?? 0;
  }
}
