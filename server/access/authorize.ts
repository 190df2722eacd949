import type { RequestContext } from '../context.js';
import { AppError } from '../errors.js';
import type { AuditLog } from '../audit/log.js';
import type { Entitlements } from './entitlements.js';
import {
  ACTION_FEATURES,
  isPlatformAction,
  ROLE_PERMISSIONS,
  SCOPE_ACTIONS,
  isScope,
  type Action,
  type Role,
  type TenantAction,
} from './permissions.js';
import type { Classification } from '../context.js';

/**
 * authorize(ctx, action, resource): the one decision point. It combines, in order:
 *   1. who is asking (no principal → unauthenticated);
 *   2. platform actions: the user's platform-admin flag (never a tenant role, never a key);
 *   3. the role's permissions in ctx.tenant (for keys: the owner's *current* role, so a
 *      key loses what its owner loses), with the `_own` variants for resources the
 *      principal owns;
 *   4. for API keys: the key's scopes, its model allow-list and its maximum classification;
 *   5. the tenant plan's capabilities (metering fills plans; until then everything is allowed);
 *   6. licence features (entitlements.hasFeature).
 * It returns allow, or deny with a stable reason code.
 */
export interface Resource {
  /** The user who owns the resource (keys, usage), for the `_own` permissions. */
  readonly ownerUserId?: string | null;
  /** The model a call uses (key model allow-list). */
  readonly model?: string;
  /** The data classification of a call (key maximum). */
  readonly classification?: Classification;
  /** The data boundary of a provider deployment being configured (plan: `public` needs cloud_providers). */
  readonly boundary?: 'local' | 'private' | 'public';
}

export type DenyReason =
  | 'unauthenticated'
  | 'platform_admin_required'
  | 'tenant_required'
  | 'not_a_member'
  | 'role_forbidden'
  | 'key_scope_missing'
  | 'key_model_not_allowed'
  | 'key_classification_exceeded'
  | 'team_model_not_allowed'
  | 'team_classification_exceeded'
  | 'plan_forbidden'
  | 'feature_unlicensed';

export type Decision = { readonly allow: true } | { readonly allow: false; readonly reason: DenyReason; readonly message: string };

/** Tenant plan capabilities; the metering issue provides the real one. */
export interface PlanCapabilities {
  /** undefined = allowed; otherwise a human reason. */
  check(ctx: RequestContext, action: Action, resource: Resource): string | undefined;
}
export const allowAllPlans: PlanCapabilities = { check: () => undefined };

const CLASS_ORDER: Record<Classification, number> = { public: 0, internal: 1, confidential: 2, restricted: 3 };

const ALLOW: Decision = { allow: true };
const deny = (reason: DenyReason, message: string): Decision => ({ allow: false, reason, message });

function ownVariant(action: TenantAction): TenantAction | undefined {
  const own = `${action}_own` as TenantAction;
  return (ROLE_PERMISSIONS.owner as ReadonlySet<string>).has(own) ? own : undefined;
}

/** Whether `role` permits `action` on `resource` for `userId` (direct, or through the `_own` variant). */
export function rolePermits(role: Role, action: TenantAction, userId: string | undefined, resource: Resource): boolean {
  const perms = ROLE_PERMISSIONS[role];
  const owns = userId !== undefined && resource.ownerUserId === userId;
  if (perms.has(action)) return action.endsWith('_own') ? owns : true;
  const own = ownVariant(action);
  return own !== undefined && perms.has(own) && owns;
}

function scopesPermit(scopes: readonly string[], action: TenantAction): boolean {
  const own = ownVariant(action);
  for (const s of scopes) {
    if (!isScope(s)) continue;
    const granted = SCOPE_ACTIONS[s];
    if (granted.includes(action) || (own !== undefined && granted.includes(own))) return true;
  }
  return false;
}

export function decide(
  ctx: RequestContext,
  action: Action,
  resource: Resource,
  deps: { entitlements: Entitlements; plans: PlanCapabilities },
): Decision {
  const p = ctx.principal;
  if (!p) return deny('unauthenticated', 'Authentication is required.');

  if (p.kind !== 'system') {
    if (isPlatformAction(action)) {
      if (p.kind !== 'user' || !p.platformAdmin) {
        return deny('platform_admin_required', `${action} needs a platform administrator.`);
      }
    } else {
      if (!ctx.tenant) return deny('tenant_required', `${action} needs an active tenant; switch to one first.`);
      const role: Role | undefined = p.kind === 'user' && p.platformAdmin ? 'owner' : p.role;
      if (!role) return deny('not_a_member', 'You are not a member of this tenant.');
      if (p.kind === 'api_key' && !scopesPermit(ctx.scopes, action)) {
        return deny('key_scope_missing', `This API key lacks a scope that grants ${action}.`);
      }
      if (!rolePermits(role, action, p.userId, resource)) {
        return deny('role_forbidden', `The ${role} role does not allow ${action}${p.kind === 'api_key' ? " (checked against the key owner's current role)" : ''}.`);
      }
      if (p.kind === 'api_key') {
        if (resource.model !== undefined && p.allowedModels && p.allowedModels.length > 0 && !p.allowedModels.includes(resource.model)) {
          return deny('key_model_not_allowed', `This API key may not use model ${resource.model}.`);
        }
        if (
          resource.classification !== undefined &&
          p.maxClassification !== undefined &&
          CLASS_ORDER[resource.classification] > CLASS_ORDER[p.maxClassification]
        ) {
          return deny('key_classification_exceeded', `This API key may send data up to ${p.maxClassification}, not ${resource.classification}.`);
        }
      }
      // The team the call counts against (server/teams): its models and classification ceiling, inside the tenant's.
      const team = p.team;
      if (team) {
        if (resource.model !== undefined && team.allowedModels && !team.allowedModels.has(resource.model)) {
          return deny('team_model_not_allowed', `The team ${team.name} may not use model ${resource.model}.`);
        }
        if (resource.classification !== undefined && team.maxClassification !== undefined && CLASS_ORDER[resource.classification] > CLASS_ORDER[team.maxClassification]) {
          return deny('team_classification_exceeded', `The team ${team.name} may send data up to ${team.maxClassification}, not ${resource.classification}.`);
        }
      }
    }
  }

  const planDenial = deps.plans.check(ctx, action, resource);
  if (planDenial) return deny('plan_forbidden', planDenial);
  const feature = ACTION_FEATURES[action];
  if (feature && !deps.entitlements.hasFeature(feature)) {
    return deny('feature_unlicensed', `The licence does not include ${feature}.`);
  }
  return ALLOW;
}

/** authorize() with its dependencies, plus require(): deny → audited 401/403. */
export class Access {
  constructor(
    private readonly deps: { entitlements: () => Entitlements; plans: () => PlanCapabilities; audit: AuditLog },
  ) {}

  authorize(ctx: RequestContext, action: Action, resource: Resource = {}): Decision {
    return decide(ctx, action, resource, { entitlements: this.deps.entitlements(), plans: this.deps.plans() });
  }

  /** Throws the refusal (and records it in the audit log) unless allowed. Await it: the refusal is the rejection. */
  async require(ctx: RequestContext, action: Action, resource: Resource = {}, target?: { type: string; id?: string | null }): Promise<void> {
    const d = this.authorize(ctx, action, resource);
    if (d.allow) return;
    await this.deps.audit.record(ctx, { action, outcome: 'denied', reason: d.reason, ...(target ? { target } : {}) });
    throw denialError(d);
  }
}

export function denialError(d: Extract<Decision, { allow: false }>): AppError {
  if (d.reason === 'unauthenticated') return new AppError(401, 'auth_required', d.message);
  return new AppError(403, d.reason, d.message);
}
