import type { Db } from '../connection.js';

/**
 * SQL for metering: plans and prices (platform tables), per-user/key limits, tenant
 * metering settings, rollups, notifications and raw-record retention (tenant-owned: every
 * statement filters by the tenant id the caller took from its request context).
 */
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
const GROUP_COL: Record<Exclude<GroupBy, 'day' | 'none'>, string> = { model: 'model', user: 'user_id', key: 'key_id', provider: 'provider', boundary: 'boundary' };

export class MeteringRepo {
  private readonly s;
  constructor(private readonly db: Db) {
    const c = db.$client;
    this.s = {
      planAll: c.prepare(`SELECT name, description, capabilities, limits, allowed_models AS allowedModels, created_at AS createdAt, updated_at AS updatedAt FROM plans ORDER BY name`),
      planGet: c.prepare(`SELECT name, description, capabilities, limits, allowed_models AS allowedModels, created_at AS createdAt, updated_at AS updatedAt FROM plans WHERE name = ?`),
      planUpsert: c.prepare(
        `INSERT INTO plans (name, description, capabilities, limits, allowed_models, created_at, updated_at) VALUES (@name, @description, @capabilities, @limits, @allowedModels, @createdAt, @updatedAt)
         ON CONFLICT (name) DO UPDATE SET description = excluded.description, capabilities = excluded.capabilities, limits = excluded.limits, allowed_models = excluded.allowed_models, updated_at = excluded.updated_at`,
      ),
      planDelete: c.prepare('DELETE FROM plans WHERE name = ?'),
      planUsers: c.prepare('SELECT COUNT(*) FROM tenants WHERE plan = ?').pluck(),
      priceCurrent: c.prepare(
        `SELECT version, model, deployment_id AS deploymentId, input_micros_per_mtok AS inputMicrosPerMTok, output_micros_per_mtok AS outputMicrosPerMTok, request_micros AS requestMicros, currency, source, created_by AS createdBy, created_at AS createdAt
         FROM prices p WHERE version = (SELECT MAX(version) FROM prices q WHERE q.model = p.model AND q.deployment_id = p.deployment_id) ORDER BY model, deployment_id`,
      ),
      priceHistory: c.prepare(
        `SELECT version, model, deployment_id AS deploymentId, input_micros_per_mtok AS inputMicrosPerMTok, output_micros_per_mtok AS outputMicrosPerMTok, request_micros AS requestMicros, currency, source, created_by AS createdBy, created_at AS createdAt
         FROM prices WHERE model = ? ORDER BY version`,
      ),
      priceInsert: c.prepare(
        `INSERT INTO prices (version, model, deployment_id, input_micros_per_mtok, output_micros_per_mtok, request_micros, currency, source, created_by, created_at)
         VALUES ((SELECT COALESCE(MAX(version), 0) + 1 FROM prices), @model, @deploymentId, @inputMicrosPerMTok, @outputMicrosPerMTok, @requestMicros, @currency, @source, @createdBy, @createdAt) RETURNING version`,
      ).pluck(),
      priceCount: c.prepare('SELECT COUNT(*) FROM prices').pluck(),
      tenant: c.prepare(
        `SELECT t.id, t.slug, t.plan, s.timezone, s.raw_retention_days AS rawRetentionDays, s.alert_thresholds AS alertThresholds, s.webhook_url AS webhookUrl
         FROM tenants t LEFT JOIN metering_settings s ON s.tenant_id = t.id WHERE t.id = ?`,
      ),
      tenantBySlug: c.prepare('SELECT id FROM tenants WHERE slug = ? OR id = ?').pluck(),
      setPlan: c.prepare('UPDATE tenants SET plan = ?, updated_at = ? WHERE id = ?'),
      settingsUpsert: c.prepare(
        `INSERT INTO metering_settings (tenant_id, timezone, raw_retention_days, alert_thresholds, webhook_url, updated_at) VALUES (@tenantId, @timezone, @rawRetentionDays, @alertThresholds, @webhookUrl, @updatedAt)
         ON CONFLICT (tenant_id) DO UPDATE SET timezone = excluded.timezone, raw_retention_days = excluded.raw_retention_days, alert_thresholds = excluded.alert_thresholds, webhook_url = excluded.webhook_url, updated_at = excluded.updated_at`,
      ),
      limitGet: c.prepare('SELECT limits FROM metering_limits WHERE tenant_id = ? AND subject_type = ? AND subject_id = ?').pluck(),
      limitList: c.prepare('SELECT subject_type AS subjectType, subject_id AS subjectId, limits, updated_at AS updatedAt FROM metering_limits WHERE tenant_id = ? ORDER BY subject_type, subject_id'),
      limitUpsert: c.prepare(
        `INSERT INTO metering_limits (tenant_id, subject_type, subject_id, limits, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (tenant_id, subject_type, subject_id) DO UPDATE SET limits = excluded.limits, updated_at = excluded.updated_at`,
      ),
      limitDelete: c.prepare('DELETE FROM metering_limits WHERE tenant_id = ? AND subject_type = ? AND subject_id = ?'),
      sumTenant: c.prepare('SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS tokens, COALESCE(SUM(cost_micros), 0) AS cost, COALESCE(SUM(requests), 0) AS requests FROM usage_rollups WHERE tenant_id = ? AND hour >= ? AND hour < ?'),
      sumUser: c.prepare('SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS tokens, COALESCE(SUM(cost_micros), 0) AS cost, COALESCE(SUM(requests), 0) AS requests FROM usage_rollups WHERE tenant_id = ? AND hour >= ? AND hour < ? AND user_id = ?'),
      sumKey: c.prepare('SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS tokens, COALESCE(SUM(cost_micros), 0) AS cost, COALESCE(SUM(requests), 0) AS requests FROM usage_rollups WHERE tenant_id = ? AND hour >= ? AND hour < ? AND key_id = ?'),
      sumAll: c.prepare('SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM usage_rollups WHERE hour >= ? AND hour < ?').pluck(),
      notifInsert: c.prepare(
        `INSERT OR IGNORE INTO metering_notifications (id, tenant_id, window, limit_name, threshold, used, limit_value, created_at) VALUES (@id, @tenantId, @window, @limitName, @threshold, @used, @limitValue, @createdAt)`,
      ),
      notifList: c.prepare(
        `SELECT id, tenant_id AS tenantId, window, limit_name AS limitName, threshold, used, limit_value AS limitValue, created_at AS createdAt, dismissed_at AS dismissedAt, webhook_delivered_at AS webhookDeliveredAt
         FROM metering_notifications WHERE tenant_id = ? AND (? = 0 OR dismissed_at IS NULL) ORDER BY created_at DESC LIMIT 100`,
      ),
      notifDismiss: c.prepare('UPDATE metering_notifications SET dismissed_at = ? WHERE tenant_id = ? AND id = ? AND dismissed_at IS NULL'),
      notifGet: c.prepare(
        `SELECT id, tenant_id AS tenantId, window, limit_name AS limitName, threshold, used, limit_value AS limitValue, created_at AS createdAt, dismissed_at AS dismissedAt, webhook_delivered_at AS webhookDeliveredAt
         FROM metering_notifications WHERE tenant_id = ? AND id = ?`,
      ),
      notifDelivered: c.prepare('UPDATE metering_notifications SET webhook_delivered_at = ? WHERE tenant_id = ? AND id = ? AND webhook_delivered_at IS NULL'),
      notifUndelivered: c.prepare(
        `SELECT n.tenant_id AS tenantId, n.id FROM metering_notifications n JOIN metering_settings s ON s.tenant_id = n.tenant_id
         WHERE n.webhook_delivered_at IS NULL AND s.webhook_url IS NOT NULL AND n.created_at >= ? ORDER BY n.created_at LIMIT 1000`,
      ),
      webhookSecretGet: c.prepare('SELECT webhook_secret FROM metering_settings WHERE tenant_id = ?').pluck(),
      webhookSecretSet: c.prepare('UPDATE metering_settings SET webhook_secret = ? WHERE tenant_id = ?'),
      purge: c.prepare('DELETE FROM usage_records WHERE tenant_id = ? AND created_at < ?'),
      retentionTenants: c.prepare('SELECT tenant_id AS tenantId, raw_retention_days AS days FROM metering_settings WHERE raw_retention_days IS NOT NULL'),
      rawCount: c.prepare('SELECT COUNT(*) FROM usage_records WHERE tenant_id = ? AND created_at >= ? AND created_at < ?').pluck(),
    };
  }

  // plans
  plans(): PlanRow[] {
    return this.s.planAll.all() as PlanRow[];
  }
  plan(name: string): PlanRow | undefined {
    return this.s.planGet.get(name) as PlanRow | undefined;
  }
  upsertPlan(row: PlanRow): void {
    this.s.planUpsert.run(row);
  }
  deletePlan(name: string): number {
    return this.s.planDelete.run(name).changes;
  }
  tenantsOnPlan(name: string): number {
    return this.s.planUsers.get(name) as number;
  }

  // prices
  currentPrices(): PriceRow[] {
    return this.s.priceCurrent.all() as PriceRow[];
  }
  priceHistory(model: string): PriceRow[] {
    return this.s.priceHistory.all(model) as PriceRow[];
  }
  insertPrice(p: Omit<PriceRow, 'version'>): number {
    return this.s.priceInsert.get(p) as number;
  }
  priceCount(): number {
    return this.s.priceCount.get() as number;
  }

  // tenants
  tenant(id: string): TenantMeteringRow | undefined {
    return this.s.tenant.get(id) as TenantMeteringRow | undefined;
  }
  tenantId(slugOrId: string): string | undefined {
    return this.s.tenantBySlug.get(slugOrId, slugOrId) as string | undefined;
  }
  setTenantPlan(id: string, plan: string | null, now: number): void {
    this.s.setPlan.run(plan, now, id);
  }
  upsertSettings(r: { tenantId: string; timezone: string; rawRetentionDays: number | null; alertThresholds: string; webhookUrl: string | null; updatedAt: number }): void {
    this.s.settingsUpsert.run(r);
  }

  // per-user / per-key limits
  limits(tenantId: string, type: 'user' | 'key', id: string): string | undefined {
    return this.s.limitGet.get(tenantId, type, id) as string | undefined;
  }
  listLimits(tenantId: string): { subjectType: string; subjectId: string; limits: string; updatedAt: number }[] {
    return this.s.limitList.all(tenantId) as any[];
  }
  setLimits(tenantId: string, type: 'user' | 'key', id: string, limits: string, now: number): void {
    this.s.limitUpsert.run(tenantId, type, id, limits, now);
  }
  deleteLimits(tenantId: string, type: 'user' | 'key', id: string): number {
    return this.s.limitDelete.run(tenantId, type, id).changes;
  }

  // ledger (rollups)
  usageSince(tenantId: string, from: number, to: number, subject?: { type: 'user' | 'key'; id: string }): { tokens: number; cost: number; requests: number } {
    if (!subject) return this.s.sumTenant.get(tenantId, from, to) as any;
    return (subject.type === 'user' ? this.s.sumUser : this.s.sumKey).get(tenantId, from, to, subject.id) as any;
  }
  installationTokens(from: number, to: number): number {
    return this.s.sumAll.get(from, to) as number;
  }
  rawCount(tenantId: string, from: number, to: number): number {
    return this.s.rawCount.get(tenantId, from, to) as number;
  }

  /** Rollups grouped for reports; `tzOffsetMs` shifts hours into the tenant's days (day grouping). */
  report(q: { tenantId: string; from: number; to: number; by: GroupBy; userId?: string; keyId?: string; model?: string; tzOffsetMs?: number }): RollupGroupRow[] {
    const where = ['tenant_id = @tenantId', 'hour >= @from', 'hour < @to'];
    if (q.userId) where.push('user_id = @userId');
    if (q.keyId) where.push('key_id = @keyId');
    if (q.model) where.push('model = @model');
    const group =
      q.by === 'none' ? `NULL` : q.by === 'day' ? `strftime('%Y-%m-%d', (hour + @off) / 1000, 'unixepoch')` : GROUP_COL[q.by];
    const sql = `SELECT ${group} AS "group", SUM(requests) AS requests, SUM(errors) AS errors, SUM(prompt_tokens) AS promptTokens, SUM(completion_tokens) AS completionTokens, SUM(cost_micros) AS costMicros
      FROM usage_rollups WHERE ${where.join(' AND ')} ${q.by === 'none' ? '' : 'GROUP BY 1'} ORDER BY ${q.by === 'none' ? '1' : '1'}`;
    return this.db.$client.prepare(sql).all({ tenantId: q.tenantId, from: q.from, to: q.to, userId: q.userId, keyId: q.keyId, model: q.model, off: q.tzOffsetMs ?? 0 }) as RollupGroupRow[];
  }

  // notifications
  insertNotification(n: Omit<NotificationRow, 'dismissedAt' | 'webhookDeliveredAt'>): boolean {
    return this.s.notifInsert.run(n).changes === 1;
  }
  notifications(tenantId: string, activeOnly: boolean): NotificationRow[] {
    return this.s.notifList.all(tenantId, activeOnly ? 1 : 0) as NotificationRow[];
  }
  dismissNotification(tenantId: string, id: string, now: number): number {
    return this.s.notifDismiss.run(now, tenantId, id).changes;
  }
  notification(tenantId: string, id: string): NotificationRow | undefined {
    return this.s.notifGet.get(tenantId, id) as NotificationRow | undefined;
  }
  /** Records the first successful webhook delivery (false when it was already recorded). */
  markWebhookDelivered(tenantId: string, id: string, now: number): boolean {
    return this.s.notifDelivered.run(now, tenantId, id).changes === 1;
  }
  /** Cross-tenant (reconciler): notifications since `since` not yet delivered to a tenant that has a webhook URL. */
  undeliveredWebhooks(since: number): { tenantId: string; id: string }[] {
    return this.s.notifUndelivered.all(since) as { tenantId: string; id: string }[];
  }

  // webhook secret (SecretBox ciphertext; the caller encrypts and decrypts)
  webhookSecret(tenantId: string): string | null {
    return (this.s.webhookSecretGet.get(tenantId) as string | null | undefined) ?? null;
  }
  setWebhookSecret(tenantId: string, ciphertext: string | null): void {
    this.s.webhookSecretSet.run(ciphertext, tenantId);
  }

  // retention
  retentionPolicies(): { tenantId: string; days: number }[] {
    return this.s.retentionTenants.all() as any[];
  }
  purgeRaw(tenantId: string, before: number): number {
    return this.s.purge.run(tenantId, before).changes;
  }
}
