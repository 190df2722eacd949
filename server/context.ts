import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import { AppError } from './errors.js';

export type Classification = 'public' | 'internal' | 'confidential' | 'restricted';

export interface TenantRef {
  readonly id: string;
  readonly slug: string;
}

export interface Principal {
  readonly kind: 'user' | 'api_key' | 'system';
  readonly id: string;
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
