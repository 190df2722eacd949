import type { Role } from '../access/permissions.js';
import type { Clock } from '../clock.js';
import { AppError } from '../errors.js';
import type { RequestContext } from '../context.js';
import type { ScimGroupRow, ScimRepo, ScimUserRow } from '../db/repos/scim.js';
import { newId } from '../ids.js';
import { emailDomain } from '../identity/domains.js';
import type { Identity } from '../identity/index.js';
import { normalizeEmail, type UserRow } from '../identity/users.js';
import { badValue, notFound, ScimError } from './errors.js';
import { emailTerms, eqTerms, matches, parseFilter, type Filter } from './filter.js';
import { DEFAULT_ROLE, GROUP_ROLES_SETTING, groupRoleRules, parseRules, roleFromGroups, type GroupRoleRule } from './group-roles.js';
import { applyPatch, type PatchOp } from './patch.js';
import {
  accountEmail,
  displayNameOf,
  groupInput,
  groupResource,
  parseResource,
  patchInput,
  userInput,
  userResource,
  type GroupInput,
  type UserInput,
} from './resources.js';

/**
 * SCIM 2.0 Users and Groups of one tenant (the token's; ctx.tenant). Every read and write
 * goes through ScimRepo with ctx, so another tenant's users and groups are "not found" and
 * no filter can reach them.
 *
 * Identity authority (issue 16, server/sso/authority.ts) decides which accounts a tenant's
 * directory may provision:
 *  - a new account only for an e-mail domain a platform administrator verified for the
 *    tenant (else anyone's SCIM could claim addresses of another organisation);
 *  - an existing account only when it is no platform administrator, belongs to no other
 *    tenant, and its domain is verified for the tenant (the e-mail link rule of SSO).
 * A provisioned account has no password: its holder signs in through the tenant's IdP,
 * which links it by the verified domain.
 *
 * Deprovisioning (`active: false`, DELETE) suspends the membership through
 * identity.provisioning: sessions end, the user's keys in the tenant stop in every process
 * within the revision poll, and an account left with no tenant is deactivated (its seat freed).
 */
export interface ListQuery {
  readonly filter?: string;
  readonly startIndex: number;
  readonly count: number;
}

type Resource = Record<string, unknown>;

export class ScimService {
  constructor(
    private readonly d: { repo: ScimRepo; identity: Identity; clock: Clock },
  ) {}

  private async audit(ctx: RequestContext, action: string, target: { type: string; id: string | null }, details: Record<string, unknown> = {}, outcome?: { denied: string }): Promise<void> {
    await this.d.identity.audit.record(ctx, {
      action,
      target,
      details: { ...details, via: 'scim' },
      ...(outcome ? { outcome: 'denied' as const, reason: outcome.denied } : {}),
    });
  }

  private tenantId(ctx: RequestContext): string {
    return ctx.tenant!.id;
  }

  private async otherTenants(ctx: RequestContext, userId: string): Promise<string[]> {
    return (await this.d.identity.sessions.memberships(userId)).map((m) => m.tenantId).filter((t) => t !== this.tenantId(ctx));
  }

  /** Whether this tenant's directory may hold the account (see the class comment). */
  private async mayHold(ctx: RequestContext, u: UserRow, email: string): Promise<boolean> {
    return !u.platformAdmin && (await this.otherTenants(ctx, u.id)).length === 0 && await this.d.identity.domains.ownerOf(email) === this.tenantId(ctx);
  }

  private email(input: UserInput): string {
    try {
      return normalizeEmail(accountEmail(input));
    } catch {
      throw badValue('The user needs an e-mail address: a primary or work e-mail, or an e-mail-shaped userName.');
    }
  }

  private async domainRefused(ctx: RequestContext, email: string): Promise<ScimError> {
    await this.audit(ctx, 'scim.user.create', { type: 'user', id: null }, { domain: emailDomain(email) }, { denied: 'email_domain_not_verified' });
    return badValue(`The e-mail domain ${emailDomain(email)} is not verified for this tenant; a platform administrator verifies it (enclave tenants domains verify).`);
  }

  // --- users -------------------------------------------------------------------------------

  private async userRes(base: string, ctx: RequestContext, rows: ScimUserRow[]): Promise<Resource[]> {
    const groups = await this.d.repo.groupsOfUsers(
      ctx,
      rows.map((r) => r.userId),
    );
    return rows.map((r) => userResource(base, r, groups.filter((g) => g.userId === r.userId)) as Resource);
  }

  async getUser(ctx: RequestContext, base: string, id: string): Promise<Resource> {
    const row = await this.d.repo.user(ctx, id);
    if (!row) throw notFound('User', id);
    return (await this.userRes(base, ctx, [row]))[0]!;
  }

  async listUsers(ctx: RequestContext, base: string, q: ListQuery): Promise<{ total: number; resources: Resource[] }> {
    const filter = q.filter ? parseFilter(q.filter) : undefined;
    const terms = filter ? eqTerms(filter) : new Map();
    const str = (k: string): string | undefined => {
      const v = terms.get(k);
      return typeof v === 'string' ? v : undefined;
    };
    const rows = await this.d.repo.users(ctx, {
      ...(str('username') !== undefined ? { userNameKey: str('username')!.toLowerCase() } : {}),
      ...(str('externalid') !== undefined ? { externalId: str('externalid')! } : {}),
      ...(str('id') !== undefined ? { userId: str('id')! } : {}),
      ...(filter ? { attributesContain: emailTerms(filter) } : {}),
    });
    // Without a filter only the page is built; with one, the (narrowed) candidates are.
    if (!filter) return { total: rows.length, resources: await this.userRes(base, ctx, pageOf(rows, q)) };
    return this.page(await this.userRes(base, ctx, rows), filter, q);
  }

  private page(all: Resource[], filter: Filter | undefined, q: ListQuery): { total: number; resources: Resource[] } {
    const hits = filter ? all.filter((r) => matches(r, filter)) : all;
    return { total: hits.length, resources: pageOf(hits, q) };
  }

  /** POST /Users: a new account, or (identity authority permitting) an existing one adopted. */
  async createUser(ctx: RequestContext, base: string, body: unknown): Promise<Resource> {
    const input = parseResource(userInput, body);
    const key = input.userName.toLowerCase();
    const byName = await this.d.repo.userByName(ctx, key);
    if (byName && byName.deletedAt === null) throw new ScimError(409, `A user with userName ${input.userName} exists.`, 'uniqueness');
    const email = this.email(input);
    const now = this.d.clock.now();
    let account = await this.d.identity.users.byEmail(email);
    let adopted = false;
    if (account) {
      const mine = await this.d.repo.user(ctx, account.id, { includeDeleted: true });
      if (mine && mine.deletedAt === null) throw new ScimError(409, `A user with this e-mail is already provisioned (id ${account.id}).`, 'uniqueness');
      // A deactivated account comes back only if this tenant's SCIM deactivated it.
      const statusOk = account.status === 'active' || mine?.accountDeactivated === true;
      if (!statusOk || !await this.mayHold(ctx, account, email)) {
        await this.audit(ctx, 'scim.user.create', { type: 'user', id: null }, { domain: emailDomain(email) }, { denied: 'account_link_refused' });
        throw new ScimError(409, 'An account with this e-mail exists and cannot be provisioned by this tenant; ask a platform administrator.', 'uniqueness');
      }
      adopted = true;
    } else {
      if (await this.d.identity.domains.ownerOf(email) !== this.tenantId(ctx)) throw await this.domainRefused(ctx, email);
      const name = displayNameOf(input);
      account = await this.d.identity.users.create(ctx, { email, password: null, ...(name ? { name } : {}) });
    }
    const previous = await this.d.repo.user(ctx, account.id, { includeDeleted: true });
    const role = (await this.d.identity.sessions.memberships(account.id)).find((m) => m.tenantId === this.tenantId(ctx))?.role ?? previous?.role ?? DEFAULT_ROLE;
    // First the membership (and a SCIM-deactivated account back, seat-checked and audited when refused), then the rest at once.
    await this.d.identity.provisioning.restore(ctx, account.id, role, previous?.accountDeactivated === true);
    const acc = account;
    await this.d.repo.tx(async () => {
      // A userName that a deleted row of another account holds is released.
      if (byName && byName.userId !== acc.id) await this.d.repo.updateUser(ctx, byName.userId, { userNameKey: `${byName.userNameKey}#deleted:${now}` });
      const fields = { userName: input.userName, userNameKey: key, externalId: input.externalId ?? null, attributes: attributesOf(input), active: true, role, accountDeactivated: false, deletedAt: null, updatedAt: now };
      if (previous) await this.d.repo.updateUser(ctx, acc.id, fields);
      else await this.d.repo.insertUser(ctx, { userId: acc.id, createdAt: now, ...fields });
      await this.audit(ctx, 'scim.user.create', { type: 'user', id: acc.id }, { email, adopted, role });
      await this.syncRoles(ctx, [acc.id]);
      if (!input.active) await this.setActive(ctx, acc.id, false);
    });
    return await this.getUser(ctx, base, account.id);
  }

  async replaceUser(ctx: RequestContext, base: string, id: string, body: unknown): Promise<Resource> {
    const row = await this.d.repo.user(ctx, id);
    if (!row) throw notFound('User', id);
    await this.apply(ctx, row, parseResource(userInput, body));
    return await this.getUser(ctx, base, id);
  }

  async patchUser(ctx: RequestContext, base: string, id: string, body: unknown): Promise<Resource> {
    const row = await this.d.repo.user(ctx, id);
    if (!row) throw notFound('User', id);
    const ops = parsePatch(body);
    const next = applyPatch((await this.userRes(base, ctx, [row]))[0]!, ops);
    await this.apply(ctx, row, parseResource(userInput, next));
    return await this.getUser(ctx, base, id);
  }

  /**
   * PUT and PATCH: every check (and its audited refusal) first, then all writes in one
   * transaction, so a refused request changes nothing.
   */
  private async apply(ctx: RequestContext, row: ScimUserRow, input: UserInput): Promise<void> {
    const now = this.d.clock.now();
    const key = input.userName.toLowerCase();
    const other = key !== row.userNameKey ? await this.d.repo.userByName(ctx, key) : undefined;
    if (other && other.userId !== row.userId && other.deletedAt === null) throw new ScimError(409, `A user with userName ${input.userName} exists.`, 'uniqueness');
    const account = (await this.d.identity.users.byId(row.userId))!;
    const email = this.email(input);
    const emailChange = email !== account.email;
    if (emailChange) {
      if (!await this.mayHold(ctx, account, email)) {
        await this.audit(ctx, 'scim.user.update', { type: 'user', id: row.userId }, { domain: emailDomain(email) }, { denied: 'account_link_refused' });
        throw new ScimError(400, 'This tenant may not change the e-mail of this account (it belongs to another tenant too, or the new domain is not verified for this tenant).', 'mutability');
      }
      if (await this.d.identity.users.byEmail(email)) throw new ScimError(409, 'Another account has this e-mail.', 'uniqueness');
    }
    if (input.active && !row.active && row.accountDeactivated) await this.d.identity.provisioning.checkSeat(ctx, row.userId);
    const name = displayNameOf(input);
    const renames = name !== undefined && name !== account.name && (await this.otherTenants(ctx, row.userId)).length === 0 && !account.platformAdmin;
    await this.d.repo.tx(async () => {
      if (other && other.userId !== row.userId) await this.d.repo.updateUser(ctx, other.userId, { userNameKey: `${other.userNameKey}#deleted:${now}` });
      if (emailChange || renames) await this.d.identity.provisioning.updateAccount(ctx, row.userId, { ...(emailChange ? { email } : {}), ...(renames ? { name: name! } : {}) });
      await this.d.repo.updateUser(ctx, row.userId, { userName: input.userName, userNameKey: key, externalId: input.externalId ?? null, attributes: attributesOf(input), updatedAt: now });
      if (input.active !== row.active) await this.setActive(ctx, row.userId, input.active);
    });
  }

  /** Deactivation and reactivation, through identity.provisioning (see the class comment). */
  private async setActive(ctx: RequestContext, userId: string, active: boolean): Promise<void> {
    const row = (await this.d.repo.user(ctx, userId, { includeDeleted: true }))!;
    const now = this.d.clock.now();
    if (!active) {
      const r = await this.d.identity.provisioning.suspend(ctx, userId, 'scim_deactivated');
      await this.d.repo.updateUser(ctx, userId, { active: false, role: r.previousRole ?? row.role, accountDeactivated: r.accountDeactivated || row.accountDeactivated, updatedAt: now });
      await this.audit(ctx, 'scim.user.deactivate', { type: 'user', id: userId }, { previous_role: r.previousRole, account_deactivated: r.accountDeactivated });
      return;
    }
    await this.d.identity.provisioning.restore(ctx, userId, row.role, row.accountDeactivated);
    await this.d.repo.updateUser(ctx, userId, { active: true, accountDeactivated: false, updatedAt: now });
    await this.audit(ctx, 'scim.user.reactivate', { type: 'user', id: userId }, { role: row.role, account_reactivated: row.accountDeactivated });
  }

  /** DELETE /Users/:id: the membership ends (data kept); the row stays, unserved, for a later re-provisioning. */
  async deleteUser(ctx: RequestContext, id: string): Promise<void> {
    const row = await this.d.repo.user(ctx, id);
    if (!row) throw notFound('User', id);
    await this.d.repo.tx(async () => {
      let suspended: { previousRole: Role | null; accountDeactivated: boolean } | undefined;
      if (row.active) suspended = await this.d.identity.provisioning.suspend(ctx, id, 'scim_deleted');
      const removedFromGroups = await this.d.repo.removeUserFromGroups(ctx, id);
      await this.d.repo.updateUser(ctx, id, {
        active: false,
        deletedAt: this.d.clock.now(),
        role: suspended?.previousRole ?? row.role,
        accountDeactivated: (suspended?.accountDeactivated ?? false) || row.accountDeactivated,
        updatedAt: this.d.clock.now(),
      });
      await this.audit(ctx, 'scim.user.delete', { type: 'user', id }, { previous_role: suspended?.previousRole ?? null, account_deactivated: suspended?.accountDeactivated ?? row.accountDeactivated, groups_left: removedFromGroups });
    });
  }

  // --- groups ------------------------------------------------------------------------------

  private async groupRes(base: string, ctx: RequestContext, rows: ScimGroupRow[], withMembers: boolean): Promise<Resource[]> {
    const members = withMembers
      ? await this.d.repo.members(
          ctx,
          rows.map((r) => r.id),
        )
      : [];
    return rows.map((r) => groupResource(base, r, withMembers ? members.filter((m) => m.groupId === r.id) : undefined) as Resource);
  }

  async getGroup(ctx: RequestContext, base: string, id: string, withMembers = true): Promise<Resource> {
    const row = await this.d.repo.group(ctx, id);
    if (!row) throw notFound('Group', id);
    return (await this.groupRes(base, ctx, [row], withMembers))[0]!;
  }

  async listGroups(ctx: RequestContext, base: string, q: ListQuery, withMembers: boolean): Promise<{ total: number; resources: Resource[] }> {
    const filter = q.filter ? parseFilter(q.filter) : undefined;
    const terms = filter ? eqTerms(filter) : new Map();
    const ext = terms.get('externalid');
    const id = terms.get('id');
    const rows = await this.d.repo.groups(ctx, { ...(typeof ext === 'string' ? { externalId: ext } : {}), ...(typeof id === 'string' ? { id } : {}) });
    // Filtering sees members (members[value eq "…"]) even when the answer leaves them out.
    const all = await this.groupRes(base, ctx, rows, true);
    const r = this.page(all, filter, q);
    if (!withMembers) for (const g of r.resources) delete g.members;
    return r;
  }

  /** The member ids of a group body: every one must be a served user of this tenant. */
  private async memberIds(ctx: RequestContext, input: GroupInput): Promise<string[]> {
    const ids = [...new Set((input.members ?? []).map((m) => m.value))];
    if (ids.length === 0) return [];
    const known = new Set((await this.d.repo.users(ctx)).map((u) => u.userId));
    const unknown = ids.filter((i) => !known.has(i));
    if (unknown.length) throw badValue(`Unknown member${unknown.length > 1 ? 's' : ''}: ${unknown.slice(0, 5).join(', ')} (members are users of this tenant's SCIM).`);
    return ids;
  }

  private async nameTaken(ctx: RequestContext, displayName: string, exceptId?: string): Promise<boolean> {
    const lower = displayName.toLowerCase();
    return (await this.d.repo.groups(ctx)).some((g) => g.id !== exceptId && g.displayName.toLowerCase() === lower);
  }

  async createGroup(ctx: RequestContext, base: string, body: unknown): Promise<Resource> {
    const input = parseResource(groupInput, body);
    if (await this.nameTaken(ctx, input.displayName)) throw new ScimError(409, `A group named ${input.displayName} exists.`, 'uniqueness');
    const members = await this.memberIds(ctx, input);
    const now = this.d.clock.now();
    const row = await this.d.repo.tx(async () => {
      const g = await this.d.repo.insertGroup(ctx, { id: newId('grp', now), displayName: input.displayName, externalId: input.externalId ?? null, createdAt: now, updatedAt: now });
      await this.d.repo.setMembers(ctx, g.id, members, now);
      await this.audit(ctx, 'scim.group.create', { type: 'scim_group', id: g.id }, { display_name: g.displayName, members: members.length });
      await this.syncRoles(ctx, members);
      return g;
    });
    return await this.getGroup(ctx, base, row.id);
  }

  async replaceGroup(ctx: RequestContext, base: string, id: string, body: unknown): Promise<Resource> {
    const row = await this.d.repo.group(ctx, id);
    if (!row) throw notFound('Group', id);
    await this.applyGroup(ctx, row, parseResource(groupInput, body));
    return await this.getGroup(ctx, base, id);
  }

  /** PATCH /Groups/:id; `withMembers` false answers 204-style without the member list (Entra asks for it). */
  async patchGroup(ctx: RequestContext, base: string, id: string, body: unknown): Promise<Resource> {
    const row = await this.d.repo.group(ctx, id);
    if (!row) throw notFound('Group', id);
    const next = applyPatch((await this.groupRes(base, ctx, [row], true))[0]!, parsePatch(body));
    await this.applyGroup(ctx, row, parseResource(groupInput, next));
    return await this.getGroup(ctx, base, id);
  }

  private async applyGroup(ctx: RequestContext, row: ScimGroupRow, input: GroupInput): Promise<void> {
    if (input.displayName !== row.displayName && await this.nameTaken(ctx, input.displayName, row.id)) throw new ScimError(409, `A group named ${input.displayName} exists.`, 'uniqueness');
    const before = new Set((await this.d.repo.members(ctx, [row.id])).map((m) => m.userId));
    const after = await this.memberIds(ctx, input);
    const now = this.d.clock.now();
    const added = after.filter((u) => !before.has(u));
    const kept = new Set(after);
    const removed = [...before].filter((u) => !kept.has(u));
    await this.d.repo.tx(async () => {
      await this.d.repo.updateGroup(ctx, row.id, { displayName: input.displayName, externalId: input.externalId ?? null, updatedAt: now });
      await this.d.repo.setMembers(ctx, row.id, after, now);
      await this.audit(ctx, 'scim.group.update', { type: 'scim_group', id: row.id }, { display_name: input.displayName, added: added.slice(0, 100), removed: removed.slice(0, 100), added_count: added.length, removed_count: removed.length });
      await this.syncRoles(ctx, [...before, ...after]);
    });
  }

  async deleteGroup(ctx: RequestContext, id: string): Promise<void> {
    const members = (await this.d.repo.members(ctx, [id])).map((m) => m.userId);
    await this.d.repo.tx(async () => {
      if (!await this.d.repo.deleteGroup(ctx, id)) throw notFound('Group', id);
      await this.audit(ctx, 'scim.group.delete', { type: 'scim_group', id });
      await this.syncRoles(ctx, members);
    });
  }

  /** What the tenant's directory has provisioned (admin API status; counts only, no personal data). */
  async summary(ctx: RequestContext): Promise<{ users: { provisioned: number; active: number; deprovisioned: number }; groups: number; group_roles: GroupRoleRule[] }> {
    const users = await this.d.repo.users(ctx);
    const active = users.filter((u) => u.active).length;
    return { users: { provisioned: users.length, active, deprovisioned: users.length - active }, groups: (await this.d.repo.groups(ctx)).length, group_roles: await this.groupRoles(ctx) };
  }

  // --- group → role rules (server/scim/group-roles.ts) --------------------------------------

  async groupRoles(ctx: RequestContext): Promise<GroupRoleRule[]> {
    return parseRules(await this.d.repo.setting(ctx, GROUP_ROLES_SETTING));
  }

  /** Replaces the tenant's rules (an empty list turns them off) and applies them to every provisioned user. */
  async setGroupRoles(ctx: RequestContext, input: unknown): Promise<GroupRoleRule[]> {
    const r = groupRoleRules.safeParse(input);
    if (!r.success) {
      const issue = r.error.issues[0];
      throw new AppError(400, 'invalid_request', `group roles: ${issue?.path.join('.') || 'rules'}: ${issue?.message ?? 'invalid'} (roles: admin, member, viewer)`);
    }
    await this.d.repo.tx(async () => {
      await this.d.repo.putSetting(ctx, GROUP_ROLES_SETTING, JSON.stringify(r.data), this.d.clock.now());
      await this.d.identity.audit.record(ctx, { action: 'scim.group_roles.set', target: { type: 'tenant', id: this.tenantId(ctx) }, details: { rules: r.data } });
      await this.syncRoles(
        ctx,
        (await this.d.repo.users(ctx)).map((u) => u.userId),
      );
    });
    return r.data;
  }

  /**
   * With rules set, gives each of these provisioned users the role their groups map to (owners
   * are never changed). A deprovisioned user's stored role is updated for their reactivation.
   */
  private async syncRoles(ctx: RequestContext, userIds: Iterable<string>): Promise<void> {
    const rules = await this.groupRoles(ctx);
    const ids = [...new Set(userIds)];
    await this.syncTeams(ctx, ids);
    if (rules.length === 0 || ids.length === 0) return;
    const groups = await this.d.repo.groupsOfUsers(ctx, ids);
    const now = this.d.clock.now();
    for (const id of ids) {
      const row = await this.d.repo.user(ctx, id);
      if (!row) continue;
      const desired = roleFromGroups(
        rules,
        groups.filter((g) => g.userId === id).map((g) => g.displayName),
      );
      const current = row.active ? ((await this.d.identity.sessions.memberships(id)).find((m) => m.tenantId === this.tenantId(ctx))?.role ?? null) : row.role;
      if (current === 'owner' || current === desired) continue;
      if (row.active) await this.d.identity.provisioning.restore(ctx, id, desired, false);
      await this.d.repo.updateUser(ctx, id, { role: desired, updatedAt: now });
      await this.audit(ctx, 'scim.user.role', { type: 'user', id }, { from: current, to: desired, active: row.active });
    }
  }

  /** SCIM groups → teams (server/teams): members of a group are members of the teams whose IdP group is its displayName. */
  private async syncTeams(ctx: RequestContext, ids: string[]): Promise<void> {
    const sync = this.d.identity.teamDirectory;
    if (!sync || ids.length === 0) return;
    const groups = await this.d.repo.groupsOfUsers(ctx, ids);
    for (const id of ids) await sync(this.tenantId(ctx), id, groups.filter((g) => g.userId === id).map((g) => g.displayName), 'scim');
  }
}

function pageOf<T>(all: T[], q: ListQuery): T[] {
  return all.slice(q.startIndex - 1, q.startIndex - 1 + q.count);
}

function parsePatch(body: unknown): PatchOp[] {
  const r = patchInput.safeParse(body);
  if (!r.success) throw new ScimError(400, 'Send a PatchOp: {"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[…]}.', 'invalidSyntax');
  return r.data.Operations;
}

/** What scim_users.attributes keeps: the validated attributes without those stored in columns. */
function attributesOf(input: UserInput): string {
  const { userName: _u, externalId: _e, active: _a, ...rest } = input;
  return JSON.stringify(rest);
}
