import { createHash, randomBytes } from 'node:crypto';
import type { Role } from '../access/permissions.js';
import type { RequestContext } from '../context.js';
import type { InvitationRow, InvitationWithTenant } from '../db/repos/authority.js';
import { AppError } from '../errors.js';
import { isId, newId } from '../ids.js';
import type { IdentityDeps } from './deps.js';
import { emailDomain } from './domains.js';
import { checkPasswordPolicy, hashPassword } from './passwords.js';
import { normalizeEmail, type UserRow, type UserService } from './users.js';

/**
 * Invitations: consent before membership (issue 16).
 *
 * A tenant administrator adding an address never attaches an existing account. Every add
 * creates a pending invitation and answers the same whether an account with that address
 * exists or not (no id, name or platform-admin flag): the inviter gets the invitation and
 * its link token, shown once (only the SHA-256 is stored), valid for INVITATION_TTL_MS.
 *
 * Acceptance:
 *  - an account holder, signed in as themselves, sees the invitations addressed to their
 *    e-mail (GET /auth/invitations) and accepts or declines them; or opens the link while
 *    signed in as that address;
 *  - an address without an account accepts through the link, setting its own password
 *    (or signing in with the tenant's IdP: server/sso). The inviter never sets it.
 *    An address whose domain a platform admin verified for ANOTHER tenant is not created
 *    through a link: that organisation's sign-in creates it (then the holder accepts).
 */
export const INVITATION_TTL_MS = 7 * 24 * 3600_000;
export const INVITE_PATH = '/invite';

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

export function serializeInvitation(r: InvitationRow) {
  return {
    object: 'invitation' as const,
    id: r.id,
    email: r.email,
    role: r.role,
    status: r.status,
    created_at: r.createdAt,
    expires_at: r.expiresAt,
  };
}

/** What the invitee sees: the tenant by name, never who else is in it. */
export function serializeForInvitee(x: InvitationWithTenant) {
  return {
    object: 'invitation' as const,
    id: x.invitation.id,
    email: x.invitation.email,
    role: x.invitation.role,
    tenant: { slug: x.tenant.slug, name: x.tenant.name },
    created_at: x.invitation.createdAt,
    expires_at: x.invitation.expiresAt,
  };
}

export class InvitationService {
  constructor(
    private readonly d: IdentityDeps,
    private readonly users: UserService,
  ) {}

  private invalid(): AppError {
    return new AppError(404, 'invitation_invalid', 'This invitation does not exist, has expired, or was already used or withdrawn; ask for a new one.');
  }

  /**
   * Invites an address to ctx's tenant. Same answer (shape and status) whether an account
   * exists or not; only "already a member of this tenant" differs, which the inviter can see
   * in its own member list anyway.
   */
  async invite(ctx: RequestContext, input: { email: string; role: Role }): Promise<{ invitation: InvitationRow; token: string }> {
    await this.d.access.require(ctx, 'members:write', {}, { type: 'invitation' });
    if (input.role === 'owner') await this.d.access.require(ctx, 'members:grant_owner', {}, { type: 'invitation' });
    const email = normalizeEmail(input.email);
    const existing = await this.users.byEmail(email);
    if (existing && (await this.d.repo.membership(ctx, existing.id))) throw new AppError(409, 'already_member', 'That address is already a member; change the role instead.');
    const now = this.d.clock.now();
    const token = randomBytes(32).toString('base64url');
    const invitation = await this.d.repo.tx(async () => {
      await this.d.authority.supersede(ctx, email, now);
      return this.d.authority.insertInvitation(ctx, {
        id: newId('inv', now),
        email,
        role: input.role,
        tokenHash: sha256(token),
        invitedBy: ctx.principal?.userId ?? (ctx.principal ? `${ctx.principal.kind}:${ctx.principal.id}` : 'unknown'),
        createdAt: now,
        expiresAt: now + INVITATION_TTL_MS,
      });
    });
    await this.d.audit.record(ctx, { action: 'invitation.create', target: { type: 'invitation', id: invitation.id }, details: { email, role: input.role } });
    return { invitation, token };
  }

  async list(ctx: RequestContext): Promise<InvitationRow[]> {
    await this.d.access.require(ctx, 'members:read', {}, { type: 'invitation' });
    return this.d.authority.pendingInvitations(ctx, this.d.clock.now());
  }

  async revoke(ctx: RequestContext, id: string): Promise<void> {
    await this.d.access.require(ctx, 'members:write', {}, { type: 'invitation', id });
    if (!(await this.d.authority.decide(ctx, id, 'revoked', this.d.clock.now()))) {
      await this.d.audit.record(ctx, { action: 'invitation.revoke', outcome: 'denied', reason: 'not_found', target: { type: 'invitation', id } });
      throw new AppError(404, 'not_found', 'Invitation not found (or no longer pending)');
    }
    await this.d.audit.record(ctx, { action: 'invitation.revoke', target: { type: 'invitation', id } });
  }

  // ------------------------------------------------------------------ the invitee

  private async signedIn(ctx: RequestContext): Promise<UserRow> {
    const p = ctx.principal;
    const u = p?.kind === 'user' && p.userId ? await this.users.byId(p.userId) : undefined;
    if (!u) throw new AppError(403, 'session_required', 'Sign in to see and accept your invitations.');
    return u;
  }

  /** The signed-in user's pending invitations (addressed to their e-mail). */
  async mine(ctx: RequestContext): Promise<InvitationWithTenant[]> {
    const u = await this.signedIn(ctx);
    return (await this.d.authority.pendingForEmail(u.email, this.d.clock.now())).filter((x) => x.tenant.status === 'active');
  }

  private usable(x: InvitationWithTenant | undefined): x is InvitationWithTenant {
    return !!x && x.invitation.status === 'pending' && x.invitation.expiresAt > this.d.clock.now() && x.tenant.status === 'active';
  }

  private tenantCtx(ctx: RequestContext, x: InvitationWithTenant): RequestContext {
    return { ...ctx, tenant: { id: x.tenant.id, slug: x.tenant.slug } };
  }

  /**
   * Membership from an accepted invitation; an existing membership keeps its role. The decision
   * (a conditional UPDATE: only one of two concurrent acceptances finds the invitation still
   * pending) and the membership in one transaction.
   */
  private async join(ctx: RequestContext, x: InvitationWithTenant, user: UserRow): Promise<void> {
    const tctx = this.tenantCtx(ctx, x);
    const now = this.d.clock.now();
    await this.d.repo.tx(async () => {
      if (!(await this.d.authority.decide(tctx, x.invitation.id, 'accepted', now, user.id))) throw this.invalid();
      if (!(await this.d.repo.membership(tctx, user.id))) await this.d.repo.upsertMembership(tctx, user.id, x.invitation.role, now);
    });
    await this.d.revision.bump();
    const actor = { type: 'user' as const, id: user.id };
    await this.d.audit.record(tctx, { action: 'invitation.accept', actor, target: { type: 'invitation', id: x.invitation.id } });
    await this.d.audit.record(tctx, { action: 'membership.grant', actor, target: { type: 'user', id: user.id }, details: { role: x.invitation.role, previous_role: null, invitation: x.invitation.id } });
  }

  /** Accepts one of the signed-in user's invitations; returns its tenant. */
  async accept(ctx: RequestContext, id: string): Promise<InvitationWithTenant> {
    const u = await this.signedIn(ctx);
    const x = isId('inv', id) ? await this.d.authority.invitationForInvitee(id, u.email) : undefined;
    if (!this.usable(x)) throw this.invalid();
    await this.join(ctx, x, u);
    return x;
  }

  async decline(ctx: RequestContext, id: string): Promise<void> {
    const u = await this.signedIn(ctx);
    const x = isId('inv', id) ? await this.d.authority.invitationForInvitee(id, u.email) : undefined;
    if (!this.usable(x) || !(await this.d.authority.decide(this.tenantCtx(ctx, x), id, 'declined', this.d.clock.now()))) throw this.invalid();
    await this.d.audit.record(this.tenantCtx(ctx, x), { action: 'invitation.decline', actor: { type: 'user', id: u.id }, target: { type: 'invitation', id } });
  }

  /** The invitation of a link token (public: tenant name, address, role, expiry). */
  async byToken(token: unknown): Promise<InvitationWithTenant> {
    if (typeof token !== 'string' || token.length < 20 || token.length > 100) throw this.invalid();
    const x = await this.d.authority.invitationByToken(sha256(token));
    if (!this.usable(x)) throw this.invalid();
    return x;
  }

  /**
   * Accepts through the link. Signed in: only as the invited address. Not signed in: the
   * address must have no account yet; the invitee's own password creates it.
   */
  async acceptLink(ctx: RequestContext, token: unknown, password: string | undefined): Promise<{ user: UserRow; invitation: InvitationWithTenant; created: boolean }> {
    const x = await this.byToken(token);
    const p = ctx.principal;
    if (p?.kind === 'user' && p.userId) {
      const u = (await this.users.byId(p.userId))!;
      if (u.email !== x.invitation.email) {
        throw new AppError(403, 'invitation_other_account', `This invitation is for ${x.invitation.email}; sign in as that address to accept it.`);
      }
      await this.join(ctx, x, u);
      return { user: u, invitation: x, created: false };
    }
    if (await this.users.byEmail(x.invitation.email)) {
      throw new AppError(409, 'account_exists', `Sign in as ${x.invitation.email} first, then open the invitation link again (or accept it from your invitations).`);
    }
    const owner = await this.d.authority.verifiedDomainOwner(emailDomain(x.invitation.email));
    if (owner && owner !== x.tenant.id) {
      throw new AppError(409, 'domain_managed', `Accounts of ${emailDomain(x.invitation.email)} are created by their organisation's sign-in: sign in through it first, then accept the invitation.`);
    }
    if (typeof password !== 'string') throw new AppError(400, 'password_required', 'Choose a password for your new account.', { param: 'password' });
    const bad = checkPasswordPolicy(password, x.invitation.email);
    if (bad) throw bad;
    const hash = await hashPassword(password, this.d.passwordLogN);
    const sctx: RequestContext = { ...this.tenantCtx(ctx, x), principal: { kind: 'system', id: 'invitation', platformAdmin: false } };
    const user = await this.users.insertForInvitation(sctx, { email: x.invitation.email, passwordHash: hash });
    await this.join({ ...ctx, principal: { kind: 'user', id: user.id, userId: user.id, platformAdmin: false } }, x, user);
    return { user, invitation: x, created: true };
  }

  /** For the SSO route (server/sso): the invitation of a token, checked usable. */
  forSso(token: unknown): Promise<InvitationWithTenant> {
    return this.byToken(token);
  }
  /** For the SSO route: accept `x` for `user` (the IdP asserted the invited address). */
  async acceptForSso(ctx: RequestContext, invitationId: string, user: UserRow): Promise<void> {
    const x = await this.d.authority.invitationForInvitee(invitationId, user.email);
    if (!this.usable(x)) throw this.invalid();
    await this.join(ctx, x, user);
  }
}
