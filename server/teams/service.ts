import { z } from 'zod';
import type { Access } from '../access/authorize.js';
import { teamPermits, type TeamAction } from '../access/permissions.js';
import type { AuditLog } from '../audit/log.js';
import type { Clock } from '../clock.js';
import type { Classification, RequestContext, TeamGrant } from '../context.js';
import { requireTenant } from '../context.js';
import { TeamNameTaken, type TeamMemberRow, type TeamRole, type TeamRow, type TeamsRepo } from '../db/repos/teams.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import { hidden, isPlatform } from '../identity/deps.js';
import type { Revision } from '../identity/revision.js';
import type { KeyService } from '../keys/service.js';
import { ADMISSION_LIMITS, compactLimits, limitsSchema, parseLimits, type Limits } from '../metering/limits.js';

/**
 * Teams inside a tenant (issue 24): members (by hand, IdP group claims at login, SCIM groups),
 * team admins, and per team: allowed models (a subset of what the tenant allows: the
 * tenant's plan still applies), a classification ceiling, plan-like limits and alert
 * thresholds.
 *
 * The team of a call (`ctx.principal.team`, filled at authentication by resolve()): the
 * key's team for a team key, otherwise the caller's oldest team membership (none: no team
 * level). Authorization applies its models and ceiling (server/access/authorize.ts), admission
 * its limits as the `team` level (server/metering/admission.ts), and the usage record carries
 * its id (usage_team_rollups, reports by team).
 *
 * Every change bumps the metering revision: this cache and admission's caches drop in every
 * process within the revision poll (200 ms).
 */
const CLASSIFICATIONS = ['public', 'internal', 'confidential', 'restricted'] as const;
const admissionLimits = limitsSchema.pick({ monthly_tokens: true, monthly_cost_micros: true, requests_per_minute: true, tokens_per_minute: true, concurrent_requests: true });

export const teamInputSchema = z
  .object({
    name: z.string().trim().min(1).max(100),
    description: z.string().max(500).optional(),
    allowed_models: z.array(z.string().min(1).max(200)).max(500).nullable().optional(),
    max_classification: z.enum(CLASSIFICATIONS).nullable().optional(),
    limits: admissionLimits.optional(),
    alert_thresholds: z.array(z.number().int().min(1).max(1000)).max(10).optional(),
    idp_group: z.string().trim().min(1).max(256).nullable().optional(),
  })
  .strict();
export type TeamInput = z.infer<typeof teamInputSchema>;

interface Snapshot {
  readonly teams: Map<string, TeamGrant>;
  /** userId → their first team (oldest membership). */
  readonly firstTeam: Map<string, string>;
}

export interface TeamDeps {
  readonly repo: TeamsRepo;
  readonly revision: Revision;
  readonly clock: Clock;
  readonly access: Access;
  readonly audit: AuditLog;
  readonly keys: KeyService;
}

export class TeamService {
  private readonly snapshots = new Map<string, Promise<Snapshot>>();
  /** Loaded snapshots (resolve answers from these without awaiting). */
  private readonly ready = new Map<string, Snapshot>();

  constructor(private readonly d: TeamDeps) {
    d.revision.onChange(() => this.forget());
  }

  private forget(): void {
    this.snapshots.clear();
    this.ready.clear();
  }

  // ---- the team of a call ------------------------------------------------------------------

  /** The team a call counts against: the key's team, else the user's first team (undefined: none). Synchronous when cached. */
  resolve(tenantId: string, userId: string | undefined, keyTeamId: string | undefined): TeamGrant | undefined | Promise<TeamGrant | undefined> {
    if (!keyTeamId && !userId) return undefined;
    const s = this.ready.get(tenantId);
    return s ? pick(s, userId, keyTeamId) : this.snapshot(tenantId).then((x) => pick(x, userId, keyTeamId));
  }

  private snapshot(tenantId: string): Promise<Snapshot> {
    let p = this.snapshots.get(tenantId);
    if (!p) {
      const loading = this.load(tenantId);
      p = loading;
      this.snapshots.set(tenantId, loading);
      loading.then(
        (s) => {
          if (this.snapshots.get(tenantId) === loading) this.ready.set(tenantId, s); // not if a change came meanwhile
        },
        () => this.snapshots.delete(tenantId), // a failed read is not cached
      );
    }
    return p;
  }

  private async load(tenantId: string): Promise<Snapshot> {
    const [rows, members] = await Promise.all([this.d.repo.list(tenantId), this.d.repo.allMembers(tenantId)]);
    const teams = new Map(rows.map((r) => [r.id, grantOf(r)] as const));
    const firstTeam = new Map<string, string>();
    for (const m of members) if (!firstTeam.has(m.userId)) firstTeam.set(m.userId, m.teamId);
    return { teams, firstTeam };
  }

  private async changed(): Promise<void> {
    this.forget();
    await this.d.revision.bump();
  }

  // ---- who may do what -----------------------------------------------------------------------

  /** The team if the caller may do `action` on it; else the audited 404 (another team's id reveals nothing). */
  async visible(ctx: RequestContext, teamId: string, action: TeamAction): Promise<TeamRow> {
    const tenant = requireTenant(ctx);
    const team = await this.d.repo.get(tenant.id, teamId);
    if (team && (await this.may(ctx, team.id, action))) return team;
    throw await hidden(this.d, ctx, 'team', teamId, action);
  }

  private async may(ctx: RequestContext, teamId: string, action: TeamAction): Promise<boolean> {
    const p = ctx.principal;
    if (!p) return false;
    if (isPlatform(ctx)) return true;
    const tenantAction = action === 'team:read' || action === 'team:keys:read' || action === 'team:usage:read' ? 'teams:read' : 'teams:write';
    if (this.d.access.authorize(ctx, tenantAction).allow) return true;
    // A team role counts for people signed in (an API key acts with its scopes, above).
    if (p.kind !== 'user' || !p.userId) return false;
    const m = await this.d.repo.member(requireTenant(ctx).id, teamId, p.userId);
    return teamPermits(undefined, m?.role, action);
  }

  private async requireTenantAdmin(ctx: RequestContext, action: 'teams:read' | 'teams:write', target?: string): Promise<void> {
    await this.d.access.require(ctx, action, {}, { type: 'team', ...(target ? { id: target } : {}) });
  }

  // ---- teams ---------------------------------------------------------------------------------

  /** Tenant admins: every team; others: the teams they belong to. */
  async list(ctx: RequestContext): Promise<(TeamRow & { role?: TeamRole })[]> {
    const tenant = requireTenant(ctx);
    const all = await this.d.repo.list(tenant.id);
    if (isPlatform(ctx) || this.d.access.authorize(ctx, 'teams:read').allow) return all;
    const p = ctx.principal;
    if (p?.kind !== 'user' || !p.userId) return [];
    const mine = new Map((await this.d.repo.teamsOfUser(tenant.id, p.userId)).map((m) => [m.teamId, m.role]));
    return all.filter((t) => mine.has(t.id)).map((t) => ({ ...t, role: mine.get(t.id)! }));
  }

  async create(ctx: RequestContext, input: TeamInput): Promise<TeamRow> {
    await this.requireTenantAdmin(ctx, 'teams:write');
    const tenant = requireTenant(ctx);
    const now = this.d.clock.now();
    const row: TeamRow = {
      id: newId('team', now),
      tenantId: tenant.id,
      name: input.name,
      description: input.description ?? '',
      allowedModels: input.allowed_models ? JSON.stringify([...new Set(input.allowed_models)]) : null,
      maxClassification: input.max_classification ?? null,
      limits: JSON.stringify(compactLimits(input.limits ?? {})),
      alertThresholds: JSON.stringify(input.alert_thresholds ?? [80, 100]),
      idpGroup: input.idp_group ?? null,
      createdAt: now,
      updatedAt: now,
    };
    try {
      await this.d.repo.insert(row);
    } catch (e) {
      if (e instanceof TeamNameTaken) throw new AppError(409, 'team_exists', `A team named ${input.name} exists.`, { param: 'name' });
      throw e;
    }
    await this.changed();
    await this.d.audit.record(ctx, { action: 'team.create', target: { type: 'team', id: row.id }, details: teamDetails(row) });
    return row;
  }

  async update(ctx: RequestContext, teamId: string, patch: Partial<TeamInput>): Promise<TeamRow> {
    // Seen by its members (403 below), hidden from everyone else (404).
    const team = await this.visible(ctx, teamId, 'team:read');
    await this.requireTenantAdmin(ctx, 'teams:write', team.id);
    const set: Partial<TeamRow> = { updatedAt: this.d.clock.now() };
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.description !== undefined) set.description = patch.description;
    if (patch.allowed_models !== undefined) set.allowedModels = patch.allowed_models ? JSON.stringify([...new Set(patch.allowed_models)]) : null;
    if (patch.max_classification !== undefined) set.maxClassification = patch.max_classification;
    if (patch.limits !== undefined) set.limits = JSON.stringify(compactLimits(patch.limits));
    if (patch.alert_thresholds !== undefined) set.alertThresholds = JSON.stringify(patch.alert_thresholds);
    if (patch.idp_group !== undefined) set.idpGroup = patch.idp_group;
    try {
      await this.d.repo.update(team.tenantId, team.id, set);
    } catch (e) {
      if (e instanceof TeamNameTaken) throw new AppError(409, 'team_exists', `A team named ${patch.name} exists.`, { param: 'name' });
      throw e;
    }
    await this.changed();
    const after = (await this.d.repo.get(team.tenantId, team.id))!;
    await this.d.audit.record(ctx, { action: 'team.update', target: { type: 'team', id: team.id }, details: teamDetails(after) });
    return after;
  }

  /** Deleting a team with live keys is refused: its keys would leave the team's budget silently. */
  async remove(ctx: RequestContext, teamId: string): Promise<void> {
    // Seen by its members (403 below), hidden from everyone else (404).
    const team = await this.visible(ctx, teamId, 'team:read');
    await this.requireTenantAdmin(ctx, 'teams:write', team.id);
    const live = await this.d.repo.activeKeys(team.tenantId, team.id, this.d.clock.now());
    if (live > 0) throw new AppError(409, 'team_has_keys', `The team ${team.name} has ${live} active API key(s); revoke them first.`);
    await this.d.repo.remove(team.tenantId, team.id);
    await this.changed();
    await this.d.audit.record(ctx, { action: 'team.delete', target: { type: 'team', id: team.id }, details: { name: team.name } });
  }

  // ---- members -------------------------------------------------------------------------------

  async members(ctx: RequestContext, teamId: string): Promise<TeamMemberRow[]> {
    const team = await this.visible(ctx, teamId, 'team:read');
    return this.d.repo.members(team.tenantId, team.id);
  }

  /** Adds or changes a member. Team admins add members; making a team admin needs a tenant admin. */
  async setMember(ctx: RequestContext, teamId: string, userId: string, role: TeamRole): Promise<void> {
    const team = await this.visible(ctx, teamId, 'team:members:write');
    if (role === 'admin') await this.requireTenantAdmin(ctx, 'teams:write', team.id);
    if (!(await this.d.repo.isTenantMember(team.tenantId, userId))) throw await hidden(this.d, ctx, 'user', userId, 'team.member');
    const before = await this.d.repo.member(team.tenantId, team.id, userId);
    // A team admin cannot demote another team admin either.
    if (before?.role === 'admin' && role !== 'admin') await this.requireTenantAdmin(ctx, 'teams:write', team.id);
    await this.d.repo.upsertMember(team.tenantId, team.id, userId, role, 'manual', this.d.clock.now());
    await this.changed();
    await this.d.audit.record(ctx, { action: 'team.member.set', target: { type: 'team', id: team.id }, details: { user_id: userId, role, before: before?.role ?? null } });
  }

  async removeMember(ctx: RequestContext, teamId: string, userId: string): Promise<void> {
    const team = await this.visible(ctx, teamId, 'team:members:write');
    const before = await this.d.repo.member(team.tenantId, team.id, userId);
    if (!before) throw await hidden(this.d, ctx, 'user', userId, 'team.member');
    if (before.role === 'admin') await this.requireTenantAdmin(ctx, 'teams:write', team.id);
    await this.d.repo.removeMember(team.tenantId, team.id, userId);
    await this.changed();
    await this.d.audit.record(ctx, { action: 'team.member.remove', target: { type: 'team', id: team.id }, details: { user_id: userId, role: before.role } });
  }

  /**
   * Directory memberships (IdP group claims at login, SCIM groups): the user is a member of
   * exactly the teams whose `idp_group` is in `groups` among those the directory manages
   * (memberships added by hand are left alone). Returns whether anything changed.
   */
  async syncDirectory(tenantId: string, userId: string, groups: readonly string[], source: 'idp' | 'scim'): Promise<boolean> {
    const want = new Set((await this.d.repo.byIdpGroups(tenantId, groups)).map((t) => t.id));
    const have = await this.d.repo.teamsOfUser(tenantId, userId);
    const now = this.d.clock.now();
    let changed = false;
    for (const id of want) if (!have.some((h) => h.teamId === id) && (await this.d.repo.addDirectoryMember(tenantId, id, userId, source, now))) changed = true;
    for (const h of have) if (h.source === source && !want.has(h.teamId) && (await this.d.repo.removeMember(tenantId, h.teamId, userId, source)) > 0) changed = true;
    if (changed) {
      await this.changed();
      await this.d.audit.record(undefined, { action: 'team.member.sync', tenantId, actor: { type: 'system', id: source }, target: { type: 'user', id: userId }, details: { source, teams: [...want] } });
    }
    return changed;
  }

  // ---- keys ----------------------------------------------------------------------------------

  async keys(ctx: RequestContext, teamId: string) {
    const team = await this.visible(ctx, teamId, 'team:keys:read');
    const now = this.d.clock.now();
    return (await this.d.repo.keys(team.tenantId, team.id)).map((k) => ({
      object: 'api_key' as const,
      id: k.id,
      name: k.name,
      prefix: k.prefix,
      team_id: team.id,
      owner_user_id: k.ownerUserId,
      scopes: JSON.parse(k.scopes) as string[],
      status: k.revokedAt !== null ? 'revoked' : k.expiresAt !== null && k.expiresAt <= now ? 'expired' : 'active',
      created_at: k.createdAt,
      expires_at: k.expiresAt,
      last_used_at: k.lastUsedAt,
    }));
  }

  /** A key of the team (its calls count against the team), owned by the caller unless a tenant admin names no owner. */
  async createKey(ctx: RequestContext, teamId: string, input: { name: string; scopes?: string[]; expiresAt?: number | null; ownerless?: boolean }) {
    const team = await this.visible(ctx, teamId, 'team:keys:write');
    const ownerless = input.ownerless === true;
    if (ownerless) await this.requireTenantAdmin(ctx, 'teams:write', team.id);
    const r = await this.d.keys.create(ctx, {
      name: input.name,
      ...(ownerless ? { ownerUserId: null } : {}),
      ...(input.scopes ? { scopes: input.scopes } : {}),
      ...(input.expiresAt !== undefined ? { expiresAt: input.expiresAt } : {}),
      teamId: team.id,
    });
    await this.d.audit.record(ctx, { action: 'team.key.create', target: { type: 'team', id: team.id }, details: { key_id: r.key.id } });
    return r;
  }

  /** Revokes a key of the team. A team admin may revoke any key of their team (and no other). */
  async revokeKey(ctx: RequestContext, teamId: string, keyId: string): Promise<void> {
    const team = await this.visible(ctx, teamId, 'team:keys:write');
    const k = await this.d.repo.keyTeam(team.tenantId, keyId);
    if (!k || k.teamId !== team.id) throw await hidden(this.d, ctx, 'api_key', keyId, 'team.key.revoke');
    // The team role is the permission here (checked above for this key of this team): the key
    // service acts with a tenant admin's role for this one revocation; the audit names the caller.
    const p = ctx.principal!;
    const acting: RequestContext = p.kind === 'user' && !this.d.access.authorize(ctx, 'keys:write', { ownerUserId: '' }).allow ? { ...ctx, principal: { ...p, role: 'admin' } } : ctx;
    await this.d.keys.revoke(acting, keyId);
  }

  // ---- usage ---------------------------------------------------------------------------------

  /** The team's usage in [from, to): totals, by model, and what remains of its monthly limits. */
  async usage(ctx: RequestContext, teamId: string, from: number, to: number) {
    const team = await this.visible(ctx, teamId, 'team:usage:read');
    const byModel = await this.d.repo.report(team.tenantId, from, to, team.id);
    const used = await this.d.repo.usageSince(team.tenantId, team.id, from, to);
    const limits = parseLimits(team.limits);
    return {
      object: 'enclave.team_usage',
      team: { id: team.id, name: team.name },
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
      usage: { tokens: used.tokens, cost_micros: used.cost, requests: used.requests },
      limits: compactLimits(limits),
      remaining: {
        monthly_tokens: typeof limits.monthly_tokens === 'number' ? Math.max(0, limits.monthly_tokens - used.tokens) : null,
        monthly_cost_micros: typeof limits.monthly_cost_micros === 'number' ? Math.max(0, limits.monthly_cost_micros - used.cost) : null,
      },
      by_model: byModel.map((r) => ({ group: r.group, requests: r.requests, errors: r.errors, prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens, total_tokens: r.promptTokens + r.completionTokens, cost_micros: r.costMicros })),
    };
  }
}

/** The team of a call in a loaded snapshot (no allocation: it runs on every authenticated request). */
function pick(s: Snapshot, userId: string | undefined, keyTeamId: string | undefined): TeamGrant | undefined {
  const id = keyTeamId ?? (userId === undefined ? undefined : s.firstTeam.get(userId));
  return id === undefined ? undefined : s.teams.get(id);
}

function grantOf(r: TeamRow): TeamGrant {
  const limits = parseLimits(r.limits);
  const has = ADMISSION_LIMITS.some((n) => typeof limits[n] === 'number');
  const models = r.allowedModels ? (JSON.parse(r.allowedModels) as string[]) : null;
  return {
    id: r.id,
    name: r.name,
    allowedModels: models ? new Set(models) : null,
    ...(r.maxClassification ? { maxClassification: r.maxClassification as Classification } : {}),
    limits: has ? (limits as TeamGrant['limits']) : null,
  };
}

function teamDetails(r: TeamRow): Record<string, unknown> {
  return { name: r.name, allowed_models: r.allowedModels ? JSON.parse(r.allowedModels) : null, max_classification: r.maxClassification, limits: JSON.parse(r.limits), alert_thresholds: JSON.parse(r.alertThresholds), idp_group: r.idpGroup };
}

export function teamJson(r: TeamRow & { role?: TeamRole }) {
  return {
    object: 'team' as const,
    id: r.id,
    name: r.name,
    description: r.description,
    allowed_models: r.allowedModels ? (JSON.parse(r.allowedModels) as string[]) : null,
    max_classification: r.maxClassification,
    limits: compactLimits(parseLimits(r.limits)) as Limits,
    alert_thresholds: JSON.parse(r.alertThresholds) as number[],
    idp_group: r.idpGroup,
    created_at: r.createdAt,
    updated_at: r.updatedAt,
    ...(r.role ? { role: r.role } : {}),
  };
}
