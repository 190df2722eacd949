import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import { AppError } from './errors.js';

export type Classification = 'public' | 'internal' | 'confidential' | 'restricted';

export interface TenantRef {
  readonly id: string;
  readonly slug: string;
}

export type TenantRole = 'owner' | 'admin' | 'member' | 'viewer';

/**
 * Who is asking. `id` is the user id (kind user), the key id (kind api_key) or a system
 * name (kind system, e.g. `cli`). Filled by server/identity/http.ts (authenticate).
 */
export interface Principal {
  readonly kind: 'user' | 'api_key' | 'system';
  readonly id: string;
  /** The user behind the request: the user itself, or the key's owner (undefined for ownerless keys). */
  readonly userId?: string;
  /** API keys: the key id (same as id). */
  readonly keyId?: string;
  /** Sessions: the session id (never the session token). */
  readonly sessionId?: string;
  /** The role in ctx.tenant: the user's membership, or for a key its owner's current role. */
  readonly role?: TenantRole;
  /** Platform administrator flag of the user (never set for API keys). */
  readonly platformAdmin?: boolean;
  /** API keys: models the key may use; empty = every model the tenant may use. */
  readonly allowedModels?: readonly string[];
  /** API keys: the highest data classification the key may send. */
  readonly maxClassification?: Classification;
  /** The team the call counts against (the key's team, else the user's first team): server/teams. */
  readonly team?: TeamGrant;
}

/** A team's rules for a call (issue 24): its models, classification ceiling and admission limits. */
export interface TeamGrant {
  readonly id: string;
  readonly name: string;
  /** null = every model the tenant may use. */
  readonly allowedModels: ReadonlySet<string> | null;
  readonly maxClassification?: Classification;
  /** The team level of admission (the plan's limit names); null = no limit. */
  readonly limits: Readonly<Partial<Record<'requests_per_minute' | 'tokens_per_minute' | 'concurrent_requests' | 'monthly_tokens' | 'monthly_cost_micros', number | null>>> | null;
}

/** The client of the request, for the audit log. */
export interface ClientInfo {
  readonly ip?: string;
  readonly userAgent?: string;
}

/**
 * Everything a service needs to know about who is asking, passed explicitly as the first
 * argument of every service operation (never read from globals). Authentication fills
 * tenant, principal and scopes; routing fills classification.
 */
export interface RequestContext {
  readonly requestId: string;
  readonly log: Logger;
  readonly clock: Clock;
  tenant?: TenantRef;
  principal?: Principal;
  scopes: readonly string[];
  classification?: Classification;
  /**
   * Set by Enclave itself (never from a header) when it raised the classification a call is
   * sent with above what the caller asked: retrieved knowledge (file_search, chat collections)
   * or a chat assistant. The call trace names it as the classification's source.
   */
  classificationRaised?: { readonly by: 'knowledge' | 'assistant'; readonly to: Classification };
  client?: ClientInfo;
}

export function createContext(init: {
  requestId: string;
  log: Logger;
  clock: Clock;
  tenant?: TenantRef;
  principal?: Principal;
  scopes?: readonly string[];
}): RequestContext {
  return { scopes: [], ...init };
}

/**
 * The tenant of a context, or a refusal. Tenant-owned data is only reachable through this,
 * so forgetting to authenticate a route fails closed instead of reading every tenant.
 */
export function requireTenant(ctx: RequestContext): TenantRef {
  if (!ctx.tenant) {
    throw new AppError(500, 'tenant_required', 'This operation needs a tenant, and the request context has none.');
  }
  return ctx.tenant;
}
