import { Router, type Request } from 'express';
import { z } from 'zod';
import { AppError } from '../errors.js';
import type { Gateway } from '../gateway/index.js';
import { parseInput } from '../http/parse-input.js';
import { authenticate } from '../identity/http.js';
import type { Identity } from '../identity/index.js';
import { replayCall } from './replay.js';

const time = z.union([z.coerce.number().int().min(0), z.string().datetime({ offset: true })]).transform((v) => (typeof v === 'number' ? v : Date.parse(v)));
const searchQuery = z
  .object({
    from: time.optional(),
    to: time.optional(),
    user: z.string().max(100).optional(),
    key: z.string().max(100).optional(),
    team: z.string().max(100).optional(),
    model: z.string().max(200).optional(),
    deployment: z.string().max(200).optional(),
    status: z.enum(['ok', 'error', 'refused', 'client_disconnect', 'stream_error']).optional(),
    code: z.string().max(100).optional(),
    workflow: z.string().max(64).optional(),
    request_id: z.string().max(100).optional(),
    limit: z.coerce.number().int().min(1).max(200).default(50),
    cursor: z.string().max(100).optional(),
  })
  .strict();
const REQUEST_ID = z.string().min(1).max(100);
const replayBody = z.object({ deployment: z.string().min(1).max(200).optional() }).strict();

/**
 * The request explorer's API (issue 25), per tenant (tenant admins of the tenant, platform
 * admins of any; another tenant is 404, audited):
 *   GET  /admin/api/tenants/:tenantId/calls                        usage:read — search (newest first, cursor)
 *   GET  /admin/api/tenants/:tenantId/calls/:requestId             usage:read — the call's decision record(s)
 *   POST /admin/api/tenants/:tenantId/calls/:requestId/replay      content:read + the caller's own models:invoke —
 *                                                                  re-run as a new metered call (content-logged calls only; audited)
 * A trace carries no content; the export is the same JSON the console shows.
 */
export function callTraceRouter(identity: Identity, gateway: Gateway): Router {
  const r = Router();
  const admin = authenticate(identity, { accept: ['session', 'api_key'] });
  const inTenant = (req: Request, action: string) => identity.tenants.scopeTo(req.ctx, String(req.params.tenantId), action);

  r.get('/admin/api/tenants/:tenantId/calls', admin, async (req, res) => {
    const ctx = await inTenant(req, 'call_trace.list');
    await identity.access.require(ctx, 'usage:read', {}, { type: 'tenant', id: ctx.tenant!.id });
    const q = parseInput(searchQuery, req.query);
    const p = await gateway.traces.search(
      ctx,
      {
        ...(q.from !== undefined ? { from: q.from } : {}),
        ...(q.to !== undefined ? { to: q.to } : {}),
        ...(q.user ? { userId: q.user } : {}),
        ...(q.key ? { keyId: q.key } : {}),
        ...(q.team ? { teamId: q.team } : {}),
        ...(q.model ? { model: q.model } : {}),
        ...(q.deployment ? { deployment: q.deployment } : {}),
        ...(q.status ? { status: q.status } : {}),
        ...(q.code ? { errorCode: q.code } : {}),
        ...(q.workflow ? { workflow: q.workflow } : {}),
        ...(q.request_id ? { requestId: q.request_id } : {}),
        ...(q.cursor ? { beforeId: q.cursor } : {}),
      },
      q.limit,
    );
    res.json({ object: 'list', data: p.data, next_cursor: p.next_cursor });
  });

  r.get('/admin/api/tenants/:tenantId/calls/:requestId', admin, async (req, res) => {
    const ctx = await inTenant(req, 'call_trace.read');
    const requestId = parseInput(REQUEST_ID, req.params.requestId);
    await identity.access.require(ctx, 'usage:read', {}, { type: 'call_trace', id: requestId });
    try {
      res.json({ object: 'list', data: await gateway.traces.byRequest(ctx, requestId) });
    } catch (e) {
      if (e instanceof AppError && e.status === 404) await identity.audit.record(ctx, { action: 'call_trace.read', outcome: 'denied', reason: 'not_found', target: { type: 'call_trace', id: requestId } });
      throw e;
    }
  });

  r.post('/admin/api/tenants/:tenantId/calls/:requestId/replay', admin, async (req, res) => {
    const ctx = await inTenant(req, 'call.replay');
    const requestId = parseInput(REQUEST_ID, req.params.requestId);
    await identity.access.require(ctx, 'content:read', {}, { type: 'call_trace', id: requestId });
    const input = parseInput(replayBody, req.body);
    try {
      res.json(await replayCall(gateway, identity.audit, ctx, requestId, input));
    } catch (e) {
      if (e instanceof AppError && e.status === 404) await identity.audit.record(ctx, { action: 'call.replay', outcome: 'denied', reason: 'not_found', target: { type: 'call_trace', id: requestId } });
      throw e;
    }
  });
  return r;
}
