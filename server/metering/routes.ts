import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { AppError } from '../errors.js';
import { parseInput } from '../http/parse-input.js';
import { authenticate } from '../identity/http.js';
import type { Identity } from '../identity/index.js';
import type { Metering } from './index.js';
import { compactLimits, limitsSchema } from './limits.js';
import { planInputSchema, planJson, tenantSettingsSchema } from './plans.js';
import { priceInputSchema, priceJson } from './prices.js';
import { toCsv } from './reports.js';

const reportQuery = z.object({
  month: z.string().regex(/^\d{4}-\d{2}$/).optional(),
  by: z.enum(['model', 'user', 'key', 'provider', 'boundary', 'day', 'team', 'none']).optional(),
  user: z.string().max(100).optional(),
  key: z.string().max(100).optional(),
  model: z.string().max(200).optional(),
  format: z.enum(['json', 'csv']).optional(),
});

/**
 * Metering HTTP surface:
 *   platform admins: /admin/api/plans, /admin/api/prices, PUT /admin/api/tenants/:id/plan
 *   tenant admins:   /admin/api/tenants/:id/usage (JSON or CSV), /limits, /metering (settings), /notifications
 *   anyone with a key or session: GET /v1/enclave/usage (own usage and remaining quota)
 */
export function meteringRouter(identity: Identity, m: Metering): Router {
  const r = Router();
  const { access, tenants } = identity;
  const admin = authenticate(identity, { accept: ['session', 'api_key'] });
  const inTenant = (req: Request, action: string) => tenants.scopeTo(req.ctx, String(req.params.tenantId), action);

  // ---- plans (platform) ----
  r.get('/admin/api/plans', admin, async (req, res) => {
    await access.require(req.ctx, 'platform:tenants:read');
    res.json({ object: 'list', data: (await m.plans.list()).map(planJson) });
  });
  r.put('/admin/api/plans/:name', admin, async (req, res) => {
    await access.require(req.ctx, 'platform:tenants:plan', {}, { type: 'plan', id: String(req.params.name) });
    const b = parseInput(planInputSchema.omit({ name: true }), req.body);
    res.json(planJson(await m.plans.upsert(req.ctx, { ...b, name: String(req.params.name) })));
  });
  r.delete('/admin/api/plans/:name', admin, async (req, res) => {
    await access.require(req.ctx, 'platform:tenants:plan', {}, { type: 'plan', id: String(req.params.name) });
    await m.plans.remove(req.ctx, String(req.params.name));
    res.status(204).end();
  });
  r.put('/admin/api/tenants/:tenantId/plan', admin, async (req, res) => {
    const ctx = await inTenant(req, 'tenant.plan');
    await access.require(ctx, 'platform:tenants:plan', {}, { type: 'tenant', id: ctx.tenant!.id });
    const b = parseInput(z.object({ plan: z.string().max(100).nullable() }).strict(), req.body);
    await m.plans.assign(ctx, ctx.tenant!.id, b.plan);
    res.json({ tenant_id: ctx.tenant!.id, plan: b.plan ?? 'default' });
  });

  // ---- prices (platform) ----
  r.get('/admin/api/prices', admin, async (req, res) => {
    await access.require(req.ctx, 'platform:tenants:read');
    res.json({ object: 'list', data: (await m.pricing.list()).map(priceJson) });
  });
  r.get('/admin/api/prices/:model/history', admin, async (req, res) => {
    await access.require(req.ctx, 'platform:tenants:read');
    res.json({ object: 'list', data: (await m.pricing.history(String(req.params.model))).map(priceJson) });
  });
  r.put('/admin/api/prices', admin, async (req, res) => {
    await access.require(req.ctx, 'platform:tenants:plan', {}, { type: 'price' });
    res.json(priceJson(await m.pricing.set(req.ctx, parseInput(priceInputSchema, req.body))));
  });

  // ---- tenant: usage, limits, settings, notifications ----
  r.get('/admin/api/tenants/:tenantId/usage', admin, async (req, res) => {
    const ctx = await inTenant(req, 'usage.read');
    await access.require(ctx, 'usage:read', {}, { type: 'usage' });
    const q = parseInput(reportQuery, req.query);
    const rep = await m.reports.report({ tenantId: ctx.tenant!.id, ...(q.month ? { month: q.month } : {}), ...(q.by ? { by: q.by } : {}), ...(q.user ? { userId: q.user } : {}), ...(q.key ? { keyId: q.key } : {}), ...(q.model ? { model: q.model } : {}) });
    sendReport(res, rep, q.format);
  });
  r.get('/admin/api/tenants/:tenantId/limits', admin, async (req, res) => {
    const ctx = await inTenant(req, 'limits.read');
    await access.require(ctx, 'settings:read');
    const t = (await m.plans.tenantFresh(ctx.tenant!.id))!;
    res.json({
      plan: planJson(t.plan),
      timezone: t.timezone,
      overrides: (await m.repo.listLimits(ctx.tenant!.id)).map((l) => ({ subject_type: l.subjectType, subject_id: l.subjectId, limits: JSON.parse(l.limits), updated_at: l.updatedAt })),
    });
  });
  r.put('/admin/api/tenants/:tenantId/limits/:type/:id', admin, async (req, res) => {
    const ctx = await inTenant(req, 'limits.write');
    await access.require(ctx, 'settings:write', {}, { type: 'limits', id: String(req.params.id) });
    const type = parseInput(z.enum(['user', 'key']), req.params.type);
    const limits = compactLimits(parseInput(limitsSchema, req.body));
    await m.repo.setLimits(ctx.tenant!.id, type, String(req.params.id), JSON.stringify(limits), ctx.clock.now());
    await m.revision.bump();
    await identity.audit.record(ctx, { action: 'limits.set', target: { type, id: String(req.params.id) }, details: { limits } });
    res.json({ subject_type: type, subject_id: String(req.params.id), limits });
  });
  r.delete('/admin/api/tenants/:tenantId/limits/:type/:id', admin, async (req, res) => {
    const ctx = await inTenant(req, 'limits.write');
    await access.require(ctx, 'settings:write', {}, { type: 'limits', id: String(req.params.id) });
    const type = parseInput(z.enum(['user', 'key']), req.params.type);
    if (!(await m.repo.deleteLimits(ctx.tenant!.id, type, String(req.params.id)))) throw new AppError(404, 'not_found', 'no limits set for that subject');
    await m.revision.bump();
    await identity.audit.record(ctx, { action: 'limits.delete', target: { type, id: String(req.params.id) } });
    res.status(204).end();
  });
  r.put('/admin/api/tenants/:tenantId/metering', admin, async (req, res) => {
    const ctx = await inTenant(req, 'metering.update');
    await access.require(ctx, 'settings:write', {}, { type: 'tenant', id: ctx.tenant!.id });
    const { tenant: t, webhookSecret } = await m.updateSettings(ctx, ctx.tenant!.id, parseInput(tenantSettingsSchema, req.body));
    // The signing secret is shown once: when issued (first webhook URL, or rotate_webhook_secret).
    res.json({ timezone: t.timezone, raw_retention_days: t.rawRetentionDays, alert_thresholds: t.alertThresholds, webhook_url: t.webhookUrl, ...(webhookSecret ? { webhook_secret: webhookSecret } : {}) });
  });
  r.get('/admin/api/tenants/:tenantId/notifications', admin, async (req, res) => {
    const ctx = await inTenant(req, 'notifications.read');
    await access.require(ctx, 'usage:read');
    const all = req.query.all === 'true';
    res.json({ object: 'list', data: (await m.repo.notifications(ctx.tenant!.id, !all)).map(notificationJson) });
  });
  r.post('/admin/api/tenants/:tenantId/notifications/:id/dismiss', admin, async (req, res) => {
    const ctx = await inTenant(req, 'notifications.dismiss');
    await access.require(ctx, 'settings:write');
    if (!(await m.repo.dismissNotification(ctx.tenant!.id, String(req.params.id), ctx.clock.now()))) throw new AppError(404, 'not_found', 'notification not found');
    res.status(204).end();
  });

  // ---- self-service ----
  r.get('/v1/enclave/usage', authenticate(identity, { accept: ['api_key', 'session'] }), async (req, res) => {
    const ctx = req.ctx;
    const p = ctx.principal!;
    if (!ctx.tenant) throw new AppError(400, 'tenant_required', 'Select a tenant first.');
    // A key may always read its own usage (no scope needed); a session needs usage:read_own.
    if (p.kind !== 'api_key') await access.require(ctx, 'usage:read_own', { ownerUserId: p.userId ?? null });
    res.json(await m.reports.self(ctx.tenant.id, { ...(p.keyId ? { keyId: p.keyId } : {}), ...(p.userId ? { userId: p.userId } : {}), ...(p.team ? { team: p.team } : {}) }));
  });
  return r;
}

function sendReport(res: Response, rep: Awaited<ReturnType<Metering['reports']['report']>>, format: 'json' | 'csv' | undefined): void {
  if (format === 'csv') {
    res.setHeader('content-type', 'text/csv; charset=utf-8');
    res.setHeader('content-disposition', `attachment; filename="usage-${rep.tenant}-${rep.month}.csv"`);
    res.send(toCsv(rep.rows, rep.by === 'none' ? 'total' : rep.by));
    return;
  }
  res.json({ object: 'enclave.usage_report', ...rep });
}

export function notificationJson(n: { id: string; window: string; limitName: string; threshold: number; used: number; limitValue: number; createdAt: number; dismissedAt: number | null }) {
  return { id: n.id, window: n.window, limit: n.limitName, threshold: n.threshold, used: n.used, limit_value: n.limitValue, created_at: new Date(n.createdAt).toISOString(), dismissed: n.dismissedAt !== null };
}
