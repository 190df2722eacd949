import { Router, type Request } from 'express';
import { z } from 'zod';
import { CLASSIFICATIONS } from '../contract.js';
import { parseInput } from '../http/parse-input.js';
import { authenticate } from '../identity/http.js';
import type { Identity } from '../identity/index.js';
import type { AssistantService } from './service.js';

/**
 * Assistants (presets):
 *   session (chat):     GET /api/chat/assistants (shared + mine) · POST (a private one) · PATCH/DELETE /api/chat/assistants/:assistantId (mine)
 *   tenant admins:      GET/POST /admin/api/tenants/:tenantId/assistants · PATCH/DELETE …/assistants/:assistantId (shared ones)
 */
const body = z
  .object({
    name: z.string().max(80),
    description: z.string().max(300).optional(),
    instructions: z.string().max(20_000),
    model: z.string().max(200).nullable().optional(),
    classification: z.enum(CLASSIFICATIONS).nullable().optional(),
    starters: z.array(z.string().max(300)).max(6).optional(),
  })
  .strict();

export function assistantsRouter(identity: Identity, assistants: AssistantService): Router {
  const r = Router();
  const session = authenticate(identity, { accept: ['session'] });
  const admin = authenticate(identity, { accept: ['session', 'api_key'] });
  const inTenant = (req: Request, action: string) => identity.tenants.scopeTo(req.ctx, String(req.params.tenantId), action);
  const id = (req: Request) => String(req.params.assistantId);

  r.get('/api/chat/assistants', session, async (req, res) => {
    res.json({ object: 'list', data: await assistants.listVisible(req.ctx) });
  });
  r.post('/api/chat/assistants', session, async (req, res) => {
    res.status(201).json(await assistants.create(req.ctx, parseInput(body, req.body), 'private'));
  });
  r.patch('/api/chat/assistants/:assistantId', session, async (req, res) => {
    res.json(await assistants.update(req.ctx, id(req), parseInput(body.partial(), req.body), 'private'));
  });
  r.delete('/api/chat/assistants/:assistantId', session, async (req, res) => {
    await assistants.remove(req.ctx, id(req), 'private');
    res.json({ object: 'assistant', id: id(req), deleted: true });
  });

  r.get('/admin/api/tenants/:tenantId/assistants', admin, async (req, res) => {
    res.json({ object: 'list', data: await assistants.listShared((await inTenant(req, 'assistant.read'))) });
  });
  r.post('/admin/api/tenants/:tenantId/assistants', admin, async (req, res) => {
    const ctx = await inTenant(req, 'assistant.create');
    res.status(201).json(await assistants.create(ctx, parseInput(body, req.body), 'tenant'));
  });
  r.patch('/admin/api/tenants/:tenantId/assistants/:assistantId', admin, async (req, res) => {
    const ctx = await inTenant(req, 'assistant.update');
    res.json(await assistants.update(ctx, id(req), parseInput(body.partial(), req.body), 'tenant'));
  });
  r.delete('/admin/api/tenants/:tenantId/assistants/:assistantId', admin, async (req, res) => {
    const ctx = await inTenant(req, 'assistant.delete');
    await assistants.remove(ctx, id(req), 'tenant');
    res.json({ object: 'assistant', id: id(req), deleted: true });
  });
  return r;
}
