import { Router, type Request } from 'express';
import { z } from 'zod';
import { parseInput } from '../../http/parse-input.js';
import { authenticate } from '../../identity/http.js';
import type { Identity } from '../../identity/index.js';
import type { CacheAdmin } from './admin.js';
import { cacheSettingsInput, cacheSettingsJson } from './settings.js';

const statsQuery = z.object({ days: z.coerce.number().int().min(1).max(366).default(30) });

/**
 * The response cache, per tenant (tenant admins of the tenant, platform admins of any):
 *   GET    /admin/api/tenants/:tenantId/response-cache            settings:read — the setting and its effect (hit ratio, saved cost)
 *   PUT    /admin/api/tenants/:tenantId/response-cache            settings:write — enabled, ttl_seconds, max_bytes, allow_tools, keys
 *   DELETE /admin/api/tenants/:tenantId/response-cache/entries    settings:write — drops every stored answer
 * Another tenant is 404, audited.
 */
export function responseCacheRouter(identity: Identity, admin: CacheAdmin): Router {
  const r = Router();
  const auth = authenticate(identity, { accept: ['session', 'api_key'] });
  const inTenant = (req: Request, action: string) => identity.tenants.scopeTo(req.ctx, String(req.params.tenantId), action);

  r.get('/admin/api/tenants/:tenantId/response-cache', auth, async (req, res) => {
    const ctx = await inTenant(req, 'response_cache.read');
    await identity.access.require(ctx, 'settings:read');
    const { days } = parseInput(statsQuery, req.query);
    const [s, stats] = await Promise.all([admin.settings(ctx), admin.stats(ctx, days)]);
    res.json({ object: 'response_cache', ...cacheSettingsJson(s), stats });
  });
  r.put('/admin/api/tenants/:tenantId/response-cache', auth, async (req, res) => {
    const ctx = await inTenant(req, 'response_cache.update');
    await identity.access.require(ctx, 'settings:write', {}, { type: 'tenant', id: ctx.tenant!.id });
    const after = await admin.update(ctx, parseInput(cacheSettingsInput, req.body));
    res.json({ object: 'response_cache', ...cacheSettingsJson(after) });
  });
  r.delete('/admin/api/tenants/:tenantId/response-cache/entries', auth, async (req, res) => {
    const ctx = await inTenant(req, 'response_cache.purge');
    await identity.access.require(ctx, 'settings:write', {}, { type: 'tenant', id: ctx.tenant!.id });
    res.json({ object: 'response_cache.purge', deleted: await admin.purge(ctx) });
  });
  return r;
}
