import { Router, type Request } from 'express';
import { z } from 'zod';
import { parseInput } from '../http/parse-input.js';
import { authenticate } from '../identity/http.js';
import type { Identity } from '../identity/index.js';
import { contentLoggingInput, contentLoggingJson, type ContentLog } from './content-log.js';

const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(100).optional(),
});
const REQUEST_ID = z.string().min(1).max(100);

/**
 * Opt-in content logging, per tenant (tenant admins of the tenant, platform admins of any):
 *   GET /admin/api/tenants/:tenantId/content-logging            settings:read
 *   PUT /admin/api/tenants/:tenantId/content-logging            settings:write (+ plan capability to enable)
 *   GET /admin/api/tenants/:tenantId/content-logs               content:read — which calls have content (no content)
 *   GET /admin/api/tenants/:tenantId/content-logs/:requestId    content:read — what the call sent and received
 * Another tenant (and anything in it) is 404, audited; so is a request id without stored content.
 */
export function contentLogRouter(identity: Identity, content: ContentLog): Router {
  const r = Router();
  const admin = authenticate(identity, { accept: ['session', 'api_key'] });
  const inTenant = (req: Request, action: string) => identity.tenants.scopeTo(req.ctx, String(req.params.tenantId), action);

  r.get('/admin/api/tenants/:tenantId/content-logging', admin, async (req, res) => {
    const ctx = await inTenant(req, 'content_logging.read');
    await identity.access.require(ctx, 'settings:read');
    const s = await content.settings(ctx);
    res.json({ object: 'content_logging', ...contentLoggingJson(s.setting), plan_allows: s.planAllows });
  });
  r.put('/admin/api/tenants/:tenantId/content-logging', admin, async (req, res) => {
    const ctx = await inTenant(req, 'content_logging.update');
    await identity.access.require(ctx, 'settings:write', {}, { type: 'tenant', id: ctx.tenant!.id });
    const after = await content.update(ctx, parseInput(contentLoggingInput, req.body));
    res.json({ object: 'content_logging', ...contentLoggingJson(after), plan_allows: (await content.settings(ctx)).planAllows });
  });
  r.get('/admin/api/tenants/:tenantId/content-logs', admin, async (req, res) => {
    const ctx = await inTenant(req, 'content.list');
    await identity.access.require(ctx, 'content:read', {}, { type: 'tenant', id: ctx.tenant!.id });
    const q = parseInput(listQuery, req.query);
    const p = await content.list(ctx, { limit: q.limit, ...(q.cursor ? { cursor: q.cursor } : {}) });
    res.json({ object: 'list', data: p.data, next_cursor: p.next_cursor });
  });
  r.get('/admin/api/tenants/:tenantId/content-logs/:requestId', admin, async (req, res) => {
    const ctx = await inTenant(req, 'content.read');
    const requestId = parseInput(REQUEST_ID, req.params.requestId);
    await identity.access.require(ctx, 'content:read', {}, { type: 'call_content', id: requestId });
    res.json({ object: 'list', data: (await content.read(ctx, requestId)).map((e) => ({ object: 'call_content', ...e })) });
  });
  return r;
}
