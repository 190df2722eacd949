import express, { Router, type CookieOptions, type Request } from 'express';
import { clientOf, readCookie } from '../../identity/http.js';
import type { Identity } from '../../identity/index.js';
import { SESSION_COOKIE } from '../../identity/sessions.js';
import { safeReturnTo } from '../mapping.js';
import type { SamlLogin } from './login.js';

/**
 * SAML routes (public, browser): GET /auth/saml/:idp/login?returnTo=/path (→ the IdP with an
 * AuthnRequest), POST /auth/saml/:idp/acs (the IdP's auto-posted SAMLResponse),
 * GET /auth/saml/:idp/metadata (our SP metadata for the IdP's administrator).
 */
export function samlRouter(saml: SamlLogin, identity: Identity, opts: { cookieSecure: 'auto' | 'true' | 'false'; maxAgeMs: number }): Router {
  const r = Router();
  const secure = (req: Request) => opts.cookieSecure === 'true' || (opts.cookieSecure === 'auto' && req.secure);
  const cookie = (req: Request, maxAge?: number): CookieOptions => ({ httpOnly: true, sameSite: 'lax', path: '/', secure: secure(req), ...(maxAge ? { maxAge } : {}) });
  const origin = (req: Request) => `${req.protocol}://${req.get('host')}`;
  const ref = (req: Request) => String(req.params.idp).slice(0, 100);

  r.get('/auth/saml/:idp/login', async (req, res) => {
    req.ctx.client = clientOf(req);
    res.set('cache-control', 'no-store');
    res.redirect(302, await saml.startLogin(req.ctx, ref(req), { returnTo: safeReturnTo(req.query.returnTo), origin: origin(req) }));
  });

  r.get('/auth/saml/:idp/metadata', async (req, res) => {
    res.type('application/samlmetadata+xml').send(await saml.metadata(req.ctx, ref(req), origin(req)));
  });

  const form = express.urlencoded({ extended: false, limit: '400kb' });
  r.post('/auth/saml/:idp/acs', form, async (req, res) => {
    req.ctx.client = clientOf(req);
    res.set('cache-control', 'no-store');
    const out = await saml.acs(req.ctx, ref(req), req.body as Record<string, unknown> | undefined, origin(req));
    // A session the browser already had is ended, never promoted (no fixation). The cross-site
    // POST carries no Lax cookie, so this only matters for same-site IdPs.
    const previous = readCookie(req, SESSION_COOKIE);
    if (previous) {
      const prev = await identity.sessions.authenticate(previous);
      if (prev.ok) await identity.sessions.logout(req.ctx, prev.auth.session.id);
    }
    res.cookie(SESSION_COOKIE, out.token, cookie(req, opts.maxAgeMs));
    // 303: the browser follows with a GET, and the Lax session cookie goes with it (same site).
    res.redirect(303, out.returnTo);
  });
  return r;
}
