import { isUniqueViolation } from '../db/store.js';
import express, { Router, type ErrorRequestHandler, type NextFunction, type Request, type Response } from 'express';
import type { Entitlements } from '../access/entitlements.js';
import { AppError } from '../errors.js';
import { jsonTooDeep } from '../http/json-body.js';
import { MAX_RESULTS, resourceTypes, schemas, serviceProviderConfig } from './discovery.js';
import { ScimError } from './errors.js';
import type { Scim } from './index.js';
import { LIST_SCHEMA } from './resources.js';

/**
 * /scim/v2 (RFC 7644). Mounted before the API's JSON parser (server/app.ts), so every answer
 * under /scim/v2 — body errors included — is in SCIM's error shape and content type.
 *
 * Authentication: only a tenant's SCIM bearer token (server/scim/tokens.ts); sessions, API
 * keys and anything else are 401 here, and a SCIM token is accepted nowhere else. The token's
 * tenant is the request's tenant; the principal is `system:scim:<token id>` (audit actor).
 * The licence capability `scim` gates provisioning; DELETE of a user (deprovisioning) stays
 * possible without it, so a licence problem never keeps a leaver's access.
 */
const CONTENT_TYPE = 'application/scim+json; charset=utf-8';

function send(res: Response, status: number, body: unknown): void {
  res.status(status).set('content-type', CONTENT_TYPE).send(JSON.stringify(body));
}

function fromError(err: unknown): ScimError {
  if (err instanceof ScimError) return err;
  const t = (err as { type?: string } | null)?.type;
  if (t === 'entity.too.large') return new ScimError(413, `Request body is larger than the limit of ${(err as { limit?: number }).limit} bytes.`);
  if (t === 'entity.parse.failed') return new ScimError(400, 'Request body is not valid JSON.', 'invalidSyntax');
  if (t === 'entity.too.deep') return new ScimError(400, 'The request body nests arrays or objects too deeply.', 'invalidSyntax');
  if (t === 'request.aborted') return new ScimError(400, 'The client aborted the request body.', 'invalidSyntax');
  if (t === 'encoding.unsupported' || t === 'charset.unsupported') return new ScimError(415, (err as Error).message);
  // Identity errors keep their status (e.g. 409 seat_limit from the licence); only a taken address is SCIM's `uniqueness`.
  if (err instanceof AppError) return new ScimError(err.status, err.message, err.code === 'user_exists' ? 'uniqueness' : err.status === 400 ? 'invalidValue' : undefined);
  // Two replicas creating the same userName at once: the loser hits the unique index.
  if (isUniqueViolation(err)) return new ScimError(409, 'The resource was created concurrently; read it and retry.', 'uniqueness');
  return new ScimError(500, 'Internal error.');
}

const scimErrors: ErrorRequestHandler = (err, req, res, _next) => {
  const e = fromError(err);
  if (e.status >= 500) req.ctx?.log.error({ err }, 'scim request failed');
  if (res.headersSent) {
    res.end();
    return;
  }
  if (e.status === 401) res.set('www-authenticate', 'Bearer realm="scim"');
  send(res, e.status, e.toBody());
};

/** `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5), on top-level attributes; `id` and `schemas` always stay. */
function project(r: Record<string, unknown>, q: Request['query']): Record<string, unknown> {
  const list = (v: unknown): string[] | undefined =>
    typeof v === 'string' && v.trim()
      ? v
          .split(',')
          .map((x) => x.trim().toLowerCase())
          .filter(Boolean)
      : undefined;
  const keep = list(q.attributes);
  const drop = list(q.excludedAttributes);
  if (!keep && !drop) return r;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) {
    const lk = k.toLowerCase();
    if (lk === 'id' || lk === 'schemas') out[k] = v;
    else if (keep ? keep.some((a) => a === lk || a.startsWith(`${lk}.`)) : !drop!.includes(lk)) out[k] = v;
  }
  return out;
}

function listQuery(q: Request['query']): { filter?: string; startIndex: number; count: number } {
  const int = (v: unknown): number | undefined => (typeof v === 'string' && /^-?\d{1,9}$/.test(v) ? Number(v) : undefined);
  if (q.filter !== undefined && typeof q.filter !== 'string') throw new ScimError(400, 'Give one filter.', 'invalidFilter');
  // RFC 7644 §3.4.2.4: startIndex below 1 means 1; a negative count means 0.
  const startIndex = Math.max(1, int(q.startIndex) ?? 1);
  const count = Math.min(MAX_RESULTS, Math.max(0, int(q.count) ?? 100));
  return { ...(q.filter ? { filter: q.filter } : {}), startIndex, count };
}

function listBody(r: { total: number; resources: Record<string, unknown>[] }, startIndex: number, q: Request['query']) {
  return { schemas: [LIST_SCHEMA], totalResults: r.total, startIndex, itemsPerPage: r.resources.length, Resources: r.resources.map((x) => project(x, q)) };
}

const excludesMembers = (q: Request['query']): boolean => typeof q.excludedAttributes === 'string' && q.excludedAttributes.toLowerCase().split(',').map((s) => s.trim()).includes('members');

export function scimRouter(scim: Scim, opts: { maxBodyBytes: number; publicUrl?: string | undefined; entitlements: () => Entitlements }): Router {
  const outer = Router();
  const r = Router();
  outer.use('/scim/v2', r);

  r.use(async (req: Request, _res: Response, next: NextFunction) => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    const v = await scim.tokens.verify(m?.[1]);
    req.ctx.tenant = v.tenant;
    req.ctx.principal = { kind: 'system', id: `scim:${v.token.id}` };
    const deprovision = req.method === 'DELETE' && /^\/Users\//.test(req.path);
    if (!deprovision && !opts.entitlements().hasFeature('scim')) throw new ScimError(403, 'The licence does not include SCIM provisioning (scim).');
    await scim.tokens.touch(req.ctx, v.token);
    next();
  });
  // After authentication: an anonymous client cannot make the server read a body.
  r.use(
    express.json({
      type: ['application/json', 'application/scim+json'],
      limit: opts.maxBodyBytes,
      strict: true,
      verify: (_req, _res, buf) => {
        if (jsonTooDeep(buf.toString('utf8'))) throw Object.assign(new Error('The request body nests too deeply.'), { type: 'entity.too.deep' });
      },
    }),
  );

  const base = (req: Request): string => `${opts.publicUrl ? opts.publicUrl.replace(/\/+$/, '') : `${req.protocol}://${req.get('host')}`}/scim/v2`;
  const svc = scim.service;
  const id = (req: Request): string => String(req.params.id);

  r.get('/ServiceProviderConfig', (req, res) => send(res, 200, serviceProviderConfig(base(req))));
  r.get('/ResourceTypes', (req, res) => {
    const all = resourceTypes(base(req));
    send(res, 200, { schemas: [LIST_SCHEMA], totalResults: all.length, startIndex: 1, itemsPerPage: all.length, Resources: all });
  });
  r.get('/ResourceTypes/:id', (req, res) => {
    const t = resourceTypes(base(req)).find((x) => x.id === id(req));
    if (!t) throw new ScimError(404, `Resource type ${id(req).slice(0, 40)} not found`);
    send(res, 200, t);
  });
  r.get('/Schemas', (req, res) => {
    const all = schemas(base(req));
    send(res, 200, { schemas: [LIST_SCHEMA], totalResults: all.length, startIndex: 1, itemsPerPage: all.length, Resources: all });
  });
  r.get('/Schemas/:id', (req, res) => {
    const s = schemas(base(req)).find((x) => x.id === id(req));
    if (!s) throw new ScimError(404, `Schema ${id(req).slice(0, 100)} not found`);
    send(res, 200, s);
  });

  r.get('/Users', async (req, res) => {
    const q = listQuery(req.query);
    send(res, 200, listBody(await svc.listUsers(req.ctx, base(req), q), q.startIndex, req.query));
  });
  r.post('/Users', async (req, res) => {
    const u = await svc.createUser(req.ctx, base(req), req.body);
    res.set('location', String((u.meta as { location: string }).location));
    send(res, 201, u);
  });
  r.get('/Users/:id', async (req, res) => send(res, 200, project(await svc.getUser(req.ctx, base(req), id(req)), req.query)));
  r.put('/Users/:id', async (req, res) => send(res, 200, await svc.replaceUser(req.ctx, base(req), id(req), req.body)));
  r.patch('/Users/:id', async (req, res) => send(res, 200, await svc.patchUser(req.ctx, base(req), id(req), req.body)));
  r.delete('/Users/:id', async (req, res) => {
    await svc.deleteUser(req.ctx, id(req));
    res.status(204).end();
  });

  r.get('/Groups', async (req, res) => {
    const q = listQuery(req.query);
    send(res, 200, listBody(await svc.listGroups(req.ctx, base(req), q, !excludesMembers(req.query)), q.startIndex, req.query));
  });
  r.post('/Groups', async (req, res) => {
    const g = await svc.createGroup(req.ctx, base(req), req.body);
    res.set('location', String((g.meta as { location: string }).location));
    send(res, 201, g);
  });
  r.get('/Groups/:id', async (req, res) => send(res, 200, project(await svc.getGroup(req.ctx, base(req), id(req), !excludesMembers(req.query)), req.query)));
  r.put('/Groups/:id', async (req, res) => send(res, 200, await svc.replaceGroup(req.ctx, base(req), id(req), req.body)));
  r.patch('/Groups/:id', async (req, res) => send(res, 200, project(await svc.patchGroup(req.ctx, base(req), id(req), req.body), req.query)));
  r.delete('/Groups/:id', async (req, res) => {
    await svc.deleteGroup(req.ctx, id(req));
    res.status(204).end();
  });

  r.use((req: Request) => {
    throw new ScimError(404, `No SCIM endpoint ${req.method} ${req.path.slice(0, 100)}`);
  });
  r.use(scimErrors);
  return outer;
}
