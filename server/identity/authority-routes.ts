import { Router, type CookieOptions, type Request } from 'express';
import { z } from 'zod';
import { ROLES } from '../access/permissions.js';
import { AppError } from '../errors.js';
import { parseInput } from '../http/parse-input.js';
import { authenticate, authenticateRequest, clientOf, readCookie } from './http.js';
import type { Identity } from './index.js';
import { serializeDomain } from './domains.js';
import { INVITE_PATH, serializeForInvitee, serializeInvitation } from './invitations.js';
import { csrfFor, SESSION_COOKIE } from './sessions.js';

/**
 * The identity authority's HTTP surface (issue 16).
 *
 * Inviter (tenant owners/admins, admin API):
 *   POST   /admin/api/tenants/:tenantId/members            {email, role} → 202 invitation + link token (once)
 *   GET    /admin/api/tenants/:tenantId/invitations        pending invitations (no tokens)
 *   DELETE /admin/api/tenants/:tenantId/invitations/:id    withdraw
 * Platform administrators only:
 *   GET|POST /admin/api/tenants/:tenantId/domains          {domain}
 *   POST   /admin/api/tenants/:tenantId/domains/:domain/verify
 *   DELETE /admin/api/tenants/:tenantId/domains/:domain
 * Invitee:
 *   GET    /auth/invitations                               mine (session)
 *   POST   /auth/invitations/:id/accept | /decline         (session + CSRF)
 *   POST   /auth/invite/lookup  {token}                    what the link is for (public)
 *   POST   /auth/invite/accept  {token, password?}         signed in as the address, or a new account
 * Link tokens travel in bodies and URL fragments (`/invite#<token>`), never in a URL the
 * server logs.
 */
export function authorityRouter(identity: Identity, opts: { cookieSecure: 'auto' | 'true' | 'false'; maxAgeMs: number }): Router {
  const r = Router();
  const admin = authenticate(identity, { accept: ['session', 'api_key'] });
  const session = authenticate(identity, { accept: ['session'] });
  const inTenant = (req: Request, action: string) => identity.tenants.scopeTo(req.ctx, String(req.params.tenantId), action);
  const cookie = (req: Request): CookieOptions => ({
    httpOnly: true,
    sameSite: 'lax',
    path: '/',
    secure: opts.cookieSecure === 'true' || (opts.cookieSecure === 'auto' && req.secure),
    maxAge: opts.maxAgeMs,
  });

  r.post('/admin/api/tenants/:tenantId/members', admin, async (req, res) => {
    const ctx = await inTenant(req, 'membership.grant');
    const body = (req.body ?? {}) as Record<string, unknown>;
    if ('password' in body) {
      throw new AppError(400, 'password_not_accepted', 'The invitee chooses their own password (or signs in with SSO) when accepting; do not send one.', { param: 'password' });
    }
    const b = parseInput(z.object({ email: z.string().max(254), role: z.enum(ROLES), name: z.string().max(200).optional() }), body);
    const { invitation, token } = await identity.invitations.invite(ctx, { email: b.email, role: b.role });
    // The same answer whether an account with this address exists or not.
    res.status(202).json({ ...serializeInvitation(invitation), token, accept_path: `${INVITE_PATH}#${token}` });
  });
  r.get('/admin/api/tenants/:tenantId/invitations', admin, async (req, res) => {
    const ctx = await inTenant(req, 'invitation.read');
    res.json({ object: 'list', data: (await identity.invitations.list(ctx)).map(serializeInvitation), next_cursor: null });
  });
  r.delete('/admin/api/tenants/:tenantId/invitations/:id', admin, async (req, res) => {
    const ctx = await inTenant(req, 'invitation.revoke');
    await identity.invitations.revoke(ctx, String(req.params.id).slice(0, 100));
    res.json({ object: 'invitation', id: req.params.id, deleted: true });
  });

  r.get('/admin/api/tenants/:tenantId/domains', admin, async (req, res) => {
    const ctx = await inTenant(req, 'tenant.domain.read');
    res.json({ object: 'list', data: (await identity.domains.list(ctx)).map(serializeDomain), next_cursor: null });
  });
  r.post('/admin/api/tenants/:tenantId/domains', admin, async (req, res) => {
    const ctx = await inTenant(req, 'tenant.domain.add');
    const b = parseInput(z.object({ domain: z.string().max(260) }), req.body);
    res.status(201).json(serializeDomain(await identity.domains.add(ctx, b.domain)));
  });
  r.post('/admin/api/tenants/:tenantId/domains/:domain/verify', admin, async (req, res) => {
    const ctx = await inTenant(req, 'tenant.domain.verify');
    res.json(serializeDomain(await identity.domains.verify(ctx, String(req.params.domain))));
  });
  r.delete('/admin/api/tenants/:tenantId/domains/:domain', admin, async (req, res) => {
    const ctx = await inTenant(req, 'tenant.domain.remove');
    await identity.domains.remove(ctx, String(req.params.domain));
    res.json({ object: 'tenant_domain', domain: req.params.domain, deleted: true });
  });

  r.get('/auth/invitations', session, async (req, res) => {
    res.json({ object: 'list', data: (await identity.invitations.mine(req.ctx)).map(serializeForInvitee), next_cursor: null });
  });
  r.post('/auth/invitations/:id/accept', session, async (req, res) => {
    const x = await identity.invitations.accept(req.ctx, String(req.params.id).slice(0, 100));
    res.json({ ...serializeForInvitee(x), status: 'accepted' });
  });
  r.post('/auth/invitations/:id/decline', session, async (req, res) => {
    await identity.invitations.decline(req.ctx, String(req.params.id).slice(0, 100));
    res.json({ object: 'invitation', id: req.params.id, status: 'declined' });
  });

  const tokenBody = z.object({ token: z.string().min(1).max(200), password: z.string().max(1024).optional() });
  r.post('/auth/invite/lookup', async (req, res) => {
    const b = parseInput(tokenBody.omit({ password: true }), req.body);
    res.set('cache-control', 'no-store');
    res.json(serializeForInvitee(await identity.invitations.byToken(b.token)));
  });
  r.post('/auth/invite/accept', async (req, res) => {
    const b = parseInput(tokenBody, req.body);
    req.ctx.client = clientOf(req);
    res.set('cache-control', 'no-store');
    // Signed in: the session (with its CSRF token) says who accepts.
    // An ended or expired session counts as signed out; a live one without its CSRF token is refused.
    if (readCookie(req, SESSION_COOKIE)) {
      try {
        await authenticateRequest(identity, req, req.ctx, false, true);
      } catch (e) {
        if (!(e instanceof AppError) || e.status !== 401) throw e;
      }
    }
    const out = await identity.invitations.acceptLink(req.ctx, b.token, b.password);
    if (out.created) {
      // The new account is signed in at once (a fresh session; nothing to promote).
      const { token } = await identity.sessions.createSession(req.ctx, out.user, out.invitation.tenant.id, { method: 'invitation' });
      res.cookie(SESSION_COOKIE, token, cookie(req));
      res.json({ ...serializeForInvitee(out.invitation), status: 'accepted', account_created: true, csrf_token: csrfFor(token) });
      return;
    }
    res.json({ ...serializeForInvitee(out.invitation), status: 'accepted', account_created: false });
  });
  return r;
}
