import { Router, type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import type { AuditRow } from '../audit/log.js';
import { AppError } from '../errors.js';
import { parseInput } from '../http/parse-input.js';
import { authenticate } from '../identity/http.js';
import type { Identity } from '../identity/index.js';
import { serializeTenant } from '../identity/tenants.js';
import { serializeUser } from '../identity/users.js';
import { ROLES, SCOPES } from '../access/permissions.js';
import { serializeKey } from '../keys/service.js';

/**
 * The admin API (/admin/api/…), for sessions and for API keys with admin:* scopes.
 * Tenant-owned resources live under /tenants/:tenantId/…; a tenant the principal may not
 * see (and any resource of it) answers 404. Lists use cursor pagination:
 * `?limit=1..200&cursor=<next_cursor>` → `{"object":"list","data":[…],"next_cursor":…}`.
 * Routes stay thin: parse, call one service operation with the context, serialize.
 */
const CLASSIFICATION = z.enum(['public', 'internal', 'confidential', 'restricted']);
const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(100).optional(),
});

const list = <T>(p: { data: T[]; next_cursor: string | null }) => ({ object: 'list' as const, data: p.data, next_cursor: p.next_cursor });

export function serializeAudit(e: AuditRow) {
  return {
    object: 'audit_event' as const,
    id: e.id,
    seq: e.seq,
    at: e.at,
    tenant_id: e.tenantRef,
    actor: { type: e.actorType, id: e.actorId },
    action: e.action,
    target: e.targetType ? { type: e.targetType, id: e.targetId } : null,
    outcome: e.outcome,
    reason: e.reason,
    ip: e.ip,
    user_agent: e.userAgent,
    request_id: e.requestId,
    details: JSON.parse(e.details) as unknown,
    prev_hash: e.prevHash,
    hash: e.hash,
  };
}

/** A tenant id as newId('ten') makes it (tests and imports may use shorter suffixes). */
export const TENANT_ID = /^ten_[0-9a-z]{1,64}$/;

/**
 * Refuses `/admin/api/tenants/<not a tenant id>/…` with 400 before any router looks the
 * tenant up: a client bug (a console that sent `tenants/null/…`) is not an access attempt,
 * and must not write "denied" entries into the tamper-evident audit log. Mounted ahead of
 * every admin router (server/app.ts), so it covers the gateway, metering, jobs, SSO … routes
 * under the same prefix too.
 */
export function tenantIdGuard(): Router {
  const r = Router();
  r.use('/admin/api/tenants/:tenantId', (req: Request, _res: Response, next: NextFunction) => {
    const id = String(req.params.tenantId);
    if (!TENANT_ID.test(id)) {
      throw new AppError(400, 'invalid_tenant_id', `"${id.slice(0, 40)}" is not a tenant id (ten_…); list tenants with GET /admin/api/tenants.`, { param: 'tenantId' });
    }
    next();
  });
  return r;
}

export function adminRouter(identity: Identity): Router {
  const { tenants, users, keys, access, audit } = identity;
  const r = Router();
  r.use('/admin/api', authenticate(identity, { accept: ['session', 'api_key'] }));
  const inTenant = (req: Request, action: string) => tenants.scopeTo(req.ctx, String(req.params.tenantId), action);

  r.get('/admin/api/me', (req, res) => {
    const p = req.ctx.principal!;
    res.json({ object: 'principal', kind: p.kind, id: p.id, user_id: p.userId ?? null, role: p.role ?? null, platform_admin: p.platformAdmin ?? false, tenant: req.ctx.tenant ?? null, scopes: req.ctx.scopes });
  });

  // --- tenants ---
  r.get('/admin/api/tenants', async (req, res) => {
    const q = parseInput(listQuery.extend({ status: z.enum(['active', 'suspended']).optional() }), req.query);
    res.json(list((await tenants.list(req.ctx, q))));
  });
  r.post('/admin/api/tenants', async (req, res) => {
    const b = parseInput(z.object({ slug: z.string(), name: z.string().max(200).optional(), plan: z.string().max(100).nullable().optional(), default_classification: CLASSIFICATION.optional() }), req.body);
    const t = await tenants.create(req.ctx, { slug: b.slug, ...(b.name ? { name: b.name } : {}), ...(b.plan !== undefined ? { plan: b.plan } : {}), ...(b.default_classification ? { defaultClassification: b.default_classification } : {}) });
    res.status(201).json(serializeTenant(t));
  });
  r.get('/admin/api/tenants/:tenantId', async (req, res) => {
    res.json(serializeTenant((await tenants.get(req.ctx, String(req.params.tenantId)))));
  });
  r.patch('/admin/api/tenants/:tenantId', async (req, res) => {
    const b = parseInput(z.object({ name: z.string().max(200).optional(), plan: z.string().max(100).nullable().optional(), default_classification: CLASSIFICATION.optional() }).strict(), req.body);
    const t = await tenants.update(req.ctx, String(req.params.tenantId), {
      ...(b.name !== undefined ? { name: b.name } : {}),
      ...(b.plan !== undefined ? { plan: b.plan } : {}),
      ...(b.default_classification ? { defaultClassification: b.default_classification } : {}),
    });
    res.json(serializeTenant(t));
  });
  r.post('/admin/api/tenants/:tenantId/suspend', async (req, res) => {
    res.json(serializeTenant((await tenants.setStatus(req.ctx, String(req.params.tenantId), 'suspended'))));
  });
  r.post('/admin/api/tenants/:tenantId/resume', async (req, res) => {
    res.json(serializeTenant((await tenants.setStatus(req.ctx, String(req.params.tenantId), 'active'))));
  });

  // --- members ---
  r.get('/admin/api/tenants/:tenantId/members', async (req, res) => {
    const ctx = await inTenant(req, 'membership.read');
    const q = parseInput(listQuery.extend({ status: z.enum(['active', 'deactivated']).optional(), email: z.string().max(254).optional() }), req.query);
    res.json(list((await users.members(ctx, q))));
  });
  // POST …/members invites (consent before membership): server/identity/authority-routes.ts.
  r.put('/admin/api/tenants/:tenantId/members/:userId', async (req, res) => {
    const ctx = await inTenant(req, 'membership.grant');
    const b = parseInput(z.object({ role: z.enum(ROLES) }), req.body);
    const m = await users.grant(ctx, String(req.params.userId), b.role);
    res.json(serializeUser(m.user, { role: m.role }));
  });
  r.delete('/admin/api/tenants/:tenantId/members/:userId', async (req, res) => {
    const ctx = await inTenant(req, 'membership.revoke');
    await users.removeMember(ctx, String(req.params.userId));
    res.json({ object: 'membership', user_id: req.params.userId, deleted: true });
  });

  // --- API keys ---
  const keyBody = z.object({
    name: z.string().max(100),
    owner_user_id: z.string().max(100).nullable().optional(),
    scopes: z.array(z.enum(SCOPES)).min(1).optional(),
    allowed_models: z.array(z.string().min(1).max(200)).max(500).optional(),
    max_classification: CLASSIFICATION.nullable().optional(),
    expires_at: z.number().int().positive().nullable().optional(),
  });
  r.get('/admin/api/tenants/:tenantId/keys', async (req, res) => {
    const ctx = await inTenant(req, 'key.read');
    const q = parseInput(listQuery.extend({ owner: z.string().max(100).optional(), status: z.enum(['active', 'revoked']).optional() }), req.query);
    res.json(list((await keys.list(ctx, q))));
  });
  r.post('/admin/api/tenants/:tenantId/keys', async (req, res) => {
    const ctx = await inTenant(req, 'key.create');
    const b = parseInput(keyBody, req.body);
    const { key, secret } = await keys.create(ctx, {
      name: b.name,
      ...(b.owner_user_id !== undefined ? { ownerUserId: b.owner_user_id } : {}),
      ...(b.scopes ? { scopes: b.scopes } : {}),
      ...(b.allowed_models ? { allowedModels: b.allowed_models } : {}),
      ...(b.max_classification !== undefined ? { maxClassification: b.max_classification } : {}),
      ...(b.expires_at !== undefined ? { expiresAt: b.expires_at } : {}),
    });
    // The secret is shown here once and never again.
    res.status(201).json({ ...serializeKey(key, ctx.clock.now()), secret });
  });
  r.get('/admin/api/tenants/:tenantId/keys/:keyId', async (req, res) => {
    const ctx = await inTenant(req, 'key.read');
    res.json(serializeKey((await keys.get(ctx, String(req.params.keyId))), ctx.clock.now()));
  });
  r.post('/admin/api/tenants/:tenantId/keys/:keyId/rotate', async (req, res) => {
    const ctx = await inTenant(req, 'key.rotate');
    const b = parseInput(z.object({ overlap_seconds: z.number().int().min(0).max(30 * 86400).optional() }), req.body);
    const out = await keys.rotate(ctx, String(req.params.keyId), b.overlap_seconds !== undefined ? { overlapSeconds: b.overlap_seconds } : {});
    res.status(201).json({ ...serializeKey(out.key, ctx.clock.now()), secret: out.secret, previous: serializeKey(out.previous, ctx.clock.now()) });
  });
  r.delete('/admin/api/tenants/:tenantId/keys/:keyId', async (req, res) => {
    const ctx = await inTenant(req, 'key.revoke');
    res.json(serializeKey((await keys.revoke(ctx, String(req.params.keyId))), ctx.clock.now()));
  });

  // --- audit ---
  const auditQuery = z.object({
    limit: z.coerce.number().int().min(1).max(1000).default(50),
    cursor: z.coerce.number().int().positive().optional(),
    action: z.string().max(100).optional(),
    actor: z.string().max(100).optional(),
    outcome: z.enum(['allowed', 'denied']).optional(),
    since: z.coerce.number().int().optional(),
    until: z.coerce.number().int().optional(),
    tenant: z.string().max(100).optional(),
  });
  const auditPage = (rows: AuditRow[], limit: number) => {
    const more = rows.length > limit;
    const items = more ? rows.slice(0, limit) : rows;
    return { object: 'list' as const, data: items.map(serializeAudit), next_cursor: more ? String(items.at(-1)!.seq) : null };
  };
  const auditFilters = (q: z.output<typeof auditQuery>) => ({
    limit: q.limit + 1,
    ...(q.cursor ? { beforeSeq: q.cursor } : {}),
    ...(q.action ? { action: q.action } : {}),
    ...(q.actor ? { actorId: q.actor } : {}),
    ...(q.outcome ? { outcome: q.outcome } : {}),
    ...(q.since !== undefined ? { since: q.since } : {}),
    ...(q.until !== undefined ? { until: q.until } : {}),
  });
  r.get('/admin/api/tenants/:tenantId/audit', async (req, res) => {
    const ctx = await inTenant(req, 'audit.read');
    await access.require(ctx, 'audit:read', {}, { type: 'audit_log' });
    const q = parseInput(auditQuery.omit({ tenant: true }), req.query);
    res.json(auditPage((await audit.list({ ...auditFilters(q), tenantId: ctx.tenant!.id })), q.limit));
  });
  r.get('/admin/api/audit', async (req, res) => {
    await access.require(req.ctx, 'platform:audit:read', {}, { type: 'audit_log' });
    const q = parseInput(auditQuery, req.query);
    res.json(auditPage((await audit.list({ ...auditFilters(q), ...(q.tenant ? { tenantId: q.tenant } : {}) })), q.limit));
  });

  // --- users (platform-wide; tenant principals see their tenant's members) ---
  r.get('/admin/api/users', async (req, res) => {
    const q = parseInput(listQuery.extend({ status: z.enum(['active', 'deactivated']).optional(), email: z.string().max(254).optional() }), req.query);
    res.json(list((await users.list(req.ctx, q))));
  });
  r.post('/admin/api/users', async (req, res) => {
    const b = parseInput(z.object({ email: z.string(), name: z.string().max(200).optional(), password: z.string().max(1024).optional(), platform_admin: z.boolean().optional() }), req.body);
    const u = await users.create(req.ctx, { email: b.email, ...(b.name ? { name: b.name } : {}), password: b.password ?? null, platformAdmin: b.platform_admin ?? false });
    res.status(201).json(serializeUser(u));
  });
  r.get('/admin/api/users/:userId', async (req, res) => {
    const { user, role } = await users.get(req.ctx, String(req.params.userId));
    res.json(serializeUser(user, { role }));
  });
  r.post('/admin/api/users/:userId/deactivate', async (req, res) => {
    res.json(serializeUser((await users.deactivate(req.ctx, String(req.params.userId)))));
  });
  r.post('/admin/api/users/:userId/reactivate', async (req, res) => {
    res.json(serializeUser((await users.reactivate(req.ctx, String(req.params.userId)))));
  });
  return r;
}

/** Every route of a router as "METHOD /path" (the cross-tenant test enumerates these). */
export function listRoutes(router: Router): string[] {
  const out: string[] = [];
  for (const layer of router.stack as { route?: { path: string; methods: Record<string, boolean> } }[]) {
    if (!layer.route) continue;
    for (const m of Object.keys(layer.route.methods)) if (m !== '_all') out.push(`${m.toUpperCase()} ${layer.route.path}`);
  }
  return out;
}
