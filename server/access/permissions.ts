/**
 * The permission matrix: which tenant role may do which action, which API key scope
 * grants which actions, and the platform-only actions. docs/access.md shows the same
 * matrix; test/unit/access-matrix.test.ts checks every cell of the document against this
 * file and against authorize().
 */
export const ROLES = ['owner', 'admin', 'member', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

/** Actions inside a tenant. */
export const TENANT_ACTIONS = [
  'tenant:read',
  'tenant:update',
  'members:read',
  'members:write',
  'members:grant_owner',
  'keys:read',
  'keys:write',
  'keys:read_own',
  'keys:write_own',
  'audit:read',
  'audit:export',
  'settings:read',
  'settings:write',
  'models:list',
  'models:invoke',
  'embeddings:create',
  'batches:write',
  'usage:read_own',
  'usage:read',
  'providers:read',
  'providers:write',
  'content:read',
  'teams:read',
  'teams:write',
  // Knowledge (issue 20): files for retrieval, vector stores and their search.
  'files:write',
  'knowledge:read',
  'knowledge:write',
] as const;
export type TenantAction = (typeof TENANT_ACTIONS)[number];

/** Actions over the whole platform: platform administrators only (a user flag, not a role). */
export const PLATFORM_ACTIONS = [
  'platform:tenants:read',
  'platform:tenants:create',
  'platform:tenants:suspend',
  'platform:tenants:plan',
  'platform:users:read',
  'platform:users:write',
  'platform:audit:read',
  'platform:jobs:read',
  'platform:jobs:write',
] as const;
export type PlatformAction = (typeof PLATFORM_ACTIONS)[number];

export type Action = TenantAction | PlatformAction;

const ALL_TENANT: readonly TenantAction[] = TENANT_ACTIONS;

export const ROLE_PERMISSIONS: Readonly<Record<Role, ReadonlySet<TenantAction>>> = {
  owner: new Set(ALL_TENANT),
  admin: new Set(ALL_TENANT.filter((a) => a !== 'members:grant_owner')),
  member: new Set<TenantAction>([
    'tenant:read',
    'keys:read_own',
    'keys:write_own',
    'models:list',
    'models:invoke',
    'embeddings:create',
    'batches:write',
    'usage:read_own',
    'files:write',
    'knowledge:read',
    'knowledge:write',
  ]),
  viewer: new Set<TenantAction>(['tenant:read', 'models:list', 'usage:read_own', 'knowledge:read']),
};

/**
 * Team roles (issue 24): a tenant member may be a team's `admin` (team admin) or `member`.
 * A team role acts on that team only; tenant owners and admins (`teams:write`) hold every
 * team action on every team of their tenant. docs/access.md shows this matrix too.
 */
export const TEAM_ROLES = ['admin', 'member'] as const;
export type TeamRole = (typeof TEAM_ROLES)[number];
export const TEAM_ACTIONS = ['team:read', 'team:members:write', 'team:keys:read', 'team:keys:write', 'team:usage:read', 'team:settings:write'] as const;
export type TeamAction = (typeof TEAM_ACTIONS)[number];
export const TEAM_ROLE_PERMISSIONS: Readonly<Record<TeamRole, ReadonlySet<TeamAction>>> = {
  // Budgets, models and the ceiling are the tenant's to set: a team admin cannot raise their own.
  admin: new Set<TeamAction>(['team:read', 'team:members:write', 'team:keys:read', 'team:keys:write', 'team:usage:read']),
  member: new Set<TeamAction>(['team:read']),
};

/** Whether a principal with tenant role `tenantRole` and team role `teamRole` (in that team) may do `action` there. */
export function teamPermits(tenantRole: Role | undefined, teamRole: TeamRole | undefined, action: TeamAction): boolean {
  if (tenantRole && ROLE_PERMISSIONS[tenantRole].has(action === 'team:read' || action === 'team:keys:read' || action === 'team:usage:read' ? 'teams:read' : 'teams:write')) return true;
  return teamRole !== undefined && TEAM_ROLE_PERMISSIONS[teamRole].has(action);
}

/** API key scopes and the actions each one grants (the key's owner must also hold them). */
export const SCOPES = [
  'models:invoke',
  'models:list',
  'embeddings:create',
  'batches:write',
  'usage:read',
  'admin:read',
  'admin:write',
  'content:read',
  'files:write',
  'knowledge:read',
  'knowledge:write',
] as const;
export type Scope = (typeof SCOPES)[number];

export const SCOPE_ACTIONS: Readonly<Record<Scope, readonly TenantAction[]>> = {
  'models:invoke': ['models:invoke'],
  'models:list': ['models:list'],
  'embeddings:create': ['embeddings:create'],
  'batches:write': ['batches:write'],
  'usage:read': ['usage:read_own', 'usage:read'],
  // Stored prompts and completions: a scope of its own, so no admin:* key reads them unasked.
  'content:read': ['content:read'],
  'files:write': ['files:write'],
  'knowledge:read': ['knowledge:read'],
  'knowledge:write': ['knowledge:read', 'knowledge:write'],
  'admin:read': ['tenant:read', 'members:read', 'keys:read', 'keys:read_own', 'audit:read', 'audit:export', 'settings:read', 'providers:read', 'teams:read'],
  'admin:write': [
    'tenant:read',
    'tenant:update',
    'members:read',
    'members:write',
    'keys:read',
    'keys:read_own',
    'keys:write',
    'keys:write_own',
    'settings:read',
    'settings:write',
    'providers:read',
    'providers:write',
    'teams:read',
    'teams:write',
  ],
};

export const DEFAULT_KEY_SCOPES: readonly Scope[] = ['models:invoke', 'models:list', 'embeddings:create'];

/**
 * The role a key without an owner user (created by the CLI or a platform admin for a
 * service) is checked against: admin, never owner.
 */
export const OWNERLESS_KEY_ROLE: Role = 'admin';

/**
 * Actions that need a licence feature (entitlements.hasFeature). Everything else is part
 * of the base product. The licence module defines the feature names.
 */
export const ACTION_FEATURES: Partial<Record<Action, string>> = {
  'audit:export': 'audit.export',
};

export function isRole(v: unknown): v is Role {
  return typeof v === 'string' && (ROLES as readonly string[]).includes(v);
}
export function isScope(v: unknown): v is Scope {
  return typeof v === 'string' && (SCOPES as readonly string[]).includes(v);
}
export function isPlatformAction(a: Action): a is PlatformAction {
  return a.startsWith('platform:');
}

/** Whether `role` may perform every action `scope` grants (used at key creation). */
export function roleCoversScope(role: Role, scope: Scope): boolean {
  // A scope is within a role when the role holds each action it grants, or the "own"
  // variant of it (a member's admin:* key would still act only on the member's own keys,
  // but we keep the rule simple and strict: admin scopes need the tenant-wide action).
  return SCOPE_ACTIONS[scope].every((a) => ROLE_PERMISSIONS[role].has(a) || a.endsWith('_own'));
}
