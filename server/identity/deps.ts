import type { Logger } from 'pino';
import type { Access } from '../access/authorize.js';
import type { Entitlements } from '../access/entitlements.js';
import type { AuditLog } from '../audit/log.js';
import type { Clock } from '../clock.js';
import type { RequestContext } from '../context.js';
import type { Store } from '../db/store.js';
import type { AuthorityRepo } from '../db/repos/authority.js';
import type { IdentityRepo } from '../db/repos/identity.js';
import type { Metrics } from '../metrics/registry.js';
import { AppError } from '../errors.js';
import type { Revision } from './revision.js';

/** What the identity services share (built by createIdentity). */
export interface IdentityDeps {
  /** The async data layer (issue 22); repositories below run on it. */
  readonly store: Store;
  readonly repo: IdentityRepo;
  /** Invitations and verified domains (issue 16). */
  readonly authority: AuthorityRepo;
  readonly clock: Clock;
  readonly log: Logger;
  readonly access: Access;
  readonly audit: AuditLog;
  readonly revision: Revision;
  readonly entitlements: () => Entitlements;
  readonly passwordLogN: number;
  /** The process registry (servers); the CLI has none. */
  readonly metrics?: Metrics;
}

/**
 * A resource that is not visible to the principal: 404 (never 403, so other tenants'
 * ids reveal nothing), and the attempt goes to the audit log. `throw await hidden(…)`.
 */
export async function hidden(deps: Pick<IdentityDeps, 'audit'>, ctx: RequestContext, type: string, id: string, action: string): Promise<AppError> {
  await deps.audit.record(ctx, { action, outcome: 'denied', reason: 'not_found', target: { type, id } });
  return new AppError(404, 'not_found', `${type[0]!.toUpperCase()}${type.slice(1).replace(/_/g, ' ')} not found`);
}

export function isPlatform(ctx: RequestContext): boolean {
  const p = ctx.principal;
  return p?.kind === 'system' || (p?.kind === 'user' && p.platformAdmin === true);
}

/** A page of results plus the cursor of the next page. */
export interface Page<T> {
  readonly data: T[];
  readonly next_cursor: string | null;
}

export function page<T, R>(rows: T[], limit: number, cursorOf: (r: T) => string, map: (r: T) => R): Page<R> {
  const more = rows.length > limit;
  const items = more ? rows.slice(0, limit) : rows;
  return { data: items.map(map), next_cursor: more ? cursorOf(items.at(-1)!) : null };
}
