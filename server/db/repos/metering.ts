import { and, asc, count, desc, eq, gte, isNotNull, isNull, lt, or, type SQL, sql } from 'drizzle-orm';
import { isUniqueViolation, type Store } from '../store.js';

export interface PlanRow {
  name: string;
  description: string;
  capabilities: string;
  limits: string;
  allowedModels: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface PriceRow {
  version: number;
  model: string;
  deploymentId: string;
  inputMicrosPerMTok: number;
  outputMicrosPerMTok: number;
  requestMicros: number;
  currency: string;
  source: string;
  createdBy: string | null;
  createdAt: number;
}

export interface TenantMeteringRow {
  id: string;
  slug: string;
  plan: string | null;
  timezone: string | null;
  rawRetentionDays: number | null;
  alertThresholds: string | null;
  webhookUrl: string | null;
}

export interface RollupGroupRow {
  group: string | null;
  day?: string;
  requests: number;
  errors: number;
  promptTokens: number;
  completionTokens: number;
  costMicros: number;
}

export interface NotificationRow {
  id: string;
  tenantId: string;
  window: string;
  limitName: string;
  threshold: number;
  used: number;
  limitValue: number;
  createdAt: number;
  dismissedAt: number | null;
  webhookDeliveredAt: number | null;
}

export type GroupBy = 'model' | 'user' | 'key' | 'provider' | 'boundary' | 'day' | 'none';

/**
 * SQL for metering: plans and prices (platform tables), per-user/key limits, tenant metering
 * settings, rollups, notifications and raw-record retention, on the async store (SQLite or
 * PostgreSQL). The tenant-owned tables here are read and written by tenant id rather than
 * through the tenant store's request context: their callers are mostly not requests (the
 * admission path, quota alerts, the webhook job, the retention timer, the quota gauge) and
 * each passes the tenant id it took from a request context or from the row it works on.
 */
export class MeteringRepo {
  constructor(private readonly store: Store) {}

  private get q() {
    return this.store.q;
  }
  private get t() {
    return this.store.t;
  }

  /** Runs `fn` in one transaction (every repository call inside joins it). */
  tx<T>(fn: () => Promise<T>): Promise<T> {
    return this.store.tx(fn);
  }

  /**
   * Locks a plan's row for the rest of the transaction (a no-op update: a row lock on
   * PostgreSQL; SQLite's transaction already holds the write lock). 0 = no such plan.
   */
  lockPlan(name: string): Promise<number> {
    const p = this.t.plans;
    return this.store.run(this.q.update(p).set({ name: sql`${p.name}` }).where(eq(p.name, name)));
  }
  /** Locks a tenant's row for the rest of the transaction (see lockPlan). 0 = no such tenant. */
  lockTenant(id: string): Promise<number> {
    const t = this.t.tenants;
    return this.store.run(this.q.update(t).set({ updatedAt: sql`${t.updatedAt}` }).where(eq(t.id, id)));
  }

  // plans
  plans(): Promise<PlanRow[]> {
    const p = this.t.plans;
    return this.store.all(this.q.select().from(p).orderBy(asc(p.name)));
  }
  plan(name: string): Promise<PlanRow | undefined> {
    const p = this.t.plans;
    return this.store.one(this.q.select().from(p).where(eq(p.name, name)));
  }
  async upsertPlan(row: PlanRow): Promise<void> {
    const p = this.t.plans;
    const { name: _n, createdAt: _c, ...set } = row;
    await this.store.run(this.q.insert(p).values(row).onConflictDoUpdate({ target: p.name, set }));
  }
  deletePlan(name: string): Promise<number> {
    return this.store.run(this.q.delete(this.t.plans).where(eq(this.t.plans.name, name)));
  }
  async tenantsOnPlan(name: string): Promise<number> {
    const t = this.t.tenants;
    return (await this.store.one(this.q.select({ n: count() }).from(t).where(eq(t.plan, name))))?.n ?? 0;
  }

  // prices
  /** The newest version of every (model, deployment) pair. */
  currentPrices(): Promise<PriceRow[]> {
    const p = this.t.prices;
    const newest = sql`${p.version} = (SELECT MAX(q.version) FROM prices q WHERE q.model = ${p.model} AND q.deployment_id = ${p.deploymentId})`;
    return this.store.all(this.q.select().from(p).where(newest).orderBy(asc(p.model), asc(p.deploymentId)));
  }
  priceHistory(model: string): Promise<PriceRow[]> {
    const p = this.t.prices;
    return this.store.all(this.q.select().from(p).where(eq(p.model, model)).orderBy(asc(p.version)));
  }
  /**
   * Inserts the next version (one statement: MAX(version) + 1). Two writers racing for the
   * same version (PostgreSQL replicas) collide on the primary key; the loser retries.
   */
  async insertPrice(row: Omit<PriceRow, 'version'>): Promise<number> {
    const p = this.t.prices;
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await this.store.one(
          this.q
            .insert(p)
            .values({ ...row, version: sql`(SELECT COALESCE(MAX(version), 0) + 1 FROM prices)` })
            .returning({ version: p.version }),
        );
        return r!.version;
      } catch (e) {
        if (attempt >= 5 || !isUniqueViolation(e)) throw e;
      }
    }
  }
  async priceCount(): Promise<number> {
    return (await this.store.one(this.q.select({ n: count() }).from(this.t.prices)))?.n ?? 0;
  }

  // tenants
  tenant(id: string): Promise<TenantMeteringRow | undefined> {
    return this.store.one(this.tenantsQuery().where(eq(this.t.tenants.id, id)));
  }
  /** Every tenant's metering row (the plan cache's snapshot). */
  allTenants(): Promise<TenantMeteringRow[]> {
    return this.store.all(this.tenantsQuery());
  }
  private tenantsQuery() {
    const { tenants: t, meteringSettings: s } = this.t;
    return this.q
      .select({ id: t.id, slug: t.slug, plan: t.plan, timezone: s.timezone, rawRetentionDays: s.rawRetentionDays, alertThresholds: s.alertThresholds, webhookUrl: s.webhookUrl })
      .from(t)
      .leftJoin(s, eq(s.tenantId, t.id))
      .$dynamic();
  }
  /** Active tenants' ids by slug (the quota gauge). */
  async activeTenantIds(): Promise<string[]> {
    const t = this.t.tenants;
    return (await this.store.all(this.q.select({ id: t.id }).from(t).where(eq(t.status, 'active')).orderBy(asc(t.slug)))).map((r) => r.id);
  }
  async tenantId(slugOrId: string): Promise<string | undefined> {
    const t = this.t.tenants;
    return (await this.store.one(this.q.select({ id: t.id }).from(t).where(or(eq(t.slug, slugOrId), eq(t.id, slugOrId)))))?.id;
  }
  async setTenantPlan(id: string, plan: string | null, now: number): Promise<void> {
    const t = this.t.tenants;
    await this.store.run(this.q.update(t).set({ plan, updatedAt: now }).where(eq(t.id, id)));
  }
  async upsertSettings(r: { tenantId: string; timezone: string; rawRetentionDays: number | null; alertThresholds: string; webhookUrl: string | null; updatedAt: number }): Promise<void> {
    const s = this.t.meteringSettings;
    const { tenantId: _t, ...set } = r;
    await this.store.run(this.q.insert(s).values(r).onConflictDoUpdate({ target: s.tenantId, set }));
  }

  // per-user / per-key limits
  private limitWhere(tenantId: string, type: 'user' | 'key', id: string): SQL {
    const l = this.t.meteringLimits;
    return and(eq(l.tenantId, tenantId), eq(l.subjectType, type), eq(l.subjectId, id)) as SQL;
  }
  async limits(tenantId: string, type: 'user' | 'key', id: string): Promise<string | undefined> {
    const l = this.t.meteringLimits;
    return (await this.store.one(this.q.select({ limits: l.limits }).from(l).where(this.limitWhere(tenantId, type, id))))?.limits;
  }
  listLimits(tenantId: string): Promise<{ subjectType: string; subjectId: string; limits: string; updatedAt: number }[]> {
    const l = this.t.meteringLimits;
    return this.store.all(
      this.q
        .select({ subjectType: l.subjectType, subjectId: l.subjectId, limits: l.limits, updatedAt: l.updatedAt })
        .from(l)
        .where(eq(l.tenantId, tenantId))
        .orderBy(asc(l.subjectType), asc(l.subjectId)),
    );
  }
  async setLimits(tenantId: string, type: 'user' | 'key', id: string, limits: string, now: number): Promise<void> {
    const l = this.t.meteringLimits;
    await this.store.run(
      this.q
        .insert(l)
        .values({ tenantId, subjectType: type, subjectId: id, limits, updatedAt: now })
        .onConflictDoUpdate({ target: [l.tenantId, l.subjectType, l.subjectId], set: { limits, updatedAt: now } }),
    );
  }
  deleteLimits(tenantId: string, type: 'user' | 'key', id: string): Promise<number> {
    return this.store.run(this.q.delete(this.t.meteringLimits).where(this.limitWhere(tenantId, type, id)));
  }

  // ledger (rollups)
  async usageSince(tenantId: string, from: number, to: number, subject?: { type: 'user' | 'key'; id: string }): Promise<{ tokens: number; cost: number; requests: number }> {
    const r = this.t.usageRollups;
    const where = and(
      eq(r.tenantId, tenantId),
      gte(r.hour, from),
      lt(r.hour, to),
      subject ? (subject.type === 'user' ? eq(r.userId, subject.id) : eq(r.keyId, subject.id)) : undefined,
    );
    const row = await this.store.one(
      this.q
        .select({
          tokens: sql<number>`COALESCE(SUM(${r.promptTokens} + ${r.completionTokens}), 0)`.mapWith(Number),
          cost: sql<number>`COALESCE(SUM(${r.costMicros}), 0)`.mapWith(Number),
          requests: sql<number>`COALESCE(SUM(${r.requests}), 0)`.mapWith(Number),
        })
        .from(r)
        .where(where),
    );
    return row ?? { tokens: 0, cost: 0, requests: 0 };
  }
  /** Installation-wide tokens in [from, to) (licence allowance); cross-tenant by design. */
  async installationTokens(from: number, to: number): Promise<number> {
    const r = this.t.usageRollups;
    const row = await this.store.one(
      this.q
        .select({ n: sql<number>`COALESCE(SUM(${r.promptTokens} + ${r.completionTokens}), 0)`.mapWith(Number) })
        .from(r)
        .where(and(gte(r.hour, from), lt(r.hour, to))),
    );
    return row?.n ?? 0;
  }
  async rawCount(tenantId: string, from: number, to: number): Promise<number> {
    const u = this.t.usageRecords;
    return (await this.store.one(this.q.select({ n: count() }).from(u).where(and(eq(u.tenantId, tenantId), gte(u.createdAt, from), lt(u.createdAt, to)))))?.n ?? 0;
  }

  /**
   * Rollups grouped for reports; `tzOffsetMs` shifts hours into the tenant's days (day
   * grouping) — the same fixed offset on both dialects, so both give the same days.
   */
  async report(q: { tenantId: string; from: number; to: number; by: GroupBy; userId?: string; keyId?: string; model?: string; tzOffsetMs?: number }): Promise<RollupGroupRow[]> {
    const r = this.t.usageRollups;
    const off = q.tzOffsetMs ?? 0;
    const group: SQL | undefined =
      q.by === 'none'
        ? undefined
        : q.by === 'day'
          ? this.store.dialect === 'postgres'
            ? sql`to_char((${r.hour} + ${off}::double precision * interval '1 millisecond') AT TIME ZONE 'UTC', 'YYYY-MM-DD')`
            : sql`strftime('%Y-%m-%d', (${r.hour} + ${off}) / 1000, 'unixepoch')`
          : sql`${{ model: r.model, user: r.userId, key: r.keyId, provider: r.provider, boundary: r.boundary }[q.by]}`;
    // SUMs stay null when no row matched (a 'none' report of an empty month); reports drop that row.
    const n = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
    const base = this.q
      .select({
        group: group ? sql<string | null>`${group}` : sql<string | null>`NULL`,
        requests: sql`SUM(${r.requests})`,
        errors: sql`SUM(${r.errors})`,
        promptTokens: sql`SUM(${r.promptTokens})`,
        completionTokens: sql`SUM(${r.completionTokens})`,
        costMicros: sql`SUM(${r.costMicros})`,
      })
      .from(r)
      .where(and(eq(r.tenantId, q.tenantId), gte(r.hour, q.from), lt(r.hour, q.to), q.userId ? eq(r.userId, q.userId) : undefined, q.keyId ? eq(r.keyId, q.keyId) : undefined, q.model ? eq(r.model, q.model) : undefined))
      .$dynamic();
    // By position: PostgreSQL would not match a repeated expression whose offset is another bind parameter.
    const rows = await this.store.all(group ? base.groupBy(sql.raw('1')).orderBy(sql.raw('1')) : base);
    return rows.map((x) => ({
      group: x.group === null || x.group === undefined ? null : String(x.group),
      requests: n(x.requests) as number,
      errors: n(x.errors) as number,
      promptTokens: n(x.promptTokens) as number,
      completionTokens: n(x.completionTokens) as number,
      costMicros: n(x.costMicros) as number,
    }));
  }

  // notifications
  /**
   * Records a soft-limit notification once per tenant × window × limit × threshold (unique
   * index): true only for the one writer whose row went in, whatever processes race.
   */
  async insertNotification(row: Omit<NotificationRow, 'dismissedAt' | 'webhookDeliveredAt'>): Promise<boolean> {
    const n = this.t.meteringNotifications;
    const back = await this.store.all(this.q.insert(n).values(row).onConflictDoNothing().returning({ id: n.id }));
    return back.length === 1;
  }
  notifications(tenantId: string, activeOnly: boolean): Promise<NotificationRow[]> {
    const n = this.t.meteringNotifications;
    return this.store.all(
      this.q
        .select(this.notificationCols())
        .from(n)
        .where(and(eq(n.tenantId, tenantId), activeOnly ? isNull(n.dismissedAt) : undefined))
        .orderBy(desc(n.createdAt))
        .limit(100),
    );
  }
  private notificationCols() {
    const n = this.t.meteringNotifications;
    return {
      id: n.id,
      tenantId: n.tenantId,
      window: n.window,
      limitName: n.limitName,
      threshold: n.threshold,
      used: n.used,
      limitValue: n.limitValue,
      createdAt: n.createdAt,
      dismissedAt: n.dismissedAt,
      webhookDeliveredAt: n.webhookDeliveredAt,
    };
  }
  dismissNotification(tenantId: string, id: string, now: number): Promise<number> {
    const n = this.t.meteringNotifications;
    return this.store.run(this.q.update(n).set({ dismissedAt: now }).where(and(eq(n.tenantId, tenantId), eq(n.id, id), isNull(n.dismissedAt))));
  }
  notification(tenantId: string, id: string): Promise<NotificationRow | undefined> {
    const n = this.t.meteringNotifications;
    return this.store.one(this.q.select(this.notificationCols()).from(n).where(and(eq(n.tenantId, tenantId), eq(n.id, id))));
  }
  /** Records the first successful webhook delivery (false when it was already recorded). */
  async markWebhookDelivered(tenantId: string, id: string, now: number): Promise<boolean> {
    const n = this.t.meteringNotifications;
    return (await this.store.run(this.q.update(n).set({ webhookDeliveredAt: now }).where(and(eq(n.tenantId, tenantId), eq(n.id, id), isNull(n.webhookDeliveredAt))))) === 1;
  }
  /** Cross-tenant (reconciler): notifications since `since` not yet delivered to a tenant that has a webhook URL. */
  undeliveredWebhooks(since: number): Promise<{ tenantId: string; id: string }[]> {
    const { meteringNotifications: n, meteringSettings: s } = this.t;
    return this.store.all(
      this.q
        .select({ tenantId: n.tenantId, id: n.id })
        .from(n)
        .innerJoin(s, eq(s.tenantId, n.tenantId))
        .where(and(isNull(n.webhookDeliveredAt), isNotNull(s.webhookUrl), gte(n.createdAt, since)))
        .orderBy(asc(n.createdAt))
        .limit(1000),
    );
  }

  // webhook secret (SecretBox ciphertext; the caller encrypts and decrypts)
  async webhookSecret(tenantId: string): Promise<string | null> {
    const s = this.t.meteringSettings;
    return (await this.store.one(this.q.select({ v: s.webhookSecret }).from(s).where(eq(s.tenantId, tenantId))))?.v ?? null;
  }
  async setWebhookSecret(tenantId: string, ciphertext: string | null): Promise<void> {
    const s = this.t.meteringSettings;
    await this.store.run(this.q.update(s).set({ webhookSecret: ciphertext }).where(eq(s.tenantId, tenantId)));
  }

  // retention
  /** Cross-tenant (the retention timer): every tenant that limits how long raw records are kept. */
  async retentionPolicies(): Promise<{ tenantId: string; days: number }[]> {
    const s = this.t.meteringSettings;
    const rows = await this.store.all(this.q.select({ tenantId: s.tenantId, days: s.rawRetentionDays }).from(s).where(isNotNull(s.rawRetentionDays)));
    return rows.map((r) => ({ tenantId: r.tenantId, days: r.days as number }));
  }
  purgeRaw(tenantId: string, before: number): Promise<number> {
    const u = this.t.usageRecords;
    return this.store.run(this.q.delete(u).where(and(eq(u.tenantId, tenantId), lt(u.createdAt, before))));
  }
}
