import { Router, type Request } from 'express';
import { z } from 'zod';
import { parseInput } from '../http/parse-input.js';
import { authenticate } from '../identity/http.js';
import type { Identity } from '../identity/index.js';
import type { FeedbackService } from './service.js';

/**
 * Feedback on answers:
 *   session (chat):  PUT /api/chat/messages/:messageId/feedback {rating: up|down, comment?} · DELETE (withdraw)
 *   tenant admins:   GET /admin/api/tenants/:tenantId/feedback?days=30&comments=5 (per model)
 */
export function feedbackRouter(identity: Identity, feedback: FeedbackService): Router {
  const r = Router();
  const session = authenticate(identity, { accept: ['session'] });
  const admin = authenticate(identity, { accept: ['session', 'api_key'] });
  const id = (req: Request) => String(req.params.messageId);

  r.put('/api/chat/messages/:messageId/feedback', session, async (req, res) => {
    const b = parseInput(z.object({ rating: z.enum(['up', 'down']), comment: z.string().max(2000).nullable().optional() }).strict(), req.body);
    res.json({ object: 'feedback', message_id: id(req), ...(await feedback.set(req.ctx, id(req), b)) });
  });
  r.delete('/api/chat/messages/:messageId/feedback', session, async (req, res) => {
    await feedback.clear(req.ctx, id(req));
    res.json({ object: 'feedback', message_id: id(req), deleted: true });
  });
  r.get('/admin/api/tenants/:tenantId/feedback', admin, async (req, res) => {
    const ctx = await identity.tenants.scopeTo(req.ctx, String(req.params.tenantId), 'feedback.read');
    const q = parseInput(z.object({ days: z.coerce.number().int().min(1).max(366).default(30), comments: z.coerce.number().int().min(0).max(50).default(5) }), req.query);
    res.json(await feedback.summary(ctx, q));
  });
  return r;
}
