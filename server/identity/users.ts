import type { RequestContext } from '../context.js';
import type { UserRow } from '../db/repos/identity.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import { isRole, type Role } from '../access/permissions.js';
import { hidden, isPlatform, page, type IdentityDeps, type Page } from './deps.js';
import { checkPasswordPolicy, hashPassword } from './passwords.js';

export type { UserRow };

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export function serializeUser(u: UserRow, extra: { role?: Role | null } = {}) {
  return {
    object: 'user' as const,
    id: u.id,
    email: u.email,
    name: u.name,
    status: u.status,
    platform_admin: u.platformAdmin,
    has_password: u.passwordHash !== null,
    ...(extra.role !== undefined ? { role: extra.role } : {}),
    created_at: u.createdAt,
    updated_at: u.updatedAt,
  };
}

export function normalizeEmail(email: unknown): string {
  if (typeof email !== 'string' || !EMAIL.test(email.trim()) || email.length > 254) {
    throw new AppError(400, 'invalid_email', 'Give a valid e-mail address.', { param: 'email' });
  }
  return email.trim().toLowerCase();
}

export class UserService {
  constructor(private readonly d: IdentityDeps) {}

  byId(id: string): Promise<UserRow | undefined> {
    return this.d.repo.user(id);
  }
  byEmail(email: string): Promise<UserRow | undefined> {
    return this.d.repo.userByEmail(email.trim().toLowerCase());
  }
  resolve(ref: string): Promise<UserRow | undefined> {
    return ref.startsWith('usr_') ? this.byId(ref) : this.byEmail(ref);
  }
  countPlatformAdmins(): Promise<number> {
    return this.d.repo.countUsers({ platformAdmin: true, status: 'active' });
  }
  /** The licence's seat refusal for one more active user, or undefined (call inside the transaction that adds it). */
  private async seatRefusal(): Promise<AppError | undefined> {
    return this.d.entitlements().checkGrowth('seats', await this.d.repo.countUsers({ status: 'active' }));
  }
  /** Audits a refusal decided inside a transaction, after it rolled back (so the entry stays), and returns it to throw. */
  private async refused(ctx: RequestContext, refusal: AppError, action: string, target: { type: string; id?: string }): Promise<AppError> {
    await this.d.audit.record(ctx, { action, outcome: 'denied', reason: refusal.code, target });
    return refusal;
  }

  /** A user visible to the principal: platform admins see everyone, others the members of their tenant. */
  private async visible(ctx: RequestContext, id: string, action: string): Promise<UserRow> {
    const u = await this.byId(id);
    if (u && (isPlatform(ctx) || (ctx.tenant && (await this.d.repo.membership(ctx, u.id))))) return u;
    throw await hidden(this.d, ctx, 'user', id, action);
  }

  async create(
    ctx: RequestContext,
    input: { email: string; name?: string; password?: string | null; platformAdmin?: boolean },
  ): Promise<UserRow> {
    await this.d.access.require(ctx, 'platform:users:write', {}, { type: 'user' });
    return this.insert(ctx, input);
  }

  private async insert(ctx: RequestContext, input: { email: string; name?: string; password?: string | null; platformAdmin?: boolean }): Promise<UserRow> {
    const email = normalizeEmail(input.email);
    if (await this.byEmail(email)) throw new AppError(409, 'user_exists', `A user with e-mail ${email} already exists.`, { param: 'email' });
    let passwordHash: string | null = null;
    if (input.password != null) {
      const bad = checkPasswordPolicy(input.password, email);
      if (bad) throw bad;
      passwordHash = await hashPassword(input.password, this.d.passwordLogN); // outside the transaction (scrypt)
    }
    const now = this.d.clock.now();
    // One transaction: the address check, the seat count and the insert (two creations at the
    // seat limit must not both pass).
    const out = await this.d.repo.tx(async (): Promise<{ row: UserRow } | { refusal: AppError }> => {
      await this.d.repo.lock('seats');
      if (await this.byEmail(email)) throw new AppError(409, 'user_exists', `A user with e-mail ${email} already exists.`, { param: 'email' });
      const refusal = await this.seatRefusal();
      if (refusal) return { refusal };
      const row = await this.d.repo.insertUser({
        id: newId('usr', now),
        email,
        name: input.name?.trim() || email.split('@')[0]!,
        passwordHash,
        platformAdmin: input.platformAdmin ?? false,
        passwordChangedAt: passwordHash ? now : null,
        createdAt: now,
        updatedAt: now,
      });
      return { row };
    });
    if ('refusal' in out) throw await this.refused(ctx, out.refusal, 'user.create', { type: 'user' });
    const row = out.row;
    await this.d.audit.record(ctx, {
      action: 'user.create',
      tenantId: ctx.tenant?.id ?? null,
      target: { type: 'user', id: row.id },
      details: { email, platform_admin: row.platformAdmin },
    });
    return row;
  }

  async get(ctx: RequestContext, id: string): Promise<{ user: UserRow; role: Role | null }> {
    const u = await this.visible(ctx, id, 'user.read');
    if (!isPlatform(ctx)) await this.d.access.require(ctx, 'members:read', {}, { type: 'user', id });
    return { user: u, role: ctx.tenant ? ((await this.d.repo.membership(ctx, u.id))?.role ?? null) : null };
  }

  async list(ctx: RequestContext, opts: { status?: 'active' | 'deactivated'; email?: string; cursor?: string; limit: number }): Promise<Page<ReturnType<typeof serializeUser>>> {
    if (isPlatform(ctx)) {
      await this.d.access.require(ctx, 'platform:users:read');
      const rows = await this.d.repo.listUsers({
        limit: opts.limit + 1,
        ...(opts.status ? { status: opts.status } : {}),
        ...(opts.email ? { email: opts.email.toLowerCase() } : {}),
        ...(opts.cursor ? { beforeId: opts.cursor } : {}),
      });
      return page(rows, opts.limit, (u) => u.id, (u) => serializeUser(u));
    }
    return this.members(ctx, opts);
  }

  /** The members of ctx's tenant with their roles. */
  async members(ctx: RequestContext, opts: { status?: 'active' | 'deactivated'; email?: string; cursor?: string; limit: number }): Promise<Page<ReturnType<typeof serializeUser>>> {
    await this.d.access.require(ctx, 'members:read');
    const rows = (
      await this.d.repo.memberUsers(ctx, { limit: opts.limit + 1, ...(opts.cursor ? { beforeId: opts.cursor } : {}), ...(opts.status ? { status: opts.status } : {}) })
    ).filter((r) => !opts.email || r.user.email === opts.email.toLowerCase());
    return page(rows, opts.limit, (r) => r.user.id, (r) => serializeUser(r.user, { role: r.role }));
  }

  /** Deactivate: sessions end and keys stop at once; the user's data stays. */
  async deactivate(ctx: RequestContext, id: string): Promise<UserRow> {
    await this.visible(ctx, id, 'user.deactivate');
    await this.d.access.require(ctx, 'platform:users:write', {}, { type: 'user', id });
    const now = this.d.clock.now();
    // The last-admin check and the writes in one transaction: two administrators deactivating
    // each other at once must not leave none.
    await this.d.repo.tx(async () => {
      await this.d.repo.lock('platform-admins');
      const u = await this.byId(id);
      if (u?.platformAdmin && u.status === 'active' && (await this.countPlatformAdmins()) <= 1) {
        throw new AppError(409, 'last_platform_admin', 'This is the last active platform administrator; create another one first.');
      }
      await this.d.repo.updateUser(id, { status: 'deactivated', updatedAt: now });
      await this.d.repo.endSessionsOfUser(id, now, 'user_deactivated');
    });
    await this.d.revision.bump();
    await this.d.audit.record(ctx, { action: 'user.deactivate', tenantId: null, target: { type: 'user', id } });
    return (await this.byId(id))!;
  }

  async reactivate(ctx: RequestContext, id: string): Promise<UserRow> {
    await this.visible(ctx, id, 'user.reactivate');
    await this.d.access.require(ctx, 'platform:users:write', {}, { type: 'user', id });
    const refusal = await this.d.repo.tx(async () => {
      await this.d.repo.lock('seats');
      const u = await this.byId(id);
      if (u && u.status !== 'active') {
        const r = await this.seatRefusal();
        if (r) return r;
      }
      await this.d.repo.updateUser(id, { status: 'active', updatedAt: this.d.clock.now() });
      return undefined;
    });
    if (refusal) throw await this.refused(ctx, refusal, 'user.reactivate', { type: 'user', id });
    await this.d.revision.bump();
    await this.d.audit.record(ctx, { action: 'user.reactivate', tenantId: null, target: { type: 'user', id } });
    return (await this.byId(id))!;
  }

  /**
   * Grants `role` in ctx's tenant (adds the membership or changes its role). Making or
   * unmaking an owner needs members:grant_owner; the last owner cannot be demoted.
   */
  async grant(ctx: RequestContext, userId: string, role: Role): Promise<{ user: UserRow; role: Role }> {
    if (!isRole(role)) throw new AppError(400, 'invalid_role', 'role must be owner, admin, member or viewer.', { param: 'role' });
    const u = await this.byId(userId);
    const existing = u ? await this.d.repo.membership(ctx, userId) : undefined;
    // A user who is not yet a member is only addressable by platform admins; tenant admins invite (invitations.ts).
    if (!u || (!existing && !isPlatform(ctx))) throw await hidden(this.d, ctx, 'user', userId, 'membership.grant');
    await this.d.access.require(ctx, 'members:write', {}, { type: 'membership', id: userId });
    if (role === 'owner' || existing?.role === 'owner') await this.d.access.require(ctx, 'members:grant_owner', {}, { type: 'membership', id: userId });
    // Re-read and count inside one transaction: two concurrent demotions of the last two
    // owners must leave one.
    const previous = await this.d.repo.tx(async () => {
      await this.d.repo.lock(`owners:${ctx.tenant?.id}`);
      const current = await this.d.repo.membership(ctx, userId);
      if (current?.role === 'owner' && role !== 'owner' && (await this.d.repo.countOwners(ctx)) <= 1) {
        throw new AppError(409, 'last_owner', 'A tenant keeps at least one owner; make someone else owner first.');
      }
      await this.d.repo.upsertMembership(ctx, userId, role, this.d.clock.now());
      return current?.role ?? null;
    });
    await this.d.revision.bump();
    await this.d.audit.record(ctx, { action: 'membership.grant', target: { type: 'user', id: userId }, details: { role, previous_role: previous } });
    return { user: u, role };
  }

  /**
   * The account of an accepted invitation link (server/identity/invitations.ts): the
   * invitee chose the password (hashed by the caller). Seat-checked like any new user.
   */
  async insertForInvitation(ctx: RequestContext, input: { email: string; passwordHash: string }): Promise<UserRow> {
    const email = normalizeEmail(input.email);
    const now = this.d.clock.now();
    const out = await this.d.repo.tx(async (): Promise<{ row: UserRow } | { refusal: AppError }> => {
      await this.d.repo.lock('seats');
      if (await this.byEmail(email)) throw new AppError(409, 'account_exists', 'An account with this address exists; sign in as it to accept.');
      const refusal = await this.seatRefusal();
      if (refusal) return { refusal };
      return { row: await this.d.repo.insertUser({ id: newId('usr', now), email, name: email.split('@')[0]!, passwordHash: input.passwordHash, passwordChangedAt: now, createdAt: now, updatedAt: now }) };
    });
    if ('refusal' in out) throw await this.refused(ctx, out.refusal, 'user.create', { type: 'user' });
    await this.d.audit.record(ctx, { action: 'user.create', target: { type: 'user', id: out.row.id }, details: { email, platform_admin: false, via: 'invitation' } });
    return out.row;
  }

  /** Removes the membership; the user's keys in this tenant stop (their owner lost the role). */
  async removeMember(ctx: RequestContext, userId: string): Promise<void> {
    const existing = (await this.byId(userId)) ? await this.d.repo.membership(ctx, userId) : undefined;
    if (!existing) throw await hidden(this.d, ctx, 'user', userId, 'membership.revoke');
    await this.d.access.require(ctx, 'members:write', {}, { type: 'membership', id: userId });
    if (existing.role === 'owner') await this.d.access.require(ctx, 'members:grant_owner', {}, { type: 'membership', id: userId });
    // The owner count and the delete in one transaction: two concurrent removals of the last
    // two owners must leave one.
    const previous = await this.d.repo.tx(async () => {
      await this.d.repo.lock(`owners:${ctx.tenant?.id}`);
      const current = await this.d.repo.membership(ctx, userId);
      if (!current) return undefined;
      if (current.role === 'owner' && (await this.d.repo.countOwners(ctx)) <= 1) throw new AppError(409, 'last_owner', 'A tenant keeps at least one owner.');
      await this.d.repo.deleteMembership(ctx, userId);
      return current.role;
    });
    if (previous === undefined) throw await hidden(this.d, ctx, 'user', userId, 'membership.revoke');
    await this.d.revision.bump();
    await this.d.audit.record(ctx, { action: 'membership.revoke', target: { type: 'user', id: userId }, details: { previous_role: previous } });
  }

  /** Set by createIdentity: SessionService.checkCurrentPassword (throttled like logins). */
  currentPasswordCheck: ((ctx: RequestContext, user: UserRow, password: string) => Promise<void>) | undefined;

  /** Changes the caller's own password; every other session of the user ends. */
  async changeOwnPassword(ctx: RequestContext, current: string, next: string): Promise<void> {
    const p = ctx.principal;
    if (p?.kind !== 'user' || !p.userId) throw new AppError(403, 'session_required', 'Change your password from a signed-in session.');
    const u = (await this.byId(p.userId))!;
    // Wrong current passwords count against the same per-account and per-address limits as
    // failed logins (SessionService.checkCurrentPassword): a stolen session cannot guess it.
    if (!this.currentPasswordCheck) throw new Error('currentPasswordCheck is not wired');
    await this.currentPasswordCheck(ctx, u, current);
    await this.setPassword(ctx, u, next, p.sessionId);
  }

  /** Sets a password (platform admin or CLI reset): every session of the user ends, except `keepSessionId`. */
  async setPassword(ctx: RequestContext, user: UserRow, next: string, keepSessionId?: string): Promise<void> {
    const bad = checkPasswordPolicy(next, user.email);
    if (bad) throw bad;
    const hash = await hashPassword(next, this.d.passwordLogN);
    const now = this.d.clock.now();
    const ended = await this.d.repo.tx(async () => {
      await this.d.repo.updateUser(user.id, { passwordHash: hash, passwordChangedAt: now, updatedAt: now });
      return this.d.repo.endSessionsOfUser(user.id, now, 'password_changed', keepSessionId);
    });
    await this.d.audit.record(ctx, { action: 'user.password_change', tenantId: null, target: { type: 'user', id: user.id }, details: { sessions_ended: ended } });
  }
}
