import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import type { RequestContext } from '../context.js';
import { AppError } from '../errors.js';
import { parseInput } from '../http/parse-input.js';
import type { Identity } from '../identity/index.js';
import { isPlatform } from '../identity/deps.js';
import { authenticate } from '../identity/http.js';
import type { Gateway } from './index.js';

/**
 * Admin API for the gateway:
 *   /admin/api/providers            GET list (?tenant=<id|slug>) · POST create  (platform administrators;
 *                                   tenant administrators: tenant-provider-routes.ts)
 *   /admin/api/providers/:id        GET · PATCH · DELETE
 *   /admin/api/providers/:id/test   POST: list the upstream's models
 *   /admin/api/providers/:id/health GET: breaker state and in-flight calls
 *   /admin/api/model-aliases        GET · PUT (upsert) · DELETE /:name
 *   /admin/api/gateway/policy       GET · PUT   (tenant admins: settings:read / settings:write)
 */
export function gatewayAdminRouter(identity: Identity, gateway: Gateway): Router {
  const r = Router();
  r.use(['/admin/api/providers', '/admin/api/model-aliases', '/admin/api/gateway'], authenticate(identity, { accept: ['session', 'api_key'] }));
  const dep = gateway.deployments;

  // Create, update and remove are audited by the service (attributed to the deployment's tenant).
  r.get('/admin/api/providers', async (req, res) => {
    platformAdmin(req.ctx);
    const q = parseInput(z.object({ tenant: z.string().min(1).max(100).optional() }), req.query);
    const data = await dep.list(q.tenant ? { tenantId: await dep.tenantId(q.tenant) } : {});
    res.json({ object: 'list', data: data.map((d) => ({ ...d, health: deploymentHealth(gateway, d.id) })) });
  });
  r.post('/admin/api/providers', async (req, res) => {
    platformAdmin(req.ctx);
    res.status(201).json(await dep.create(req.ctx, req.body));
  });
  r.get('/admin/api/providers/:id', async (req, res) => {
    platformAdmin(req.ctx);
    const d = await dep.get(String(req.params.id));
    res.json({ ...d, health: deploymentHealth(gateway, d.id) });
  });
  r.patch('/admin/api/providers/:id', async (req, res) => {
    platformAdmin(req.ctx);
    res.json(await dep.update(req.ctx, String(req.params.id), req.body));
  });
  r.delete('/admin/api/providers/:id', async (req, res) => {
    platformAdmin(req.ctx);
    await dep.remove(req.ctx, String(req.params.id));
    res.status(204).end();
  });
  r.post('/admin/api/providers/:id/test', async (req: Request, res: Response) => {
    platformAdmin(req.ctx);
    res.json(await dep.test(String(req.params.id)));
  });
  r.get('/admin/api/providers/:id/health', async (req, res) => {
    platformAdmin(req.ctx);
    const d = await dep.get(String(req.params.id));
    res.json(deploymentHealth(gateway, d.id));
  });

  r.get('/admin/api/model-aliases', async (req, res) => {
    platformAdmin(req.ctx);
    res.json({ object: 'list', data: await dep.listAliases() });
  });
  r.put('/admin/api/model-aliases', async (req, res) => {
    platformAdmin(req.ctx);
    res.json(await dep.setAlias(req.ctx, req.body));
  });
  r.delete('/admin/api/model-aliases/:name', async (req, res) => {
    platformAdmin(req.ctx);
    await dep.removeAlias(req.ctx, String(req.params.name));
    res.status(204).end();
  });

  r.get('/admin/api/gateway/policy', async (req, res) => {
    await identity.access.require(req.ctx, 'settings:read');
    res.json(await gateway.policies.read(req.ctx));
  });
  r.put('/admin/api/gateway/policy', async (req, res) => {
    await identity.access.require(req.ctx, 'settings:write');
    const out = await gateway.policies.write(req.ctx, req.body, req.ctx.clock.now());
    await identity.audit.record(req.ctx, { action: 'gateway.policy.update', outcome: 'allowed', target: { type: 'tenant', id: req.ctx.tenant?.id ?? null } });
    res.json(out);
  });
  return r;
}

/** Breaker state and in-flight calls of a deployment in this process. */
export function deploymentHealth(gateway: Gateway, id: string) {
  const d = gateway.catalogue.byId(id);
  if (!d) return { breaker: null, in_flight: 0 };
  return { breaker: d.breaker.snapshot(), in_flight: d.limiter.inFlight };
}

/**
 * The platform-wide provider routes: platform administrators only (tenant administrators
 * manage their tenant's private deployments through /admin/api/tenants/:tenantId/providers).
 * (authorize() has no `platform:providers:*` action yet; this is the same rule it applies
 * to platform actions — a user with the platform-admin flag, or the system.)
 */
function platformAdmin(ctx: RequestContext): void {
  if (isPlatform(ctx)) return;
  throw new AppError(403, 'platform_admin_required', 'Managing provider deployments needs a platform administrator.');
}
