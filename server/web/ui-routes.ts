import { Router } from 'express';
import type { RequestContext } from '../context.js';
import { AppError } from '../errors.js';
import { authenticate } from '../identity/http.js';
import type { Identity } from '../identity/index.js';
import type { Metering } from '../metering/index.js';
import { BOUNDARIES, CLASSIFICATIONS, type TenantPolicy } from '../routing/policy.js';
import { DETECTORS } from '../routing/content.js';
import type { LicenseService } from '../../license/service.js';
import type { SinkView } from '../siem/sinks.js';

/** The tenant's compiled data-boundary policy (server/gateway PolicyCache.get, structurally). */
export type UiPolicyView = (ctx: RequestContext) => Promise<{ policy: TenantPolicy; tenantDefault: string }>;

export interface UiOptions {
  /** Metering (plans, reports): the Me page's usage and quota. */
  readonly metering?: Metering;
  /** The gateway's policy cache: the effective matrix for the policy page. */
  readonly policy?: UiPolicyView;
  /** SIEM sinks (server/siem): platform administrators see a banner when delivery falls behind. */
  readonly siemSinks?: { list(): Promise<SinkView[]> };
}

/** Audit entries waiting for one sink from which the console warns even while deliveries succeed. */
export const SIEM_BACKLOG_WARN = 1000;

/**
 * Issue 25: "a metric and a console banner when the backlog grows". A sink is behind when
 * deliveries fail with entries waiting, or when the backlog passed SIEM_BACKLOG_WARN. Nothing is
 * lost meanwhile (the audit log is the outbox), which the banner says.
 */
function siemBanners(sinks: readonly SinkView[]): { level: 'warning'; message: string }[] {
  return sinks
    .filter((s) => s.enabled && s.backlog > 0 && (s.failures > 0 || s.backlog >= SIEM_BACKLOG_WARN))
    .map((s) => ({
      level: 'warning' as const,
      message:
        `SIEM delivery to "${s.name}" is behind: ${s.backlog.toLocaleString('en')} audit event${s.backlog === 1 ? '' : 's'} waiting` +
        (s.failures > 0 && s.last_error ? `; ${s.failures} failed deliver${s.failures === 1 ? 'y' : 'ies'}, last: ${s.last_error.slice(0, 200)}` : '') +
        '. Nothing is lost: they are sent when the sink answers (enclave siem sinks list).',
    }));
}

const CONTENT_ACTIONS = ['allow', 'redact', 'route_local', 'block'] as const;

/**
 * Small read-only endpoints the web UI needs (session cookie only):
 *   GET /api/ui/banners   licence banners meant for this user (audience `all`; tenant
 *                         owners/admins and platform admins also see `admins` ones); platform
 *                         admins also see SIEM sinks whose delivery is behind
 *   GET /api/ui/usage     the signed-in user's own usage this month: the same metering
 *                         self-service report as GET /v1/enclave/usage (usage:read_own) plus
 *                         the report by day, and whether the plan allows self-service keys
 *   GET /api/ui/policy    the tenant's effective data-boundary policy (defaults filled in)
 *                         and the stored input (settings:read); saving goes through
 *                         PUT /admin/api/gateway/policy
 *   GET /api/ui/metering  the tenant's metering settings (time zone, alert thresholds, raw
 *                         usage retention, webhook URL, whether a signing secret exists;
 *                         settings:read); saving goes through PUT /admin/api/tenants/:id/metering
 */
export function uiRouter(identity: Identity, license: LicenseService, opts: UiOptions = {}): Router {
  const r = Router();
  const session = authenticate(identity, { accept: ['session'] });
  r.get('/api/ui/banners', session, async (req, res) => {
    const p = req.ctx.principal!;
    const admin = p.platformAdmin === true || p.role === 'owner' || p.role === 'admin';
    const banners = (await license.status()).banners
      .filter((b) => b.audience === 'all' || admin)
      .map((b) => ({ level: b.level, message: b.message }));
    if (p.platformAdmin === true && opts.siemSinks) banners.push(...siemBanners(await opts.siemSinks.list()));
    res.set('cache-control', 'no-store').json({ object: 'banners', banners });
  });

  r.get('/api/ui/usage', session, async (req, res) => {
    const ctx = req.ctx;
    const p = ctx.principal!;
    const m = opts.metering;
    if (!ctx.tenant) throw new AppError(400, 'tenant_required', 'Choose an organisation first.');
    await identity.access.require(ctx, 'usage:read_own', { ownerUserId: p.userId ?? null }, { type: 'usage' });
    if (!m) throw new AppError(503, 'metering_unavailable', 'Usage metering is not available on this server.');
    const self = await m.reports.self(ctx.tenant.id, { ...(p.userId ? { userId: p.userId } : {}), ...(p.team ? { team: p.team } : {}) });
    const byDay = await m.reports.report({ tenantId: ctx.tenant.id, by: 'day', ...(p.userId ? { userId: p.userId } : {}) });
    res.set('cache-control', 'no-store').json({
      ...self,
      by_day: byDay.rows,
      self_service_keys: m.plans.has(ctx.tenant.id, 'self_service_keys'),
      // authorize() applies the plan: members create their own keys only with self_service_keys.
      can_create_keys: identity.access.authorize(ctx, 'keys:write_own', { ownerUserId: p.userId ?? null }).allow,
    });
  });

  r.get('/api/ui/policy', session, async (req, res) => {
    const ctx = req.ctx;
    if (!ctx.tenant) throw new AppError(400, 'tenant_required', 'Choose an organisation first.');
    await identity.access.require(ctx, 'settings:read', {}, { type: 'gateway_policy' });
    if (!opts.policy) throw new AppError(503, 'gateway_unavailable', 'The AI gateway is not available on this server yet.');
    const { policy, tenantDefault } = await opts.policy(ctx);
    res.set('cache-control', 'no-store').json({
      object: 'ui_policy',
      classifications: CLASSIFICATIONS,
      boundaries: BOUNDARIES,
      detectors: DETECTORS,
      actions: CONTENT_ACTIONS,
      tenant_default: tenantDefault,
      effective: {
        boundaries: Object.fromEntries(CLASSIFICATIONS.map((c) => [c, BOUNDARIES.filter((b) => policy.boundaries[c].has(b))])),
        content: Object.fromEntries(CLASSIFICATIONS.map((c) => [c, { ...policy.actions[c] }])),
        default_classification: policy.defaultClassification ?? tenantDefault,
      },
      input: policy.input,
      can_write: identity.access.authorize(ctx, 'settings:write').allow,
    });
  });
  r.get('/api/ui/metering', session, async (req, res) => {
    const ctx = req.ctx;
    if (!ctx.tenant) throw new AppError(400, 'tenant_required', 'Choose an organisation first.');
    await identity.access.require(ctx, 'settings:read', {}, { type: 'tenant', id: ctx.tenant.id });
    const m = opts.metering;
    if (!m) throw new AppError(503, 'metering_unavailable', 'Usage metering is not available on this server.');
    const t = await m.plans.tenantFresh(ctx.tenant.id);
    if (!t) throw new AppError(404, 'not_found', 'tenant not found');
    res.set('cache-control', 'no-store').json({
      object: 'ui_metering',
      tenant_id: ctx.tenant.id,
      timezone: t.timezone,
      alert_thresholds: t.alertThresholds,
      raw_retention_days: t.rawRetentionDays,
      webhook_url: t.webhookUrl,
      // Never the secret itself: it is shown once, when PUT …/metering issues it.
      webhook_secret_set: await m.webhookSecrets.has(ctx.tenant.id),
      can_write: identity.access.authorize(ctx, 'settings:write').allow,
    });
  });
  return r;
}
