import type { IncomingMessage } from 'node:http';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { RequestContext, TeamGrant } from '../context.js';
import { requestHeader } from '../http/request-context.js';
import { AppError } from '../errors.js';
import type { VerifiedKey } from '../keys/service.js';
import type { Identity } from './index.js';
import { checkCsrf, CSRF_HEADER, SESSION_COOKIE } from './sessions.js';

/**
 * Authentication middleware: turns a credential into req.ctx (tenant, principal, scopes,
 * client). Reusable by every router:
 *
 *   router.use(authenticate(identity, { accept: ['api_key'] }))          // /v1 (gateway)
 *   router.use(authenticate(identity, { accept: ['session', 'api_key'] })) // admin API
 *
 * - `Authorization: Bearer enk_…` → API key (verified from the in-memory cache): ctx.tenant
 *   is the key's tenant, principal {kind:'api_key', id, keyId, userId: owner, role: the
 *   owner's current role, allowedModels, maxClassification}, ctx.scopes the key's scopes.
 * - the `enclave_session` cookie → session: ctx.tenant is the session's active tenant (if
 *   any), principal {kind:'user', id, userId, sessionId, role, platformAdmin}. State-changing
 *   methods need the X-CSRF-Token header (403 csrf_failed without it).
 * Failures are 401 with a reason code (403 tenant_suspended); nothing says whether a key exists.
 */
export type Credential = 'session' | 'api_key';

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);
const tokens = new WeakMap<IncomingMessage, string>();

export function readCookie(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) {
      try {
        return decodeURIComponent(part.slice(i + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/** The session token of an authenticated cookie request (for logout / CSRF). */
export function sessionToken(req: Request): string | undefined {
  return tokens.get(req);
}

export function clientOf(req: Request): { ip?: string; userAgent?: string } {
  return clientInfo(req.ip, req.get('user-agent'));
}

/** The request's client as audit entries and throttles see it (user agent cut to 256 characters). */
export function clientInfo(ip: string | undefined, userAgent: string | undefined): { ip?: string; userAgent?: string } {
  return { ...(ip ? { ip } : {}), ...(userAgent ? { userAgent: userAgent.slice(0, 256) } : {}) };
}

/** Fills a context from a verified API key (what the middleware does after verification). */
export function applyKey(ctx: RequestContext, key: VerifiedKey): RequestContext {
  ctx.tenant = key.tenant;
  ctx.principal = {
    kind: 'api_key',
    id: key.keyId,
    keyId: key.keyId,
    ...(key.ownerUserId ? { userId: key.ownerUserId } : {}),
    role: key.role,
    platformAdmin: false,
    allowedModels: key.allowedModels,
    ...(key.maxClassification ? { maxClassification: key.maxClassification } : {}),
  };
  ctx.scopes = key.scopes;
  return ctx;
}

/** Adds the team the call counts against (server/teams; undefined resolver or no team: nothing). */
async function withTeam(identity: Identity, ctx: RequestContext, keyTeamId: string | undefined): Promise<void> {
  const p = ctx.principal;
  if (!identity.teamOf || !ctx.tenant || !p) return;
  const t = identity.teamOf(ctx.tenant.id, p.userId, keyTeamId);
  const team: TeamGrant | undefined = t instanceof Promise ? await t : t; // cached: no await on the call's path
  if (team !== undefined) ctx.principal = { ...p, team };
}

export function authenticate(identity: Identity, opts: { accept: readonly Credential[] }): RequestHandler {
  const acceptKey = opts.accept.includes('api_key');
  const acceptSession = opts.accept.includes('session');
  return async (req: Request, _res: Response, next: NextFunction): Promise<void> => {
    req.ctx.client = clientOf(req);
    await authenticateRequest(identity, req, req.ctx, acceptKey, acceptSession);
    next();
  };
}

/**
 * The credential check of {@link authenticate} on a plain node request (shared with the /v1
 * fast path, server/http/fast-path.ts): fills `ctx` or throws the 401/403 AppError.
 * `ctx.client` is expected to be set already.
 */
export async function authenticateRequest(identity: Identity, req: IncomingMessage, ctx: RequestContext, acceptKey: boolean, acceptSession: boolean): Promise<void> {
  const authz = req.headers.authorization;
  if (authz !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authz);
    if (!m || !acceptKey) throw new AppError(401, 'auth_invalid_header', 'Use "Authorization: Bearer enk_…" with an API key.', { headers: { 'www-authenticate': 'Bearer realm="enclave"' } });
    const key = await identity.keys.verify(m[1]!, ctx.client?.ip);
    applyKey(ctx, key);
    await withTeam(identity, ctx, key.teamId);
    return;
  }
  // Anthropic's clients send the key as `x-api-key` (the /v1/messages face); the same key check.
  const apiKey = acceptKey ? req.headers['x-api-key'] : undefined;
  if (typeof apiKey === 'string' && apiKey) {
    const key = await identity.keys.verify(apiKey.trim(), ctx.client?.ip);
    applyKey(ctx, key);
    await withTeam(identity, ctx, key.teamId);
    return;
  }
  const token = acceptSession ? readCookie(req, SESSION_COOKIE) : undefined;
  if (!token) {
    throw new AppError(401, 'auth_required', acceptSession ? 'Sign in, or send an API key as "Authorization: Bearer enk_…".' : 'Send an API key as "Authorization: Bearer enk_…".', {
      headers: { 'www-authenticate': 'Bearer realm="enclave"' },
    });
  }
  const r = await identity.sessions.authenticate(token);
  if (!r.ok) throw new AppError(r.status, r.code, r.message);
  if (!SAFE.has(req.method ?? 'GET') && !checkCsrf(token, requestHeader(req, CSRF_HEADER))) {
    throw new AppError(403, 'csrf_failed', 'Missing or wrong X-CSRF-Token header (get it from GET /auth/session).');
  }
  tokens.set(req, token);
  const { session, user, tenant, role } = r.auth;
  if (tenant) ctx.tenant = { id: tenant.id, slug: tenant.slug };
  ctx.principal = {
    kind: 'user',
    id: user.id,
    userId: user.id,
    sessionId: session.id,
    ...(role ? { role } : {}),
    platformAdmin: user.platformAdmin,
  };
  ctx.scopes = [];
  await withTeam(identity, ctx, undefined);
}

/** The gateway's middleware: API keys only. */
export function requireApiKey(identity: Identity): RequestHandler {
  return authenticate(identity, { accept: ['api_key'] });
}
