import { Router, type Request } from 'express';
import { z } from 'zod';
import { parseInput } from '../http/parse-input.js';
import { authenticate } from '../identity/http.js';
import type { Identity } from '../identity/index.js';
import { serializeKey } from '../keys/service.js';
import { monthById, monthWindow } from '../metering/limits.js';
import type { PlanService } from '../metering/plans.js';
import type { Clock } from '../clock.js';
import { teamInputSchema, teamJson, type TeamService } from './service.js';

/**
 * Teams (issue 24) under /admin/api/tenants/:tenantId/teams. Tenant owners/admins manage every
 * team; a team admin manages their team's members and keys and reads its usage; a team member
 * reads their team. Another team's (or tenant's) id answers an audited 404.
 */
export function teamsRouter(identity: Identity, teams: TeamService, d: { plans: PlanService; clock: Clock; flush: () => Promise<void> | void }): Router {
  const r = Router();
  const admin = authenticate(identity, { accept: ['session', 'api_key'] });
  const inTenant = (req: Request, action: string) => identity.tenants.scopeTo(req.ctx, String(req.params.tenantId), action);
  const base = '/admin/api/tenants/:tenantId/teams';

  r.get(base, admin, async (req, res) => {
    const ctx = await inTenant(req, 'team.list');
    res.json({ object: 'list', data: (await teams.list(ctx)).map(teamJson) });
  });
  r.post(base, admin, async (req, res) => {
    const ctx = await inTenant(req, 'team.create');
    res.status(201).json(teamJson(await teams.create(ctx, parseInput(teamInputSchema, req.body))));
  });
  r.get(`${base}/:teamId`, admin, async (req, res) => {
    const ctx = await inTenant(req, 'team.read');
    res.json(teamJson(await teams.visible(ctx, String(req.params.teamId), 'team:read')));
  });
  r.patch(`${base}/:teamId`, admin, async (req, res) => {
    const ctx = await inTenant(req, 'team.update');
    res.json(teamJson(await teams.update(ctx, String(req.params.teamId), parseInput(teamInputSchema.partial(), req.body))));
  });
  r.delete(`${base}/:teamId`, admin, async (req, res) => {
    const ctx = await inTenant(req, 'team.delete');
    await teams.remove(ctx, String(req.params.teamId));
    res.status(204).end();
  });

  r.get(`${base}/:teamId/members`, admin, async (req, res) => {
    const ctx = await inTenant(req, 'team.members');
    const rows = await teams.members(ctx, String(req.params.teamId));
    res.json({ object: 'list', data: rows.map((m) => ({ user_id: m.userId, email: m.email, name: m.name, role: m.role, source: m.source, created_at: m.createdAt })) });
  });
  r.put(`${base}/:teamId/members/:userId`, admin, async (req, res) => {
    const ctx = await inTenant(req, 'team.member.set');
    const b = parseInput(z.object({ role: z.enum(['admin', 'member']).default('member') }).strict(), req.body ?? {});
    await teams.setMember(ctx, String(req.params.teamId), String(req.params.userId), b.role);
    res.json({ team_id: String(req.params.teamId), user_id: String(req.params.userId), role: b.role });
  });
  r.delete(`${base}/:teamId/members/:userId`, admin, async (req, res) => {
    const ctx = await inTenant(req, 'team.member.remove');
    await teams.removeMember(ctx, String(req.params.teamId), String(req.params.userId));
    res.status(204).end();
  });

  r.get(`${base}/:teamId/keys`, admin, async (req, res) => {
    const ctx = await inTenant(req, 'team.keys');
    res.json({ object: 'list', data: await teams.keys(ctx, String(req.params.teamId)) });
  });
  r.post(`${base}/:teamId/keys`, admin, async (req, res) => {
    const ctx = await inTenant(req, 'team.key.create');
    const b = parseInput(
      z.object({ name: z.string().min(1).max(100), scopes: z.array(z.string()).max(20).optional(), expires_at: z.number().int().nullable().optional(), ownerless: z.boolean().optional() }).strict(),
      req.body,
    );
    const out = await teams.createKey(ctx, String(req.params.teamId), { name: b.name, ...(b.scopes ? { scopes: b.scopes } : {}), ...(b.expires_at !== undefined ? { expiresAt: b.expires_at } : {}), ...(b.ownerless ? { ownerless: true } : {}) });
    res.status(201).json({ ...serializeKey(out.key, d.clock.now()), team_id: String(req.params.teamId), secret: out.secret });
  });
  r.delete(`${base}/:teamId/keys/:keyId`, admin, async (req, res) => {
    const ctx = await inTenant(req, 'team.key.revoke');
    await teams.revokeKey(ctx, String(req.params.teamId), String(req.params.keyId));
    res.status(204).end();
  });

  r.get(`${base}/:teamId/usage`, admin, async (req, res) => {
    const ctx = await inTenant(req, 'team.usage');
    const q = parseInput(z.object({ month: z.string().regex(/^\d{4}-\d{2}$/).optional() }), req.query);
    const tz = (await d.plans.tenantFresh(ctx.tenant!.id))?.timezone ?? 'UTC';
    const w = q.month ? monthById(q.month, tz) : monthWindow(d.clock.now(), tz);
    await d.flush(); // calls that just finished are in the report
    res.json({ month: w.id, timezone: tz, ...(await teams.usage(ctx, String(req.params.teamId), w.start, w.end)) });
  });
  return r;
}
