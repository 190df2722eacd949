import { Router, type CookieOptions, type Request, type Response } from 'express';
import { z } from 'zod';
import { AppError } from '../errors.js';
import { authenticate, clientOf, readCookie, sessionToken } from './http.js';
import type { Identity } from './index.js';
import { csrfFor, SESSION_COOKIE } from './sessions.js';
import { serializeUser } from './users.js';

/**
 * /auth: local login and the session. POST /auth/login sets the HttpOnly session cookie
 * and returns the CSRF token; every other state-changing call needs X-CSRF-Token.
 */
export function authRouter(identity: Identity, opts: { cookieSecure: 'auto' | 'true' | 'false'; maxAgeMs: number }): Router {
  const r = Router();
  const cookieOptions = (req: Request): CookieOptions => ({
    httpOnly: true,
    sameSite: 'lax',
    path: '/',
    secure: opts.cookieSecure === 'true' || (opts.cookieSecure === 'auto' && req.secure),
    maxAge: opts.maxAgeMs,
  });
  const sessionView = async (_req: Request, token: string) => {
    const r2 = await identity.sessions.authenticate(token);
    if (!r2.ok) throw new AppError(r2.status, r2.code, r2.message);
    const { user, tenant, role, session } = r2.auth;
    return {
      object: 'session',
      user: serializeUser(user),
      tenant: tenant ? { id: tenant.id, slug: tenant.slug, status: tenant.status } : null,
      role,
      tenants: (await identity.sessions.memberships(user.id)).map((m) => ({ id: m.tenantId, slug: m.slug, name: m.name, role: m.role, status: m.status })),
      csrf_token: csrfFor(token),
      expires_at: session.expiresAt,
    };
  };

  const loginBody = z.object({ email: z.string().max(254), password: z.string().max(1024), tenant: z.string().max(100).optional() });
  r.post('/auth/login', async (req: Request, res: Response) => {
    const body = loginBody.safeParse(req.body);
    if (!body.success) throw new AppError(400, 'invalid_request', 'Send {"email", "password"} as JSON.');
    req.ctx.client = clientOf(req);
    // A session the client already holds is ended, never promoted (no fixation).
    const previous = readCookie(req, SESSION_COOKIE);
    if (previous) {
      const prev = await identity.sessions.authenticate(previous);
      if (prev.ok) await identity.sessions.logout(req.ctx, prev.auth.session.id);
    }
    const { token } = await identity.sessions.login(req.ctx, body.data);
    res.cookie(SESSION_COOKIE, token, cookieOptions(req));
    res.json(await sessionView(req, token));
  });

  const session = authenticate(identity, { accept: ['session'] });
  r.get('/auth/session', session, async (req, res) => {
    res.json(await sessionView(req, sessionToken(req)!));
  });
  r.post('/auth/logout', session, async (req, res) => {
    await identity.sessions.logout(req.ctx, req.ctx.principal!.sessionId!);
    res.clearCookie(SESSION_COOKIE, { ...cookieOptions(req), maxAge: undefined });
    res.json({ ok: true });
  });
  r.post('/auth/logout-all', session, async (req, res) => {
    const ended = await identity.sessions.logoutAll(req.ctx, req.ctx.principal!.userId!);
    res.clearCookie(SESSION_COOKIE, { ...cookieOptions(req), maxAge: undefined });
    res.json({ ok: true, sessions_ended: ended });
  });
  r.post('/auth/switch-tenant', session, async (req, res) => {
    const body = z.object({ tenant: z.string().min(1).max(100) }).safeParse(req.body);
    if (!body.success) throw new AppError(400, 'invalid_request', 'Send {"tenant": "<slug or id>"}.', { param: 'tenant' });
    const p = req.ctx.principal!;
    await identity.sessions.switchTenant(req.ctx, p.sessionId!, (await identity.users.byId(p.userId!))!, body.data.tenant);
    res.json(await sessionView(req, sessionToken(req)!));
  });
  r.post('/auth/password', session, async (req, res) => {
    const body = z.object({ current_password: z.string().max(1024), new_password: z.string().max(1024) }).safeParse(req.body);
    if (!body.success) throw new AppError(400, 'invalid_request', 'Send {"current_password", "new_password"}.');
    await identity.users.changeOwnPassword(req.ctx, body.data.current_password, body.data.new_password);
    res.json({ ok: true });
  });
  return r;
}
