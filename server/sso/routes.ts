import express, { Router, type CookieOptions, type Request, type Response } from 'express';
import { z } from 'zod';
import { parseInput } from '../http/parse-input.js';
import { authenticate, clientOf, readCookie } from '../identity/http.js';
import type { Identity } from '../identity/index.js';
import { SESSION_COOKIE } from '../identity/sessions.js';
import { safeReturnTo } from './mapping.js';
import { samlIdpInput, samlIdpPatch } from './saml/settings.js';

/** A SAML IdP body names its protocol or carries SAML-only settings (server/sso/saml/settings.ts). */
const SAML_KEYS = ['protocol', 'metadata_xml', 'idp_entity_id', 'sso_url', 'certificates', 'email_attribute', 'name_attribute', 'groups_attribute', 'roles_attribute', 'allow_idp_initiated'];
const isSaml = (b: unknown): boolean =>
  typeof b === 'object' && b !== null && SAML_KEYS.some((k) => (k === 'protocol' ? (b as { protocol?: unknown }).protocol === 'saml' : k in b));
import { idpInput, idpPatch, OIDC_PATHS, serializeIdp, TX_COOKIE, TX_TTL_S, type SsoService } from './service.js';

/**
 * SSO routes. Public (browser): GET /auth/oidc/providers?tenant=<slug> (sign-in buttons),
 * GET /auth/oidc/:idp/login?returnTo=/path, GET /auth/oidc/callback, POST
 * /auth/oidc/backchannel-logout (IdP → Enclave), POST /auth/oidc/logout (session + CSRF;
 * answers the IdP's end-session URL). The redirect URI Enclave sends is
 * <ENCLAVE_PUBLIC_URL>/auth/oidc/callback (the bundled proxy sends only Keycloak's own
 * /auth/{realms,resources,admin,js} prefixes to Keycloak).
 */
export function ssoRouter(sso: SsoService, identity: Identity, opts: { cookieSecure: 'auto' | 'true' | 'false'; maxAgeMs: number }): Router {
  const r = Router();
  const secure = (req: Request) => opts.cookieSecure === 'true' || (opts.cookieSecure === 'auto' && req.secure);
  const cookie = (req: Request, maxAge?: number): CookieOptions => ({ httpOnly: true, sameSite: 'lax', path: '/', secure: secure(req), ...(maxAge ? { maxAge } : {}) });
  const origin = (req: Request) => `${req.protocol}://${req.get('host')}`;
  const noStore = (res: Response) => res.set('cache-control', 'no-store');

  r.get('/auth/oidc/providers', async (req, res) => {
    // A tenant's buttons need the user's address as a hint (its domain verified for the
    // tenant): the answer for an unknown tenant and a known one is the same (no enumeration).
    const tenant = typeof req.query.tenant === 'string' ? req.query.tenant.slice(0, 100) : undefined;
    const email = typeof req.query.email === 'string' ? req.query.email.slice(0, 254) : undefined;
    res.set('cache-control', 'no-store');
    res.json({ object: 'list', data: await sso.providers({ ...(tenant ? { tenant } : {}), ...(email ? { email } : {}) }) });
  });

  // The signed-in account holder links an identity of this IdP to their own account
  // (server/sso/authority.ts: `linked_by_user`). POST + CSRF; the client then opens `url`.
  r.post('/auth/oidc/:idp/link', authenticate(identity, { accept: ['session'] }), async (req, res) => {
    noStore(res);
    const { url, txId } = await sso.startLogin(req.ctx, String(req.params.idp).slice(0, 100), { returnTo: '/me', origin: origin(req), linkUserId: req.ctx.principal!.userId! });
    res.cookie(TX_COOKIE, txId, cookie(req, TX_TTL_S * 1000));
    res.json({ object: 'sso_redirect', url });
  });

  // Accepting an invitation link through the inviting tenant's IdP (the invitee's SSO route).
  r.post('/auth/invite/sso', async (req, res) => {
    req.ctx.client = clientOf(req);
    noStore(res);
    const b = parseInput(z.object({ token: z.string().min(1).max(200), idp: z.string().min(1).max(100) }), req.body);
    const { url, txId } = await sso.startLogin(req.ctx, b.idp, { returnTo: '/chat', origin: origin(req), invitationToken: b.token });
    res.cookie(TX_COOKIE, txId, cookie(req, TX_TTL_S * 1000));
    res.json({ object: 'sso_redirect', url });
  });

  r.get('/auth/oidc/:idp/login', async (req, res) => {
    req.ctx.client = clientOf(req);
    noStore(res);
    const { url, txId } = await sso.startLogin(req.ctx, String(req.params.idp).slice(0, 100), { returnTo: safeReturnTo(req.query.returnTo), origin: origin(req) });
    res.cookie(TX_COOKIE, txId, cookie(req, TX_TTL_S * 1000));
    res.redirect(302, url);
  });

  r.get(OIDC_PATHS.callback, async (req, res) => {
    req.ctx.client = clientOf(req);
    noStore(res);
    res.clearCookie(TX_COOKIE, cookie(req));
    const query = new URL(req.originalUrl, 'http://enclave.invalid').searchParams;
    const out = await sso.callback(req.ctx, readCookie(req, TX_COOKIE), query);
    // A session the browser already had is ended, never promoted (no fixation).
    const previous = readCookie(req, SESSION_COOKIE);
    if (previous) {
      const prev = await identity.sessions.authenticate(previous);
      if (prev.ok) await identity.sessions.logout(req.ctx, prev.auth.session.id);
    }
    res.cookie(SESSION_COOKIE, out.token, cookie(req, opts.maxAgeMs));
    res.redirect(302, out.returnTo);
  });

  const form = express.urlencoded({ extended: false, limit: '32kb' });
  r.post(OIDC_PATHS.backchannelLogout, form, async (req, res) => {
    req.ctx.client = clientOf(req);
    noStore(res);
    const token = (req.body as Record<string, unknown> | undefined)?.logout_token;
    const ended = await sso.backchannelLogout(req.ctx, token);
    res.json({ ok: true, sessions_ended: ended });
  });

  r.post('/auth/oidc/logout', authenticate(identity, { accept: ['session'] }), async (req, res) => {
    noStore(res);
    const url = await sso.logout(req.ctx, req.ctx.principal!.sessionId!, origin(req));
    res.clearCookie(SESSION_COOKIE, cookie(req));
    res.json({ ok: true, end_session_url: url });
  });
  return r;
}

/**
 * Admin API for SSO (sessions and admin-scoped API keys):
 *   GET|PUT /admin/api/sso/platform            platform IdP view / mapping (platform admins)
 *   GET     /admin/api/sso/platform/claims     last received mapped claim values
 *   POST    /admin/api/sso/platform/test       discovery check
 *   GET|POST /admin/api/tenants/:tenantId/sso/idps
 *   GET|PATCH|DELETE /admin/api/tenants/:tenantId/sso/idps/:idpId
 *   GET     /admin/api/tenants/:tenantId/sso/idps/:idpId/claims
 *   POST    /admin/api/tenants/:tenantId/sso/idps/:idpId/test
 * Another tenant's IdP (or tenant) answers 404.
 */
export function ssoAdminRouter(sso: SsoService, identity: Identity): Router {
  const r = Router();
  const auth = authenticate(identity, { accept: ['session', 'api_key'] });
  r.use(['/admin/api/sso', '/admin/api/tenants/:tenantId/sso'], auth);
  const inTenant = (req: Request, action: string) => identity.tenants.scopeTo(req.ctx, String(req.params.tenantId), action);

  r.get('/admin/api/sso/platform', async (req, res) => {
    res.json(await sso.platformView(req.ctx));
  });
  r.put('/admin/api/sso/platform', async (req, res) => {
    res.json({ object: 'sso_platform_settings', settings: await sso.setPlatformSettings(req.ctx, req.body) });
  });
  r.get('/admin/api/sso/platform/claims', async (req, res) => {
    res.json({ object: 'sso_claims', idp: 'platform', last_claims: await sso.lastClaims(req.ctx, 'platform') });
  });
  r.post('/admin/api/sso/platform/test', async (req, res) => {
    res.json({ object: 'sso_test', idp: 'platform', ...(await sso.test(req.ctx, 'platform')) });
  });

  r.get('/admin/api/tenants/:tenantId/sso/idps', async (req, res) => {
    const ctx = await inTenant(req, 'sso.idp.read');
    res.json({ object: 'list', data: (await sso.listIdps(ctx)).map(serializeIdp), next_cursor: null });
  });
  r.post('/admin/api/tenants/:tenantId/sso/idps', async (req, res) => {
    const ctx = await inTenant(req, 'sso.idp.create');
    res.status(201).json(serializeIdp(await sso.createIdp(ctx, isSaml(req.body) ? parseInput(samlIdpInput, req.body) : parseInput(idpInput, req.body))));
  });
  r.get('/admin/api/tenants/:tenantId/sso/idps/:idpId', async (req, res) => {
    const ctx = await inTenant(req, 'sso.idp.read');
    res.json(serializeIdp(await sso.getIdp(ctx, String(req.params.idpId))));
  });
  r.patch('/admin/api/tenants/:tenantId/sso/idps/:idpId', async (req, res) => {
    const ctx = await inTenant(req, 'sso.idp.update');
    res.json(serializeIdp(await sso.updateIdp(ctx, String(req.params.idpId), isSaml(req.body) ? parseInput(samlIdpPatch, req.body) : parseInput(idpPatch, req.body))));
  });
  r.delete('/admin/api/tenants/:tenantId/sso/idps/:idpId', async (req, res) => {
    const ctx = await inTenant(req, 'sso.idp.delete');
    await sso.deleteIdp(ctx, String(req.params.idpId));
    res.json({ object: 'sso_idp', id: req.params.idpId, deleted: true });
  });
  r.get('/admin/api/tenants/:tenantId/sso/idps/:idpId/claims', async (req, res) => {
    const ctx = await inTenant(req, 'sso.idp.read');
    res.json({ object: 'sso_claims', idp: req.params.idpId, last_claims: await sso.lastClaims(ctx, String(req.params.idpId)) });
  });
  r.post('/admin/api/tenants/:tenantId/sso/idps/:idpId/test', async (req, res) => {
    const ctx = await inTenant(req, 'sso.idp.read');
    res.json({ object: 'sso_test', idp: req.params.idpId, ...(await sso.test(ctx, String(req.params.idpId))) });
  });
  return r;
}
