import { Router } from 'express';
import { authenticate } from '../identity/http.js';
import type { Identity } from '../identity/index.js';
import type { Scim } from './index.js';
import { serializeToken } from './tokens.js';

/**
 * GET /admin/api/tenants/:tenantId/scim (settings:read): the tenant's provisioning state for
 * its admins and the console — whether a SCIM token is live (prefix, created, last used; never
 * the secret), how many users and groups the directory provisioned, the group → role rules.
 * Tokens are made on the host (`enclave scim token …`). Another tenant is 404, audited.
 */
export function scimAdminRouter(identity: Identity, scim: Scim): Router {
  const r = Router();
  const admin = authenticate(identity, { accept: ['session', 'api_key'] });
  r.get('/admin/api/tenants/:tenantId/scim', admin, async (req, res) => {
    const ctx = await identity.tenants.scopeTo(req.ctx, String(req.params.tenantId), 'scim.read');
    await identity.access.require(ctx, 'settings:read');
    const token = (await scim.tokens.list(ctx))[0];
    res.json({ object: 'scim_status', endpoint: '/scim/v2', token: token ? serializeToken(token) : null, ...(await scim.service.summary(ctx)) });
  });
  return r;
}
