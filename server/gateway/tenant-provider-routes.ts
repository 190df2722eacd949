import { Router, type Request } from 'express';
import type { RequestContext } from '../context.js';
import { authenticate } from '../identity/http.js';
import type { Identity } from '../identity/index.js';
import { deploymentHealth } from './admin-routes.js';
import type { Gateway } from './index.js';

/**
 * Tenant-private provider deployments (tenant owners/admins: providers:read / providers:write
 * within the plan's custom_providers; platform administrators for any tenant):
 *   /admin/api/tenants/:tenantId/providers                          GET list · POST create
 *   /admin/api/tenants/:tenantId/providers/:providerId              GET · PATCH · DELETE
 *   /admin/api/tenants/:tenantId/providers/:providerId/test         POST: list the upstream's models
 *   /admin/api/tenants/:tenantId/providers/:providerId/health       GET: breaker and in-flight calls
 * A tenant the caller may not see, and any deployment not private to the tenant in the
 * path (another tenant's or a platform one), answer 404 and are audited. The rules live in
 * server/routing/tenant-deployments.ts.
 */
const BASE = '/admin/api/tenants/:tenantId/providers';

export function tenantProvidersRouter(identity: Identity, gateway: Gateway): Router {
  const r = Router();
  r.use(BASE, authenticate(identity, { accept: ['session', 'api_key'] }));
  const inTenant = async (req: Request, action: string): Promise<RequestContext> => (await identity.tenants.scopeTo(req.ctx, String(req.params.tenantId), action));
  const id = (req: Request): string => String(req.params.providerId);

  r.get(BASE, async (req, res) => {
    const ctx = await inTenant(req, 'providers.read');
    res.json({ object: 'list', data: (await gateway.tenantDeployments.list(ctx)).map((d) => ({ ...d, health: deploymentHealth(gateway, d.id) })) });
  });
  r.post(BASE, async (req, res) => {
    const ctx = await inTenant(req, 'providers.create');
    res.status(201).json(await gateway.tenantDeployments.create(ctx, req.body));
  });
  r.get(`${BASE}/:providerId`, async (req, res) => {
    const ctx = await inTenant(req, 'providers.read');
    const d = await gateway.tenantDeployments.get(ctx, id(req));
    res.json({ ...d, health: deploymentHealth(gateway, d.id) });
  });
  r.patch(`${BASE}/:providerId`, async (req, res) => {
    const ctx = await inTenant(req, 'providers.update');
    res.json(await gateway.tenantDeployments.update(ctx, id(req), req.body));
  });
  r.delete(`${BASE}/:providerId`, async (req, res) => {
    const ctx = await inTenant(req, 'providers.remove');
    await gateway.tenantDeployments.remove(ctx, id(req));
    res.status(204).end();
  });
  r.post(`${BASE}/:providerId/test`, async (req, res) => {
    const ctx = await inTenant(req, 'providers.test');
    res.json(await gateway.tenantDeployments.test(ctx, id(req)));
  });
  r.get(`${BASE}/:providerId/health`, async (req, res) => {
    const ctx = await inTenant(req, 'providers.read');
    const d = await gateway.tenantDeployments.get(ctx, id(req));
    res.json(deploymentHealth(gateway, d.id));
  });
  return r;
}
