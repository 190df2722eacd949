import { Router } from 'express';
import { z } from 'zod';
import { parseInput } from '../http/parse-input.js';
import { authenticate } from '../identity/http.js';
import type { Identity } from '../identity/index.js';
import type { AdoptionService } from './service.js';

/** GET /admin/api/tenants/:tenantId/adoption?days=30 — active people per day and week, share of members (tenant admins, usage:read). */
export function adoptionRouter(identity: Identity, adoption: AdoptionService): Router {
  const r = Router();
  const admin = authenticate(identity, { accept: ['session', 'api_key'] });
  r.get('/admin/api/tenants/:tenantId/adoption', admin, async (req, res) => {
    const ctx = await identity.tenants.scopeTo(req.ctx, String(req.params.tenantId), 'usage.read');
    const q = parseInput(z.object({ days: z.coerce.number().int().min(1).max(366).default(30) }), req.query);
    res.json(await adoption.view(ctx, q.days));
  });
  return r;
}
