import { Router } from 'express';
import { authenticate } from '../identity/http.js';
import type { Identity } from '../identity/index.js';
import type { LicenseService } from '../../license/service.js';

/**
 * Small read-only endpoints the web UI needs for every signed-in user:
 *   GET /api/ui/banners   licence banners meant for this user (audience `all`; tenant
 *                         owners/admins and platform admins also see `admins` ones)
 */
export function uiRouter(identity: Identity, license: LicenseService): Router {
  const r = Router();
  r.get('/api/ui/banners', authenticate(identity, { accept: ['session'] }), (req, res) => {
    const p = req.ctx.principal!;
    const admin = p.platformAdmin === true || p.role === 'owner' || p.role === 'admin';
    const banners = license
      .status()
      .banners.filter((b) => b.audience === 'all' || admin)
      .map((b) => ({ level: b.level, message: b.message }));
    res.set('cache-control', 'no-store').json({ object: 'banners', banners });
  });
  return r;
}
