import { Router, type Request } from 'express';
import { z } from 'zod';
import { parseInput } from '../http/parse-input.js';
import { authenticate } from '../identity/http.js';
import type { Identity } from '../identity/index.js';
import type { PromptService } from './service.js';

/**
 * The prompt library:
 *   session (chat):  GET /api/chat/prompts (current versions, for the composer's `/` picker)
 *   tenant admins:   GET/POST /admin/api/tenants/:tenantId/prompts · GET …/prompts/:promptId (with history)
 *                    · PUT …/prompts/:promptId (a new version) · DELETE …/prompts/:promptId
 */
const body = z.object({ title: z.string().max(120), body: z.string().max(20_000) }).strict();

export function promptsRouter(identity: Identity, prompts: PromptService): Router {
  const r = Router();
  const session = authenticate(identity, { accept: ['session'] });
  const admin = authenticate(identity, { accept: ['session', 'api_key'] });
  const inTenant = (req: Request, action: string) => identity.tenants.scopeTo(req.ctx, String(req.params.tenantId), action);
  const id = (req: Request) => String(req.params.promptId);

  r.get('/api/chat/prompts', session, async (req, res) => {
    res.json({ object: 'list', data: await prompts.list(req.ctx) });
  });
  r.get('/admin/api/tenants/:tenantId/prompts', admin, async (req, res) => {
    const ctx = await inTenant(req, 'prompt.read');
    await identity.access.require(ctx, 'settings:read', {}, { type: 'prompt' });
    res.json({ object: 'list', data: await prompts.list(ctx) });
  });
  r.post('/admin/api/tenants/:tenantId/prompts', admin, async (req, res) => {
    res.status(201).json(await prompts.create((await inTenant(req, 'prompt.create')), parseInput(body, req.body)));
  });
  r.get('/admin/api/tenants/:tenantId/prompts/:promptId', admin, async (req, res) => {
    res.json(await prompts.history((await inTenant(req, 'prompt.read')), id(req)));
  });
  r.put('/admin/api/tenants/:tenantId/prompts/:promptId', admin, async (req, res) => {
    res.json(await prompts.edit((await inTenant(req, 'prompt.update')), id(req), parseInput(body, req.body)));
  });
  r.delete('/admin/api/tenants/:tenantId/prompts/:promptId', admin, async (req, res) => {
    await prompts.remove((await inTenant(req, 'prompt.delete')), id(req));
    res.json({ object: 'prompt', id: id(req), deleted: true });
  });
  return r;
}
