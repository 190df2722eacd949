import { Router, type Request } from 'express';
import { z } from 'zod';
import { AppError } from '../errors.js';
import { authenticate } from '../identity/http.js';
import type { Identity } from '../identity/index.js';
import type { LicenseService } from '../../license/service.js';
import { LicenseError } from '../../license/errors.js';

/**
 * Admin API additions for the console (issue 12):
 *  - GET  /admin/api/license            licence status (platform: `platform:tenants:read`)
 *  - POST /admin/api/license/dry-run    {license}: what would change (`platform:tenants:plan`)
 *  - POST /admin/api/license            {license}: install (`platform:tenants:plan`, audited)
 *  - GET  /admin/api/audit/verify       the hash chain's verification result (platform admins:
 *    full result; tenant admins with `audit:read`: ok/broken and their tenant's entry count only)
 * The licence is appliance-wide, so its routes are platform actions.
 */
const licenseBody = z.object({ license: z.string().min(1).max(256 * 1024) });

function parseLicense(req: Request): string {
  const b = licenseBody.safeParse(req.body ?? {});
  if (!b.success) throw new AppError(400, 'invalid_request', 'Send {"license": "<the licence file text>"}.', { param: 'license' });
  return b.data.license;
}

function licenseError(e: unknown): never {
  if (e instanceof LicenseError) throw new AppError(400, `license_${e.code}`, e.message, { param: 'license' });
  throw e;
}

function evaluationView(e: { state: string; plan: string; licence?: { lid: string; seq: number; customer: { name: string }; expiresAt: string; daysRemaining: number }; limits: unknown; capabilities: readonly string[]; overLimit: unknown }) {
  return {
    state: e.state,
    plan: e.plan,
    licence: e.licence ? { lid: e.licence.lid, seq: e.licence.seq, customer: e.licence.customer.name, expires_at: e.licence.expiresAt, days_remaining: e.licence.daysRemaining } : null,
    limits: e.limits,
    capabilities: e.capabilities,
    over_limit: e.overLimit,
  };
}

export function licenseAdminRouter(identity: Identity, license: LicenseService): Router {
  const r = Router();
  const auth = authenticate(identity, { accept: ['session', 'api_key'] });
  const { access, audit } = identity;

  r.get('/admin/api/license', auth, async (req, res) => {
    await access.require(req.ctx, 'platform:tenants:read', {}, { type: 'license' });
    res.json({ object: 'license_status', ...(await license.status()) });
  });

  r.post('/admin/api/license/dry-run', auth, async (req, res) => {
    await access.require(req.ctx, 'platform:tenants:plan', {}, { type: 'license' });
    const text = parseLicense(req);
    let out;
    try {
      out = license.dryRun(text);
    } catch (e) {
      licenseError(e);
    }
    res.json({ object: 'license_dry_run', before: evaluationView(out.before), after: evaluationView(out.after) });
  });

  r.post('/admin/api/license', auth, async (req, res) => {
    await access.require(req.ctx, 'platform:tenants:plan', {}, { type: 'license' });
    const text = parseLicense(req);
    let out;
    try {
      out = await license.install(text);
    } catch (e) {
      await audit.record(req.ctx, { action: 'license.install', outcome: 'denied', reason: e instanceof LicenseError ? e.code : 'error', tenantId: null, target: { type: 'license', id: null } });
      licenseError(e);
    }
    const p = out.licence.payload;
    await audit.record(req.ctx, { action: 'license.install', tenantId: null, target: { type: 'license', id: p.lid }, details: { result: out.result, seq: p.seq } });
    res.json({ object: 'license_install', result: out.result, lid: p.lid, seq: p.seq, status: await license.status() });
  });

  r.get('/admin/api/audit/verify', auth, async (req, res) => {
    const platform = req.ctx.principal?.platformAdmin === true;
    if (platform) await access.require(req.ctx, 'platform:audit:read', {}, { type: 'audit_log' });
    else await access.require(req.ctx, 'audit:read', {}, { type: 'audit_log' });
    const v = await audit.verify();
    if (platform) return void res.json({ object: 'audit_verification', ...v });
    // A tenant admin learns whether the chain holds and how many of the entries are its
    // tenant's, never the platform-wide count (how busy other tenants are).
    const tenantId = req.ctx.tenant?.id;
    res.json({ object: 'audit_verification', ok: v.ok, checked: tenantId ? await audit.count({ tenantId }) : 0, scope: 'tenant' });
  });
  return r;
}
