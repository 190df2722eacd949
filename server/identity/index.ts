import type { Logger } from 'pino';
import { Access, allowAllPlans, type PlanCapabilities } from '../access/authorize.js';
import { unrestricted, type Entitlements } from '../access/entitlements.js';
import { AuditLog } from '../audit/log.js';
import type { Clock } from '../clock.js';
import type { TeamGrant } from '../context.js';
import { createContext, type RequestContext } from '../context.js';
import { AuthorityRepo } from '../db/repos/authority.js';
import { IdentityRepo } from '../db/repos/identity.js';
import type { Store } from '../db/store.js';
import type { TenantStore } from '../db/tenant-store.js';
import { KeyService } from '../keys/service.js';
import type { Metrics } from '../metrics/registry.js';
import type { IdentityDeps } from './deps.js';
import { DomainService } from './domains.js';
import { InvitationService } from './invitations.js';
import { ProvisioningService } from './provisioning.js';
import { DEFAULT_LOG_N } from './passwords.js';
import { Revision } from './revision.js';
import { SessionService } from './sessions.js';
import { TenantService } from './tenants.js';
import { UserService } from './users.js';

/**
 * The identity and access services over one database: tenants, users and memberships,
 * sessions, API keys, authorize() and the audit log. Built by createServices (server) and
 * by the CLI (which works on the database directly); both get the same code paths.
 */
export interface Identity {
  readonly access: Access;
  readonly audit: AuditLog;
  readonly tenants: TenantService;
  readonly users: UserService;
  /** Consent before membership (issue 16). */
  readonly invitations: InvitationService;
  /** E-mail domains a platform admin verified for a tenant (issue 16). */
  readonly domains: DomainService;
  /** A tenant directory's (SCIM) suspend/restore of an account's membership (issue 24). */
  readonly provisioning: ProvisioningService;
  readonly sessions: SessionService;
  readonly keys: KeyService;
  readonly revision: Revision;
  /** The team a call counts against (server/teams sets it at start; authentication adds it to the principal). */
  teamOf?: (tenantId: string, userId: string | undefined, keyTeamId: string | undefined) => TeamGrant | undefined | Promise<TeamGrant | undefined>;
  /** Directory group names → team memberships (server/teams; SSO logins pass `idp`, SCIM `scim`). */
  teamDirectory?: (tenantId: string, userId: string, groups: readonly string[], source: 'idp' | 'scim') => Promise<boolean>;
  /** Starts the revision poll and the last-used flush (servers; the CLI does not). */
  start(): void;
  /** Stops the poll and writes the last gathered key use times. */
  stop(): Promise<void>;
}

export interface IdentityOptions {
  /** The async data layer (issue 22). */
  readonly store: Store;
  readonly tenantStore: TenantStore;
  readonly clock: Clock;
  readonly log: Logger;
  /** A getter, so the licence module can swap the implementation after start. */
  readonly entitlements?: () => Entitlements;
  readonly plans?: () => PlanCapabilities;
  readonly passwordLogN?: number;
  readonly sessionIdleMs?: number;
  readonly sessionMaxMs?: number;
  /** How often other processes' changes are picked up (default 200 ms). */
  readonly revisionPollMs?: number;
  /** The process registry: audit events, local sign-ins, active sessions (servers; the CLI has none). */
  readonly metrics?: Metrics;
}

export function createIdentity(o: IdentityOptions): Identity {
  const audit = new AuditLog(o.store, o.clock, o.metrics);
  const entitlements = o.entitlements ?? (() => unrestricted);
  const access = new Access({ entitlements, plans: o.plans ?? (() => allowAllPlans), audit });
  const revision = new Revision(o.store);
  const deps: IdentityDeps = {
    store: o.store,
    repo: new IdentityRepo(o.store, o.tenantStore),
    authority: new AuthorityRepo(o.store, o.tenantStore),
    clock: o.clock,
    log: o.log,
    access,
    audit,
    revision,
    entitlements,
    passwordLogN: o.passwordLogN ?? DEFAULT_LOG_N,
    ...(o.metrics ? { metrics: o.metrics } : {}),
  };
  const keys = new KeyService(deps);
  const sessions = new SessionService(deps, { idleMs: o.sessionIdleMs ?? 60 * 60_000, maxMs: o.sessionMaxMs ?? 12 * 3600_000 });
  o.metrics?.trackSessions(() => sessions.activeCount());
  const users = new UserService(deps);
  users.currentPasswordCheck = (ctx, user, password) => sessions.checkCurrentPassword(ctx, user, password);
  return {
    access,
    audit,
    tenants: new TenantService(deps),
    users,
    invitations: new InvitationService(deps, users),
    domains: new DomainService(deps),
    provisioning: new ProvisioningService(deps),
    sessions,
    keys,
    revision,
    start: () => {
      revision.start(o.revisionPollMs ?? 200);
      keys.start();
    },
    stop: async () => {
      revision.stop();
      await keys.stop();
    },
  };
}

/** A context for work done by Enclave itself or the CLI (`system:<name>`), with platform rights. */
export function systemContext(log: Logger, clock: Clock, name: string, requestId = `sys_${name}`): RequestContext {
  return createContext({ requestId, log, clock, principal: { kind: 'system', id: name, platformAdmin: true } });
}

/**
 * First start: with ENCLAVE_ADMIN_EMAIL and ENCLAVE_ADMIN_PASSWORD set and no platform
 * administrator yet, create one. Returns the new user's id, or undefined.
 */
export async function ensureFirstAdmin(identity: Identity, ctx: RequestContext, email?: string, password?: string): Promise<string | undefined> {
  if (!email || !password) return undefined;
  if ((await identity.users.countPlatformAdmins()) > 0) return undefined;
  const existing = await identity.users.byEmail(email);
  if (existing) return undefined;
  const u = await identity.users.create(ctx, { email, password, platformAdmin: true, name: 'Administrator' });
  return u.id;
}
