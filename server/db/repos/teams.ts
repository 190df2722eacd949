import { and, asc, count, eq, gte, inArray, isNull, lt, or, gt, sql } from 'drizzle-orm';
import { isUniqueViolation, type Store } from '../store.js';

/** A team of that name exists in the tenant (the unique index), on either dialect. */
export class TeamNameTaken extends Error {
  override readonly name = 'TeamNameTaken';
}

/**
 * Teams inside a tenant (issue 24), over the Store (either dialect). Every query names the
 * tenant: callers pass the tenant of the request context, so a team id of another tenant
 * matches nothing. Lives in server/db because teams are tenant-owned tables
 * (test/integration/tenant-scope.test.ts); the service is server/teams.
 */
export interface TeamRow {
  id: string;
  tenantId: string;
  name: string;
  description: string;
  allowedModels: string | null;
  maxClassification: 'public' | 'internal' | 'confidential' | 'restricted' | null;
  limits: string;
  alertThresholds: string;
  idpGroup: string | null;
  createdAt: number;
  updatedAt: number;
}
export type TeamRole = 'admin' | 'member';
export type MemberSource = 'manual' | 'idp' | 'scim';
export interface TeamMemberRow {
  teamId: string;
  userId: string;
  role: TeamRole;
  source: MemberSource;
  createdAt: number;
  email: string;
  name: string | null;
}
export interface TeamUsage {
  tokens: number;
  cost: number;
  requests: number;
}
export interface TeamReportRow {
  group: string;
  requests: number;
  errors: number;
  promptTokens: number;
  completionTokens: number;
  costMicros: number;
}

export class TeamsRepo {
  constructor(private readonly store: Store) {}

  list(tenantId: string): Promise<TeamRow[]> {
    const { q, t } = this.store;
    return this.store.all(q.select().from(t.teams).where(eq(t.teams.tenantId, tenantId)).orderBy(asc(t.teams.name)));
  }
  get(tenantId: string, id: string): Promise<TeamRow | undefined> {
    const { q, t } = this.store;
    return this.store.one(q.select().from(t.teams).where(and(eq(t.teams.tenantId, tenantId), eq(t.teams.id, id))));
  }
  // try/await, not .catch(): the SQLite store may throw before it returns a promise.
  async insert(row: TeamRow): Promise<void> {
    const { q, t } = this.store;
    try {
      await this.store.run(q.insert(t.teams).values(row));
    } catch (e) {
      nameTaken(e);
    }
  }
  async update(tenantId: string, id: string, patch: Partial<Omit<TeamRow, 'id' | 'tenantId' | 'createdAt'>>): Promise<number> {
    const { q, t } = this.store;
    try {
      return await this.store.run(q.update(t.teams).set(patch).where(and(eq(t.teams.tenantId, tenantId), eq(t.teams.id, id))));
    } catch (e) {
      nameTaken(e);
    }
  }
  remove(tenantId: string, id: string): Promise<number> {
    const { q, t } = this.store;
    return this.store.run(q.delete(t.teams).where(and(eq(t.teams.tenantId, tenantId), eq(t.teams.id, id))));
  }
  /** Teams whose IdP group is one of `groups`, without regard to case (SSO login, SCIM groups). */
  byIdpGroups(tenantId: string, groups: readonly string[]): Promise<TeamRow[]> {
    if (!groups.length) return Promise.resolve([]);
    const { q, t } = this.store;
    const names = [...new Set(groups.map((g) => g.toLowerCase()))];
    return this.store.all(q.select().from(t.teams).where(and(eq(t.teams.tenantId, tenantId), inArray(sql`lower(${t.teams.idpGroup})`, names))));
  }

  // ---- members ----
  members(tenantId: string, teamId: string): Promise<TeamMemberRow[]> {
    const { q, t } = this.store;
    const m = t.teamMembers;
    return this.store.all(
      q
        .select({ teamId: m.teamId, userId: m.userId, role: m.role, source: m.source, createdAt: m.createdAt, email: t.users.email, name: t.users.name })
        .from(m)
        .innerJoin(t.users, eq(t.users.id, m.userId))
        .where(and(eq(m.tenantId, tenantId), eq(m.teamId, teamId)))
        .orderBy(asc(t.users.email)),
    );
  }
  /** Every membership of the tenant, oldest first (the team cache of server/teams). */
  allMembers(tenantId: string): Promise<{ teamId: string; userId: string }[]> {
    const { q, t } = this.store;
    const m = t.teamMembers;
    return this.store.all(q.select({ teamId: m.teamId, userId: m.userId }).from(m).where(eq(m.tenantId, tenantId)).orderBy(asc(m.createdAt), asc(m.teamId)));
  }
  member(tenantId: string, teamId: string, userId: string): Promise<{ role: TeamRole; source: MemberSource } | undefined> {
    const { q, t } = this.store;
    const m = t.teamMembers;
    return this.store.one(q.select({ role: m.role, source: m.source }).from(m).where(and(eq(m.tenantId, tenantId), eq(m.teamId, teamId), eq(m.userId, userId))));
  }
  /** The user's teams in the tenant, oldest membership first (the first is the team of their calls without a team key). */
  teamsOfUser(tenantId: string, userId: string): Promise<{ teamId: string; role: TeamRole; source: MemberSource }[]> {
    const { q, t } = this.store;
    const m = t.teamMembers;
    return this.store.all(
      q
        .select({ teamId: m.teamId, role: m.role, source: m.source })
        .from(m)
        .where(and(eq(m.tenantId, tenantId), eq(m.userId, userId)))
        .orderBy(asc(m.createdAt), asc(m.teamId)),
    );
  }
  async upsertMember(tenantId: string, teamId: string, userId: string, role: TeamRole, source: MemberSource, now: number): Promise<void> {
    const { q, t } = this.store;
    const m = t.teamMembers;
    await this.store.run(q.insert(m).values({ tenantId, teamId, userId, role, source, createdAt: now }).onConflictDoUpdate({ target: [m.teamId, m.userId], set: { role, source } }));
  }
  /** Adds a membership from the directory unless one exists (a manual one keeps its role and source). */
  async addDirectoryMember(tenantId: string, teamId: string, userId: string, source: 'idp' | 'scim', now: number): Promise<boolean> {
    const { q, t } = this.store;
    return (await this.store.run(q.insert(t.teamMembers).values({ tenantId, teamId, userId, role: 'member', source, createdAt: now }).onConflictDoNothing())) > 0;
  }
  removeMember(tenantId: string, teamId: string, userId: string, source?: MemberSource): Promise<number> {
    const { q, t } = this.store;
    const m = t.teamMembers;
    return this.store.run(q.delete(m).where(and(eq(m.tenantId, tenantId), eq(m.teamId, teamId), eq(m.userId, userId), source ? eq(m.source, source) : undefined)));
  }
  /** Whether the user is a tenant member (a team holds only members of its tenant). */
  async isTenantMember(tenantId: string, userId: string): Promise<boolean> {
    const { q, t } = this.store;
    return (await this.store.one(q.select({ n: count() }).from(t.memberships).where(and(eq(t.memberships.tenantId, tenantId), eq(t.memberships.userId, userId)))))!.n > 0;
  }

  // ---- keys ----
  /** The team's API keys (ids and display fields; never hashes). */
  keys(tenantId: string, teamId: string) {
    const { q, t } = this.store;
    const k = t.apiKeys;
    return this.store.all(
      q
        .select({ id: k.id, name: k.name, prefix: k.prefix, ownerUserId: k.ownerUserId, scopes: k.scopes, createdAt: k.createdAt, expiresAt: k.expiresAt, revokedAt: k.revokedAt, lastUsedAt: k.lastUsedAt })
        .from(k)
        .where(and(eq(k.tenantId, tenantId), eq(k.teamId, teamId)))
        .orderBy(asc(k.createdAt)),
    );
  }
  keyTeam(tenantId: string, keyId: string): Promise<{ teamId: string | null } | undefined> {
    const { q, t } = this.store;
    return this.store.one(q.select({ teamId: t.apiKeys.teamId }).from(t.apiKeys).where(and(eq(t.apiKeys.tenantId, tenantId), eq(t.apiKeys.id, keyId))));
  }
  async setKeyTeam(tenantId: string, keyId: string, teamId: string): Promise<number> {
    const { q, t } = this.store;
    return this.store.run(q.update(t.apiKeys).set({ teamId }).where(and(eq(t.apiKeys.tenantId, tenantId), eq(t.apiKeys.id, keyId))));
  }
  async activeKeys(tenantId: string, teamId: string, now: number): Promise<number> {
    const { q, t } = this.store;
    const k = t.apiKeys;
    return (await this.store.one(q.select({ n: count() }).from(k).where(and(eq(k.tenantId, tenantId), eq(k.teamId, teamId), isNull(k.revokedAt), or(isNull(k.expiresAt), gt(k.expiresAt, now))))))!.n;
  }

  // ---- usage (usage_team_rollups, kept when raw records are purged) ----
  async usageSince(tenantId: string, teamId: string, from: number, to: number): Promise<TeamUsage> {
    const { q, t } = this.store;
    const r = t.usageTeamRollups;
    const row = await this.store.one(
      q
        .select({
          tokens: sql<number>`COALESCE(SUM(${r.promptTokens} + ${r.completionTokens}), 0)`.mapWith(Number),
          cost: sql<number>`COALESCE(SUM(${r.costMicros}), 0)`.mapWith(Number),
          requests: sql<number>`COALESCE(SUM(${r.requests}), 0)`.mapWith(Number),
        })
        .from(r)
        .where(and(eq(r.tenantId, tenantId), eq(r.teamId, teamId), gte(r.hour, from), lt(r.hour, to))),
    );
    return row ?? { tokens: 0, cost: 0, requests: 0 };
  }
  /** Usage in [from, to) grouped by team (or, with `teamId`, that team's usage by model). */
  report(tenantId: string, from: number, to: number, teamId?: string): Promise<TeamReportRow[]> {
    const { q, t } = this.store;
    const r = t.usageTeamRollups;
    const group = teamId ? r.model : r.teamId;
    return this.store.all(
      q
        .select({
          group: group,
          requests: sql<number>`SUM(${r.requests})`.mapWith(Number),
          errors: sql<number>`SUM(${r.errors})`.mapWith(Number),
          promptTokens: sql<number>`SUM(${r.promptTokens})`.mapWith(Number),
          completionTokens: sql<number>`SUM(${r.completionTokens})`.mapWith(Number),
          costMicros: sql<number>`SUM(${r.costMicros})`.mapWith(Number),
        })
        .from(r)
        .where(and(eq(r.tenantId, tenantId), gte(r.hour, from), lt(r.hour, to), teamId ? eq(r.teamId, teamId) : undefined))
        .groupBy(group)
        .orderBy(asc(group)),
    );
  }
}

function nameTaken(e: unknown): never {
  throw isUniqueViolation(e) ? new TeamNameTaken() : e;
}
