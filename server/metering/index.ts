import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Entitlements } from '../access/entitlements.js';
import type { AuditLog } from '../audit/log.js';
import type { Clock } from '../clock.js';
import type { RequestContext } from '../context.js';
import { MeteringRepo } from '../db/repos/metering.js';
import type { UsageRow } from '../db/repos/usage.js';
import type { Store } from '../db/store.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import { Revision } from '../identity/revision.js';
import { TeamsRepo } from '../db/repos/teams.js';
import { child, type Metrics } from '../metrics/registry.js';
import { Admission, type FailureMode, type Reservation } from './admission.js';
import { PlanService } from './plans.js';
import { Pricing } from './prices.js';
import { quotaRatios } from './quota-ratio.js';
import { Reports } from './reports.js';
import type { SecretBox } from '../config/secret-box.js';
import type { z } from 'zod';
import { egressPolicy, type EgressPolicy } from '../providers/egress.js';
import { refusedWebhookUrl } from './webhooks.js';
import { tenantSettingsSchema, type TenantMetering } from './plans.js';
import { WebhookSecrets } from './webhooks.js';

export type { Reservation } from './admission.js';

/**
 * What the gateway pipeline calls (server/gateway/service.ts): admit() once per call
 * before routing, complete() once per call with the usage record (prices it and settles
 * the reservation). Every spending route — /v1 chat and embeddings, batches, the web UI's
 * chat — runs through that pipeline, so through this.
 */
export interface MeteringHook {
  admit(ctx: RequestContext, req: { model: string; promptTokens: number; maxTokens: number }): Promise<Reservation>;
  complete(r: Reservation | undefined, row: UsageRow): void;
  /** Plan capability `cloud_providers` for `public` deployments (routing filters candidates with it). */
  allowsBoundary?(ctx: RequestContext, boundary: 'local' | 'private' | 'public'): boolean;
}

export interface Metering {
  readonly repo: MeteringRepo;
  readonly revision: Revision;
  readonly plans: PlanService;
  readonly pricing: Pricing;
  readonly admission: Admission;
  readonly reports: Reports;
  readonly hook: MeteringHook;
  /** Signing secrets of the tenants' soft-limit webhooks (server/metering/webhooks.ts). */
  readonly webhookSecrets: WebhookSecrets;
  /**
   * Tenant metering settings (PUT /admin/api/tenants/:id/metering). Setting a webhook URL for
   * the first time, or `rotate_webhook_secret`, issues a signing secret returned here once;
   * removing the URL drops the secret.
   */
  updateSettings(ctx: RequestContext, tenantId: string, input: z.infer<typeof tenantSettingsSchema>): Promise<{ tenant: TenantMetering; webhookSecret?: string }>;
  /**
   * Called once per new soft-limit notification of a tenant that has a webhook URL (the
   * server wires it to the maintenance lane; nothing is fetched from this process).
   */
  onNotification(fn: (n: { tenantId: string; notificationId: string }) => void): void;
  /** Deletes raw usage records older than each tenant's retention (rollups stay). */
  purgeRaw(): Promise<number>;
  /** Loads the plan and price caches (and writes the bundled prices on first start), then starts the revision poll and leases. */
  start(pollMs?: number): Promise<void>;
  /** Stops timers; returns this process's leases and declares their usage (awaited at shutdown). */
  stop(): Promise<void>;
}

export function createMetering(o: {
  store: Store;
  redis: Redis;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  entitlements: () => Entitlements;
  audit: () => AuditLog | undefined;
  failureMode: FailureMode;
  flushLedger?: () => Promise<void> | void;
  /** Encrypts tenants' webhook signing secrets (the server's master key). */
  secrets?: SecretBox;
  /** Where webhook URLs may point (ENCLAVE_TENANT_PROVIDER_NETWORKS, server/providers/egress.ts); absent = the default rule. */
  webhookEgress?: EgressPolicy;
}): Metering {
  const repo = new MeteringRepo(o.store);
  const revision = new Revision(o.store, 'metering');
  const teamsRepo = new TeamsRepo(o.store);
  const cacheError = (what: string) => (e: Error) => o.log.error({ err: e.message }, `could not reload the ${what}; serving the cached ones`);
  const plans = new PlanService(repo, revision, o.clock, o.audit, cacheError('plans'));
  const pricing = new Pricing(repo, revision, o.clock, o.audit, cacheError('prices'));
  const notified = new Set<string>();
  const webhookSecrets = new WebhookSecrets(repo, o.secrets);
  let notify: ((n: { tenantId: string; notificationId: string }) => void) | undefined;
  const flushLedger = o.flushLedger;

  /**
   * Soft-limit notifications. The `notified` set keeps this process from asking twice; the
   * unique index (insertNotification: one row per tenant × window × limit × threshold) makes
   * exactly one writer win when settlements of several calls or processes cross a threshold
   * together, and only the winner logs, audits and queues the webhook.
   */
  const alert = async (r: Reservation, limitName: 'monthly_tokens' | 'monthly_cost_micros', used: number): Promise<void> => {
    const t = plans.tenant(r.tenantId);
    const limit = t?.plan.limits[limitName];
    if (!t || typeof limit !== 'number' || limit <= 0 || used < 0) return;
    for (const th of t.alertThresholds) {
      if (used * 100 < limit * th) continue;
      const k = `${r.tenantId}|${r.window.id}|${limitName}|${th}`;
      if (notified.has(k)) continue;
      notified.add(k);
      const id = newId('ntf');
      const created = await repo.insertNotification({ id, tenantId: r.tenantId, window: r.window.id, limitName, threshold: th, used, limitValue: limit, createdAt: o.clock.now() });
      if (!created) continue; // another process raised it
      o.metrics.quotaAlerts.labels(limitName, String(th)).inc();
      o.log.warn({ tenant: t.slug, limit: limitName, threshold: th, used, limitValue: limit, window: r.window.id }, 'tenant usage crossed an alert threshold');
      await o.audit()?.record(r.ctx, {
        action: 'quota.alert',
        tenantId: r.tenantId,
        target: { type: 'tenant', id: r.tenantId },
        details: { limit: limitName, threshold: th, used, limit_value: limit, window: r.window.id, notification: id, webhook: t.webhookUrl ? (notify ? 'queued' : 'not queued (no job queue in this process)') : 'none' },
      });
      if (t.webhookUrl && notify) {
        try {
          notify({ tenantId: r.tenantId, notificationId: id });
        } catch (e) {
          // The webhook-reconcile schedule re-enqueues undelivered notifications.
          o.log.warn({ err: (e as Error).message, notificationId: id }, 'could not queue the quota webhook; the reconciler retries');
        }
      }
    }
  };

  const admission = new Admission({
    repo,
    plans,
    revision,
    redis: o.redis,
    metrics: o.metrics,
    clock: o.clock,
    log: o.log,
    entitlements: o.entitlements,
    failureMode: o.failureMode,
    flushLedger: () => flushLedger?.(),
    teamUsage: (tenantId, teamId, from, to) => teamsRepo.usageSince(tenantId, teamId, from, to),
    onSettled: (r, tokens, cost) => {
      // Off the settlement path; a failed write is logged (the next settlement past the threshold asks again).
      const failed = (e: Error) => o.log.error({ err: e.message }, 'could not record a quota alert');
      void alert(r, 'monthly_tokens', tokens).catch(failed);
      void alert(r, 'monthly_cost_micros', cost).catch(failed);
    },
  });

  const hook: MeteringHook = {
    admit: (ctx, req) => {
      const p = pricing.price(req.model);
      const estCost = p ? Math.round((req.promptTokens * p.inputMicrosPerMTok + req.maxTokens * p.outputMicrosPerMTok) / 1_000_000) + p.requestMicros : 0;
      return admission.admit(ctx, { model: req.model, estimateTokens: req.promptTokens + req.maxTokens, estimateCostMicros: estCost });
    },
    allowsBoundary: (ctx, boundary) => boundary !== 'public' || !ctx.tenant || plans.has(ctx.tenant.id, 'cloud_providers'),
    complete: (r, row) => {
      // A response-cache hit reached no deployment: its cost is what the cache charges (the tenant's hit_cost_fraction of the original, default 0), not a price.
      const c = row.cache === 'hit' ? { costMicros: row.costMicros, priceVersion: null } : pricing.cost(row.model ?? row.alias, row.deploymentId, row.promptTokens, row.completionTokens, row.deploymentId ? 1 : 0);
      row.costMicros = c.costMicros;
      row.priceVersion = c.priceVersion;
      // Calls that reached a deployment (zero-priced ones too, so local models show as free).
      if (row.deploymentId) child(o.metrics.gatewayCost, plans.tenant(row.tenantId)?.slug ?? 'unknown', row.model ?? 'none', row.provider ?? 'none').inc(c.costMicros);
      if (r) void admission.settle(r, row.promptTokens + row.completionTokens, c.costMicros);
    },
  };

  o.metrics.trackQuotas(quotaRatios({ repo, plans, clock: o.clock }));

  let timer: NodeJS.Timeout | undefined;
  const purgeRaw = async (): Promise<number> => {
    let n = 0;
    for (const p of await repo.retentionPolicies()) n += await repo.purgeRaw(p.tenantId, o.clock.now() - p.days * 86_400_000);
    if (n) o.log.info({ deleted: n }, 'purged raw usage records past their retention (rollups kept)');
    return n;
  };

  return {
    repo,
    revision,
    plans,
    pricing,
    admission,
    reports: new Reports(repo, plans, o.clock, () => flushLedger?.(), teamsRepo),
    hook,
    webhookSecrets,
    updateSettings: async (ctx, tenantId, input) => {
      const { rotate_webhook_secret: rotate, ...settings } = input;
      const urlAfter = settings.webhook_url === undefined ? (await repo.tenant(tenantId))?.webhookUrl : settings.webhook_url;
      if (rotate && !urlAfter) throw new AppError(400, 'invalid_request', 'rotate_webhook_secret: set a webhook_url first.', { param: 'rotate_webhook_secret' });
      const refused = settings.webhook_url ? refusedWebhookUrl(o.webhookEgress ?? egressPolicy(undefined), settings.webhook_url) : null;
      if (refused) throw new AppError(400, 'webhook_url_forbidden', `webhook_url: ${refused}`, { param: 'webhook_url' });
      const tenant = await plans.updateTenantSettings(ctx, tenantId, settings);
      if (!tenant.webhookUrl) {
        if (await webhookSecrets.has(tenantId)) await webhookSecrets.clear(tenantId);
        return { tenant };
      }
      if (!rotate && (await webhookSecrets.has(tenantId))) return { tenant };
      const webhookSecret = await webhookSecrets.issue(tenantId);
      await o.audit()?.record(ctx, { action: 'tenant.webhook_secret', tenantId, target: { type: 'tenant', id: tenantId }, details: { rotated: !!rotate } });
      return { tenant, webhookSecret };
    },
    onNotification: (fn) => {
      notify = fn;
    },
    purgeRaw,
    start: async (pollMs = 200) => {
      await pricing.ensureBundled();
      await Promise.all([plans.load(), pricing.load()]);
      revision.start(pollMs);
      admission.startLeases();
      timer = setInterval(() => {
        void purgeRaw().catch((e: Error) => o.log.error({ err: e.message }, 'raw usage purge failed'));
      }, 3600_000);
      timer.unref();
    },
    stop: async () => {
      revision.stop();
      if (timer) clearInterval(timer);
      await admission.stopLeases();
    },
  };
}
