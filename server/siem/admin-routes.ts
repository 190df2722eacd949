import { Router, type Request, type Response } from 'express';
import { authenticate } from '../identity/http.js';
import type { Identity } from '../identity/index.js';
import type { SiemSinks } from './sinks.js';

/**
 * SIEM sinks in the admin API, read-only (platform administrators): each sink with its backlog,
 * cursor and last error. Sinks are added and changed with `enclave siem sinks …` (audited).
 *   GET /admin/api/siem/sinks
 */
export function siemAdminRouter(identity: Identity, sinks: SiemSinks): Router {
  const r = Router();
  r.use('/admin/api/siem', authenticate(identity, { accept: ['session', 'api_key'] }));
  r.get('/admin/api/siem/sinks', async (req: Request, res: Response) => {
    await identity.access.require(req.ctx, 'platform:audit:read');
    res.json({ object: 'list', data: await sinks.list() });
  });
  return r;
}
