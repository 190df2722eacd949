import { and, desc, eq, lt, sql } from 'drizzle-orm';
import type { RequestContext } from '../context.js';
import { sessions, users } from '../db/schema.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import { isRole, type Role } from '../access/permissions.js';
import { hidden, isPlatform, page, type IdentityDeps, type Page } from './deps.js';
import { checkPasswordPolicy, hashPassword } from './passwords.js';

export type UserRow = typeof users.$inferSelect;

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

  byId(id: string): UserRow | undefined {
    return this.d.db.select().from(users).where(eq(users.id, id)).get();
  }
  byEmail(email: string): UserRow | undefined {
    return this.d.db.select().from(users).where(eq(users.email, email.trim().toLowerCase())).get();
  }
  resolve(ref: string): UserRow | undefined {
    return ref.startsWith('usr_') ? this.byId(ref) : this.byEmail(ref);
  }
  countPlatformAdmins(): number {
    return this.d.db.select({ n: sql<number>`count(*)` }).from(users).where(and(eq(users.platformAdmin, true), eq(users.status, 'active'))).get()!.n;
  }
  private countActive(): number {
    return this.d.db.select({ n: sql<number>`count(*)` }).from(users).where(eq(users.status, 'active')).get()!.n;
  }
  private checkSeat(ctx: RequestContext, action: string, target: { type: string; id?: string }): void {
    const refusal = this.d.entitlements().checkGrowth('seats', this.countActive());
    if (refusal) {
      this.d.audit.record(ctx, { action, outcome: 'denied', reason: refusal.code, target });
      throw refusal;
    }
  }

  /** A user visible to the principal: platform admins see everyone, others the members of their tenant. */
  private visible(ctx: RequestContext, id: string, action: string): UserRow {
    const u = this.byId(id);
    if (u && (isPlatform(ctx) || (ctx.tenant && this.d.repo.membership(ctx, u.id)))) return u;
    throw hidden(this.d, ctx, 'user', id, action);
  }

  async create(
    ctx: RequestContext,
    input: { email: string; name?: string; password?: string | null; platformAdmin?: boolean },
  ): Promise<UserRow> {
    this.d.access.require(ctx, 'platform:users:write', {}, { type: 'user' });
    return this.insert(ctx, input);
  }

  private async insert(ctx: RequestContext, input: { email: string; name?: string; password?: string | null; platformAdmin?: boolean }): Promise<UserRow> {
    const email = normalizeEmail(input.email);
    if (this.byEmail(email)) throw new AppError(409, 'user_exists', `A user with e-mail ${email} already exists.`, { param: 'email' });
    let passwordHash: string | null = null;
    if (input.password != null) {
      const bad = checkPasswordPolicy(input.password, email);
      if (bad) throw bad;
      passwordHash = await hashPassword(input.password, this.d.passwordLogN);
    }
    this.checkSeat(ctx, 'user.create', { type: 'user' });
    const now = this.d.clock.now();
    const row = this.d.db
      .insert(users)
      .values({
        id: newId('usr', now),
        email,
        name: input.name?.trim() || email.split('@')[0]!,
        passwordHash,
        platformAdmin: input.platformAdmin ?? false,
        passwordChangedAt: passwordHash ? now : null,
        createdAt: now,
        updatedAt: now,
      })
      .returning()
      .get();
    this.d.audit.record(ctx, {
      action: 'user.create',
      tenantId: ctx.tenant?.id ?? null,
      target: { type: 'user', id: row.id },
      details: { email, platform_admin: row.platformAdmin },
    });
    return row;
  }

  get(ctx: RequestContext, id: string): { user: UserRow; role: Role | null } {
    const u = this.visible(ctx, id, 'user.read');
    if (!isPlatform(ctx)) this.d.access.require(ctx, 'members:read', {}, { type: 'user', id });
    return { user: u, role: ctx.tenant ? (this.d.repo.membership(ctx, u.id)?.role ?? null) : null };
  }

  list(ctx: RequestContext, opts: { status?: 'active' | 'deactivated'; email?: string; cursor?: string; limit: number }): Page<ReturnType<typeof serializeUser>> {
    if (isPlatform(ctx)) {
      this.d.access.require(ctx, 'platform:users:read');
      const rows = this.d.db
        .select()
        .from(users)
        .where(
          and(
            opts.status ? eq(users.status, opts.status) : undefined,
            opts.email ? eq(users.email, opts.email.toLowerCase()) : undefined,
            opts.cursor ? lt(users.id, opts.cursor) : undefined,
          ),
        )
        .orderBy(desc(users.id))
        .limit(opts.limit + 1)
        .all();
      return page(rows, opts.limit, (u) => u.id, (u) => serializeUser(u));
    }
    return this.members(ctx, opts);
  }

  /** The members of ctx's tenant with their roles. */
  members(ctx: RequestContext, opts: { status?: 'active' | 'deactivated'; email?: string; cursor?: string; limit: number }): Page<ReturnType<typeof serializeUser>> {
    this.d.access.require(ctx, 'members:read');
    const rows = this.d.repo
      .memberUsers(ctx, { limit: opts.limit + 1, ...(opts.cursor ? { beforeId: opts.cursor } : {}), ...(opts.status ? { status: opts.status } : {}) })
      .filter((r) => !opts.email || r.user.email === opts.email.toLowerCase());
    return page(rows, opts.limit, (r) => r.user.id, (r) => serializeUser(r.user, { role: r.role }));
  }

  /** Deactivate: sessions end and keys stop at once; the user's data stays. */
  deactivate(ctx: RequestContext, id: string): UserRow {
    const u = this.visible(ctx, id, 'user.deactivate');
    this.d.access.require(ctx, 'platform:users:write', {}, { type: 'user', id });
    if (u.platformAdmin && u.status === 'active' && this.countPlatformAdmins() <= 1) {
      throw new AppError(409, 'last_platform_admin', 'This is the last active platform administrator; create another one first.');
    }
    const now = this.d.clock.now();
    this.d.db.transaction((tx) => {
      tx.update(users).set({ status: 'deactivated', updatedAt: now }).where(eq(users.id, id)).run();
      tx.update(sessions).set({ revokedAt: now, revokedReason: 'user_deactivated' }).where(and(eq(sessions.userId, id), sql`${sessions.revokedAt} IS NULL`)).run();
    });
    this.d.revision.bump();
    this.d.audit.record(ctx, { action: 'user.deactivate', tenantId: null, target: { type: 'user', id } });
    return this.byId(id)!;
  }

  reactivate(ctx: RequestContext, id: string): UserRow {
    const u = this.visible(ctx, id, 'user.reactivate');
    this.d.access.require(ctx, 'platform:users:write', {}, { type: 'user', id });
    if (u.status !== 'active') this.checkSeat(ctx, 'user.reactivate', { type: 'user', id });
    this.d.db.update(users).set({ status: 'active', updatedAt: this.d.clock.now() }).where(eq(users.id, id)).run();
    this.d.revision.bump();
    this.d.audit.record(ctx, { action: 'user.reactivate', tenantId: null, target: { type: 'user', id } });
    return this.byId(id)!;
  }

  /**
   * Grants `role` in ctx's tenant (adds the membership or changes its role). Making or
   * unmaking an owner needs members:grant_owner; the last owner cannot be demoted.
   */
  grant(ctx: RequestContext, userId: string, role: Role): { user: UserRow; role: Role } {
    if (!isRole(role)) throw new AppError(400, 'invalid_role', 'role must be owner, admin, member or viewer.', { param: 'role' });
    const u = this.byId(userId);
    const existing = u ? this.d.repo.membership(ctx, userId) : undefined;
    // A user who is not yet a member is only addressable by platform admins; tenant admins invite (invitations.ts).
    if (!u || (!existing && !isPlatform(ctx))) throw hidden(this.d, ctx, 'user', userId, 'membership.grant');
    this.d.access.require(ctx, 'members:write', {}, { type: 'membership', id: userId });
    if (role === 'owner' || existing?.role === 'owner') this.d.access.require(ctx, 'members:grant_owner', {}, { type: 'membership', id: userId });
    if (existing?.role === 'owner' && role !== 'owner' && this.d.repo.countOwners(ctx) <= 1) {
      throw new AppError(409, 'last_owner', 'A tenant keeps at least one owner; make someone else owner first.');
    }
    this.d.repo.upsertMembership(ctx, userId, role, this.d.clock.now());
    this.d.revision.bump();
    this.d.audit.record(ctx, { action: 'membership.grant', target: { type: 'user', id: userId }, details: { role, previous_role: existing?.role ?? null } });
    return { user: u, role };
  }

  /**
   * The account of an accepted invitation link (server/identity/invitations.ts): the
   * invitee chose the password (hashed by the caller). Seat-checked like any new user.
   */
  insertForInvitation(ctx: RequestContext, input: { email: string; passwordHash: string }): UserRow {
    const email = normalizeEmail(input.email);
    if (this.byEmail(email)) throw new AppError(409, 'account_exists', 'An account with this address exists; sign in as it to accept.');
    this.checkSeat(ctx, 'user.create', { type: 'user' });
    const now = this.d.clock.now();
    const row = this.d.db
      .insert(users)
      .values({ id: newId('usr', now), email, name: email.split('@')[0]!, passwordHash: input.passwordHash, passwordChangedAt: now, createdAt: now, updatedAt: now })
      .returning()
      .get();
    this.d.audit.record(ctx, { action: 'user.create', target: { type: 'user', id: row.id }, details: { email, platform_admin: false, via: 'invitation' } });
    return row;
  }

  /** Removes the membership; the user's keys in this tenant stop (their owner lost the role). */
  removeMember(ctx: RequestContext, userId: string): void {
    const existing = this.byId(userId) ? this.d.repo.membership(ctx, userId) : undefined;
    if (!existing) throw hidden(this.d, ctx, 'user', userId, 'membership.revoke');
    this.d.access.require(ctx, 'members:write', {}, { type: 'membership', id: userId });
    if (existing.role === 'owner') {
      this.d.access.require(ctx, 'members:grant_owner', {}, { type: 'membership', id: userId });
      if (this.d.repo.countOwners(ctx) <= 1) throw new AppError(409, 'last_owner', 'A tenant keeps at least one owner.');
    }
    this.d.repo.deleteMembership(ctx, userId);
    this.d.revision.bump();
    this.d.audit.record(ctx, { action: 'membership.revoke', target: { type: 'user', id: userId }, details: { previous_role: existing.role } });
  }

  /** Set by createIdentity: SessionService.checkCurrentPassword (throttled like logins). */
  currentPasswordCheck: ((ctx: RequestContext, user: UserRow, password: string) => Promise<void>) | undefined;

  /** Changes the caller's own password; every other session of the user ends. */
  async changeOwnPassword(ctx: RequestContext, current: string, next: string): Promise<void> {
    const p = ctx.principal;
    if (p?.kind !== 'user' || !p.userId) throw new AppError(403, 'session_required', 'Change your password from a signed-in session.');
    const u = this.byId(p.userId)!;
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
    const ended = this.d.db.transaction((tx) => {
      tx.update(users).set({ passwordHash: hash, passwordChangedAt: now, updatedAt: now }).where(eq(users.id, user.id)).run();
      return tx
        .update(sessions)
        .set({ revokedAt: now, revokedReason: 'password_changed' })
        .where(and(eq(sessions.userId, user.id), sql`${sessions.revokedAt} IS NULL`, keepSessionId ? sql`${sessions.id} <> ${keepSessionId}` : undefined))
        .run().changes;
    });
    this.d.audit.record(ctx, { action: 'user.password_change', tenantId: null, target: { type: 'user', id: user.id }, details: { sessions_ended: ended } });
  }
}
