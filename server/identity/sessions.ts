import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { RequestContext } from '../context.js';
import type { SessionRow } from '../db/repos/identity.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import type { Role } from '../access/permissions.js';
import type { LocalLoginOutcome } from '../metrics/known-series.js';
import type { IdentityDeps } from './deps.js';
import { dummyHash, verifyPassword } from './passwords.js';
import type { UserRow } from './users.js';

/**
 * Server-side sessions and local login.
 *
 * - The session token (32 random bytes) lives only in the HttpOnly cookie; the database
 *   keeps its SHA-256. A new token is issued at every login (no fixation: a token the
 *   client already had is never promoted).
 * - Idle timeout (last_seen_at, refreshed at most once a minute) and absolute timeout.
 * - CSRF: the token for state-changing cookie requests is derived from the session token
 *   (sha256("csrf:" + token)), returned by login and GET /auth/session, and must come back
 *   in the X-CSRF-Token header. A cross-site page can neither read it nor compute it.
 * - Failed logins are counted per account and per client address; after ACCOUNT_LIMIT
 *   (resp. ADDRESS_LIMIT) failures within the window the account (address) is locked,
 *   for 1, 2, 4, 8, then 15 minutes as locks repeat (progressive). A successful login
 *   resets the account's counters. Every attempt is audited.
 */
export const SESSION_COOKIE = 'enclave_session';
export const CSRF_HEADER = 'x-csrf-token';
export const ACCOUNT_LIMIT = 5;
export const ADDRESS_LIMIT = 20;
const WINDOW_MS = 15 * 60_000;
const MAX_LOCK_MS = 15 * 60_000;
const TOUCH_MS = 60_000;
const ACTIVE_CACHE_MS = 5000;

export type { SessionRow };

export interface SessionAuth {
  readonly session: SessionRow;
  readonly user: UserRow;
  readonly tenant: { id: string; slug: string; status: 'active' | 'suspended' } | null;
  readonly role: Role | null;
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
export const csrfFor = (token: string): string => createHash('sha256').update(`csrf:${token}`).digest('base64url');

export function checkCsrf(token: string, presented: string | undefined): boolean {
  if (!presented) return false;
  const a = Buffer.from(csrfFor(token));
  const b = Buffer.from(presented);
  return a.length === b.length && timingSafeEqual(a, b);
}

export class SessionService {
  constructor(
    private readonly d: IdentityDeps,
    private readonly opts: { idleMs: number; maxMs: number },
  ) {}

  // --- throttling ---
  private async lockedUntil(key: string, now: number): Promise<number | null> {
    const row = await this.d.repo.throttle(key);
    return row?.lockedUntil && row.lockedUntil > now ? row.lockedUntil : null;
  }

  /**
   * Counts one failure; true when it locks. A read-modify-write in one transaction: concurrent
   * wrong guesses (the attack it limits) must each count.
   */
  private fail(key: string, limit: number, now: number): Promise<boolean> {
    return this.d.repo.tx(async () => {
      await this.d.repo.lock(`throttle:${key}`);
      return this.failIn(key, limit, now);
    });
  }

  private async failIn(key: string, limit: number, now: number): Promise<boolean> {
    const row = await this.d.repo.throttle(key);
    const fresh = !row || now - row.windowStart > WINDOW_MS || (row.lockedUntil !== null && row.lockedUntil <= now && row.failures >= limit);
    const failures = fresh ? 1 : row.failures + 1;
    const locks = row?.locks ?? 0;
    let lockedUntil: number | null = fresh ? null : row.lockedUntil;
    let nextLocks = locks;
    if (failures >= limit) {
      lockedUntil = now + Math.min(MAX_LOCK_MS, 60_000 * 2 ** locks);
      nextLocks = locks + 1;
    }
    await this.d.repo.putThrottle({ key, failures, windowStart: fresh ? now : row.windowStart, lockedUntil, locks: nextLocks });
    return failures >= limit;
  }

  private reset(key: string): Promise<void> {
    return this.d.repo.deleteThrottle(key);
  }

  /** Clears an account lock (platform admin / CLI recovery). */
  async unlock(ctx: RequestContext, email: string): Promise<void> {
    await this.reset(`acct:${email.toLowerCase()}`);
    await this.d.audit.record(ctx, { action: 'auth.unlock', tenantId: null, target: { type: 'account', id: email.toLowerCase() } });
  }

  // --- login / logout ---
  async login(
    ctx: RequestContext,
    input: { email: string; password: string; tenant?: string },
  ): Promise<{ token: string; csrf: string; auth: SessionAuth }> {
    const now = this.d.clock.now();
    const email = typeof input.email === 'string' ? input.email.trim().toLowerCase().slice(0, 254) : '';
    const ip = ctx.client?.ip ?? 'unknown';
    const acctKey = `acct:${email}`;
    const ipKey = `ip:${ip}`;
    const anon = { type: 'anonymous' as const, id: null };
    const target = { type: 'account', id: email };

    const locked = Math.max((await this.lockedUntil(acctKey, now)) ?? 0, (await this.lockedUntil(ipKey, now)) ?? 0);
    if (locked) {
      this.counted('locked');
      await this.d.audit.record(ctx, { action: 'auth.login', outcome: 'denied', reason: 'locked', actor: anon, tenantId: null, target });
      const retry = Math.ceil((locked - now) / 1000);
      throw new AppError(429, 'auth_locked', `Too many failed sign-ins; try again in ${retry} s.`, {
        headers: { 'retry-after': String(retry) },
      });
    }

    const user = email ? await this.d.repo.userByEmail(email) : undefined;
    // Enforced SSO is decided before the password is checked (issue 16): a password is no
    // oracle for an account that must sign in through its organisation's IdP. It applies
    // to the tenants that enforce it only: a member of other tenants still signs in to those.
    const memberships = user ? await this.d.repo.membershipsOfUser(user.id) : [];
    const requested = input.tenant ? memberships.find((x) => x.slug === input.tenant || x.tenantId === input.tenant) : undefined;
    const enforced = async (tenantId: string) => (user && !user.platformAdmin ? await this.tenantGuard?.(user, tenantId, null) : undefined);
    let ssoOnly = false;
    if (user && user.status === 'active') {
      if (requested) ssoOnly = Boolean(await enforced(requested.tenantId));
      else if (memberships.length > 0) {
        ssoOnly = true;
        for (const m of memberships) {
          if (!(await enforced(m.tenantId))) {
            ssoOnly = false;
            break;
          }
        }
      }
    }
    if (ssoOnly && user) {
      this.counted('not_permitted');
      await this.d.audit.record(ctx, { action: 'auth.login', outcome: 'denied', reason: 'sso_required', actor: { type: 'user', id: user.id }, tenantId: null, target });
      throw new AppError(403, 'sso_required', 'Your organisation requires single sign-on; use its sign-in button.');
    }
    const ok = user?.passwordHash
      ? await verifyPassword(String(input.password ?? ''), user.passwordHash)
      : (await verifyPassword(String(input.password ?? ''), await dummyHash(this.d.passwordLogN)), false);

    if (!ok || !user || user.status !== 'active') {
      const acctLocked = await this.fail(acctKey, ACCOUNT_LIMIT, now);
      const ipLocked = await this.fail(ipKey, ADDRESS_LIMIT, now);
      const reason = !ok ? 'invalid_credentials' : 'user_deactivated';
      this.counted(!ok ? 'invalid_credentials' : 'not_permitted');
      await this.d.audit.record(ctx, {
        action: 'auth.login',
        outcome: 'denied',
        reason,
        actor: user ? { type: 'user', id: user.id } : anon,
        tenantId: null,
        target,
        details: { account_locked: acctLocked, address_locked: ipLocked },
      });
      if (acctLocked || ipLocked) {
        await this.d.audit.record(ctx, { action: 'auth.lock', outcome: 'denied', reason: acctLocked ? 'account' : 'address', actor: anon, tenantId: null, target });
      }
      throw new AppError(401, 'auth_invalid_credentials', 'E-mail or password is wrong.');
    }
    await this.reset(acctKey);

    // The active tenant: the requested one, else where the user last worked, else the only
    // one; with several and no last-used one the session starts without a tenant and the
    // client asks (never a tenant chosen by sort order). Tenants enforcing SSO are skipped.
    let tenantId: string | null;
    if (input.tenant) {
      const platformTenant = user.platformAdmin ? await this.d.repo.tenantByRef(input.tenant) : undefined;
      tenantId = requested?.tenantId ?? platformTenant?.id ?? null;
      if (!tenantId) {
        this.counted('other');
        throw new AppError(404, 'not_found', 'Tenant not found');
      }
    } else {
      // The tenants that refuse this password session (the guard is async): decided before landing.
      const refused = new Set<string>();
      for (const m of memberships) if (await enforced(m.tenantId)) refused.add(m.tenantId);
      if (user.lastTenantId && !refused.has(user.lastTenantId) && (await enforced(user.lastTenantId))) refused.add(user.lastTenantId);
      tenantId = await this.landing(user, (id) => !refused.has(id));
    }

    const { token } = await this.createSession(ctx, user, tenantId);
    const auth = await this.authenticate(token);
    this.counted(auth.ok ? 'success' : 'other');
    if (!auth.ok) throw new AppError(403, auth.code, auth.message);
    return { token, csrf: csrfFor(token), auth: auth.auth };
  }

  /**
   * Where a login without an explicit tenant lands: the tenant the user last used (if still
   * a member, or any tenant for a platform admin), else their only tenant, else none (ask).
   */
  async landing(user: UserRow, usable: (tenantId: string) => boolean = () => true): Promise<string | null> {
    const memberships = (await this.d.repo.membershipsOfUser(user.id)).filter((m) => usable(m.tenantId));
    const last = user.lastTenantId;
    if (last && usable(last)) {
      if (memberships.some((m) => m.tenantId === last)) return last;
      if (user.platformAdmin && (await this.d.repo.tenant(last))) return last;
    }
    return memberships.length === 1 ? memberships[0]!.tenantId : null;
  }

  /**
   * The current password of a signed-in user changing it: a wrong one counts against the
   * same per-account and per-address limits as a failed login, and a locked account or
   * address is refused before the password is even compared.
   */
  async checkCurrentPassword(ctx: RequestContext, user: UserRow, password: string): Promise<void> {
    const now = this.d.clock.now();
    const acctKey = `acct:${user.email}`;
    const ipKey = `ip:${ctx.client?.ip ?? 'unknown'}`;
    const target = { type: 'user', id: user.id };
    const locked = Math.max((await this.lockedUntil(acctKey, now)) ?? 0, (await this.lockedUntil(ipKey, now)) ?? 0);
    if (locked) {
      await this.d.audit.record(ctx, { action: 'user.password_change', outcome: 'denied', reason: 'locked', tenantId: null, target });
      const retry = Math.ceil((locked - now) / 1000);
      throw new AppError(429, 'auth_locked', `Too many wrong passwords; try again in ${retry} s.`, { headers: { 'retry-after': String(retry) } });
    }
    if (await verifyPassword(password, user.passwordHash)) return;
    const acctLocked = await this.fail(acctKey, ACCOUNT_LIMIT, now);
    const ipLocked = await this.fail(ipKey, ADDRESS_LIMIT, now);
    await this.d.audit.record(ctx, { action: 'user.password_change', outcome: 'denied', reason: 'wrong_password', tenantId: null, target, details: { account_locked: acctLocked, address_locked: ipLocked } });
    throw new AppError(400, 'wrong_password', 'The current password is wrong.', { param: 'current_password' });
  }

  /** enclave_auth_logins_total{method="local"} (closed outcomes, server/metrics/known-series.ts). */
  private counted(outcome: LocalLoginOutcome): void {
    this.d.metrics?.authLogins.labels('local', outcome).inc();
  }

  private active: { at: number; n: number } | undefined;

  /** Sessions neither ended nor past a timeout (enclave_sessions_active): one COUNT, cached 5 s. */
  async activeCount(): Promise<number> {
    const now = this.d.clock.now();
    if (this.active && now - this.active.at < ACTIVE_CACHE_MS && now >= this.active.at) return this.active.n;
    const n = await this.d.repo.countActiveSessions(now, this.opts.idleMs);
    this.active = { at: now, n };
    return n;
  }

  /**
   * A session for a user authenticated elsewhere (SSO, server/sso): a new random token,
   * the given active tenant, audited as `auth.login` with `details.method`. The caller has
   * verified the user (status, tenant membership) already.
   */
  async createSession(ctx: RequestContext, user: UserRow, activeTenantId: string | null, details: Record<string, unknown> = {}): Promise<{ token: string; csrf: string; session: SessionRow }> {
    const now = this.d.clock.now();
    const token = randomBytes(32).toString('base64url');
    const session = await this.d.repo.insertSession({
        id: newId('ses', now),
        tokenHash: sha256(token),
        userId: user.id,
        activeTenantId,
        createdAt: now,
        lastSeenAt: now,
        expiresAt: now + this.opts.maxMs,
        ip: ctx.client?.ip ?? null,
        userAgent: ctx.client?.userAgent?.slice(0, 256) ?? null,
    });
    if (activeTenantId && activeTenantId !== user.lastTenantId) await this.rememberTenant(user.id, activeTenantId);
    await this.d.audit.record(ctx, {
      action: 'auth.login',
      actor: { type: 'user', id: user.id },
      tenantId: null,
      target: { type: 'session', id: session.id },
      details: { active_tenant: activeTenantId, ...details },
    });
    return { token, csrf: csrfFor(token), session };
  }

  /**
   * Set by SSO (enforce SSO): whether a session may act in a tenant. Called with the
   * session id (null for a password login being decided); returns a reason code
   * (`sso_required`) to refuse, undefined to allow. Never consulted for platform admins.
   */
  tenantGuard: ((user: UserRow, tenantId: string, sessionId: string | null) => Promise<string | undefined>) | undefined;

  private async rememberTenant(userId: string, tenantId: string): Promise<void> {
    await this.d.repo.updateUser(userId, { lastTenantId: tenantId });
  }

  /**
   * Looks the token up (hash), enforces timeouts, user status and tenant suspension. Reads the
   * database on every cookie request, as before the async layer (no cache: a logout or a
   * revocation by another process must hold at once): the session with its user, the tenant,
   * the user's memberships; a write at most once a minute (last_seen_at).
   */
  async authenticate(token: string): Promise<{ ok: true; auth: SessionAuth } | { ok: false; status: number; code: string; message: string }> {
    const invalid = { ok: false as const, status: 401, code: 'auth_session_invalid', message: 'The session has ended; sign in again.' };
    if (typeof token !== 'string' || token.length < 20 || token.length > 100) return invalid;
    const now = this.d.clock.now();
    const row = await this.d.repo.sessionByTokenHash(sha256(token));
    if (!row || row.session.revokedAt !== null || row.user.status !== 'active') return invalid;
    const { session, user } = row;
    if (now >= session.expiresAt || now - session.lastSeenAt >= this.opts.idleMs) {
      await this.d.repo.updateSession(session.id, { revokedAt: now, revokedReason: 'expired' });
      return { ok: false, status: 401, code: 'auth_session_expired', message: 'The session has expired; sign in again.' };
    }
    if (now - session.lastSeenAt >= TOUCH_MS) {
      await this.d.repo.updateSession(session.id, { lastSeenAt: now });
    }
    let tenant: SessionAuth['tenant'] = null;
    let role: Role | null = null;
    if (session.activeTenantId) {
      const t = await this.d.repo.tenant(session.activeTenantId);
      if (t) {
        tenant = { id: t.id, slug: t.slug, status: t.status };
        role = (await this.d.repo.membershipsOfUser(user.id)).find((m) => m.tenantId === t.id)?.role ?? null;
        if (!role && !user.platformAdmin) tenant = null; // membership removed since
        // A tenant that enforces SSO (perhaps since this session began) is not reachable
        // from a session that did not come through its IdP.
        else if (tenant && !user.platformAdmin && (await this.tenantGuard?.(user, tenant.id, session.id))) {
          tenant = null;
          role = null;
        }
      }
    }
    if (tenant?.status === 'suspended' && !user.platformAdmin) {
      return { ok: false, status: 403, code: 'tenant_suspended', message: `Tenant ${tenant.slug} is suspended.` };
    }
    return { ok: true, auth: { session, user, tenant, role } };
  }

  async logout(ctx: RequestContext, sessionId: string): Promise<void> {
    await this.d.repo.updateSession(sessionId, { revokedAt: this.d.clock.now(), revokedReason: 'logout' });
    await this.d.audit.record(ctx, { action: 'auth.logout', tenantId: null, target: { type: 'session', id: sessionId } });
  }

  /** Ends every session of the user ("log out everywhere"). */
  async logoutAll(ctx: RequestContext, userId: string): Promise<number> {
    const n = await this.d.repo.endSessionsOfUser(userId, this.d.clock.now(), 'logout_all');
    await this.d.audit.record(ctx, { action: 'auth.logout_all', tenantId: null, target: { type: 'user', id: userId }, details: { sessions_ended: n } });
    return n;
  }

  /** Explicit tenant switch: only to a tenant the user belongs to (platform admins: any). */
  async switchTenant(ctx: RequestContext, sessionId: string, user: UserRow, tenantRef: string): Promise<void> {
    const m = (await this.d.repo.membershipsOfUser(user.id)).find((x) => x.slug === tenantRef || x.tenantId === tenantRef);
    const t = m ? { id: m.tenantId } : user.platformAdmin ? await this.d.repo.tenantByRef(tenantRef) : undefined;
    if (!t) {
      await this.d.audit.record(ctx, { action: 'auth.switch_tenant', outcome: 'denied', reason: 'not_found', tenantId: null, target: { type: 'tenant', id: tenantRef } });
      throw new AppError(404, 'not_found', 'Tenant not found');
    }
    const guard = user.platformAdmin ? undefined : await this.tenantGuard?.(user, t.id, sessionId);
    if (guard) {
      await this.d.audit.record(ctx, { action: 'auth.switch_tenant', outcome: 'denied', reason: guard, tenantId: t.id, target: { type: 'tenant', id: t.id } });
      throw new AppError(403, guard, "This organisation requires single sign-on; sign in with its sign-in button to work in it.");
    }
    await this.d.repo.updateSession(sessionId, { activeTenantId: t.id });
    await this.rememberTenant(user.id, t.id);
    await this.d.audit.record(ctx, { action: 'auth.switch_tenant', tenantId: t.id, target: { type: 'tenant', id: t.id } });
  }

  memberships(userId: string) {
    return this.d.repo.membershipsOfUser(userId);
  }
}
