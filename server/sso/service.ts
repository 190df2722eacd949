import { parseInput } from '../http/parse-input.js';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import * as jose from 'jose';
import * as client from 'openid-client';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Entitlements } from '../access/entitlements.js';
import { isRole, type Role } from '../access/permissions.js';
import type { Clock } from '../clock.js';
import type { RuntimeSettings } from '../config/runtime-settings.js';
import type { SecretBox } from '../config/secret-box.js';
import type { Config } from '../config/settings.js';
import type { RequestContext } from '../context.js';
import type { Store } from '../db/store.js';
import { ScimRepo } from '../db/repos/scim.js';
import { SsoRepo, type SsoIdpRow } from '../db/repos/sso.js';
import { secretAad } from '../db/secret-columns.js';
import type { TenantStore } from '../db/tenant-store.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import { isPlatform } from '../identity/deps.js';
import type { Identity } from '../identity/index.js';
import { systemContext } from '../identity/index.js';
import type { UserRow } from '../identity/users.js';
import type { Metrics } from '../metrics/registry.js';
import {
  domainAllowed,
  issuerProblem,
  mappedValues,
  platformGrants,
  platformRule,
  claimPath,
  CLAIM_SOURCES,
  tenantRole,
  tenantRule,
  type ClaimSource,
  type MappedValues,
  type PlatformRule,
  type TenantRule,
} from './mapping.js';
import { assertionRefusal, emailLinkAllowed } from './authority.js';
import { classifyOidcError, CLOCK_TOLERANCE_S, OidcClients, SsoError, type IdpEndpoint } from './oidc.js';
import { idpParts, parseSettings, samlIdpPatch, samlView, type SamlIdpInput, type SamlIdpPatch, type SamlSettings } from './saml/settings.js';

/** Paths on the public URL (the bundled realm registers these: installer/realm.ts OIDC_PATHS). */
export const OIDC_PATHS = { callback: '/auth/oidc/callback', backchannelLogout: '/auth/oidc/backchannel-logout', postLogout: '/' } as const;
export const PLATFORM_REF = 'platform';
export const TX_COOKIE = 'enclave_oidc_tx';
export const TX_TTL_S = 600;
const PLATFORM_SETTINGS_KEY = 'sso.platform';
const PLATFORM_CLAIMS_KEY = 'sso.platform.last_claims';
const BCL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

export interface SsoDeps {
  readonly config: Config;
  readonly log: Logger;
  readonly clock: Clock;
  readonly store: Store;
  readonly tenantStore: TenantStore;
  readonly secrets: SecretBox;
  readonly settings: RuntimeSettings;
  /** Login transactions and the logout-token jti cache; absent in the CLI (no logins there). */
  readonly redis: Redis | undefined;
  readonly metrics: Metrics;
  readonly identity: Identity;
  readonly entitlements: () => Entitlements;
}

/** An IdP ready to use: the platform IdP (bootstrap settings) or a tenant IdP (database). */
export interface ResolvedIdp {
  readonly ref: string;
  readonly kind: 'platform' | 'tenant';
  readonly tenant: { id: string; slug: string; status: 'active' | 'suspended' } | null;
  readonly name: string;
  readonly endpoint: IdpEndpoint;
  readonly scopes: string;
  readonly claimSource: ClaimSource;
  readonly rolesPath: string | null;
  readonly groupsPath: string | null;
  readonly tenantRules: TenantRule[];
  readonly platformRules: PlatformRule[];
  readonly defaultRole: Role | null;
  readonly allowedDomains: string[];
  readonly jit: boolean;
  readonly enabled: boolean;
  /** `saml` IdPs log in through server/sso/saml (the endpoint's issuer is the IdP entity id). */
  readonly protocol: 'oidc' | 'saml';
  readonly saml: SamlSettings | null;
}

/** The platform IdP's admin-editable part (runtime setting `sso.platform`, platform admins only). */
export const platformSettingsSchema = z
  .object({
    claim_source: z.enum(CLAIM_SOURCES),
    roles_path: claimPath.nullable(),
    groups_path: claimPath.nullable(),
    rules: z.array(platformRule).max(200),
    allowed_domains: z.array(z.string().min(1).max(253)).max(100),
    jit: z.boolean(),
  })
  .strict();
export type PlatformSettings = z.infer<typeof platformSettingsSchema>;

export const idpInput = z
  .object({
    name: z.string().trim().min(1).max(100),
    issuer: z.string().trim().url().max(500),
    client_id: z.string().trim().min(1).max(300),
    client_secret: z.string().min(1).max(2000),
    scopes: z.string().trim().min(1).max(500).optional(),
    claim_source: z.enum(CLAIM_SOURCES).optional(),
    roles_path: claimPath.nullable().optional(),
    groups_path: claimPath.nullable().optional(),
    mapping: z.array(tenantRule).max(200).optional(),
    default_role: z.enum(['owner', 'admin', 'member', 'viewer']).nullable().optional(),
    allowed_domains: z.array(z.string().trim().toLowerCase().min(1).max(253)).max(100).optional(),
    jit: z.boolean().optional(),
    enforce_sso: z.boolean().optional(),
    enabled: z.boolean().optional(),
  })
  .strict();
export type IdpInput = z.infer<typeof idpInput>;
export const idpPatch = idpInput.partial().strict();

/** Values of the mapped claims and the names of the claims received (never tokens, never other values). */
export interface LastClaims {
  readonly at: number;
  readonly source: ClaimSource;
  readonly roles_path: string | null;
  readonly groups_path: string | null;
  readonly roles: string[];
  readonly groups: string[];
  readonly claim_names: string[];
  readonly email_verified: boolean | null;
}

/** Where a browser starts a login with this IdP. */
export function loginPath(r: Pick<SsoIdpRow, 'id' | 'protocol'>): string {
  return r.protocol === 'saml' ? `/auth/saml/${r.id}/login` : `/auth/oidc/${r.id}/login`;
}

export function serializeIdp(r: SsoIdpRow) {
  return {
    object: 'sso_idp' as const,
    id: r.id,
    tenant_id: r.tenantId,
    name: r.name,
    issuer: r.issuer,
    client_id: r.clientId,
    has_client_secret: true,
    scopes: r.scopes,
    claim_source: r.claimSource,
    roles_path: r.rolesPath,
    groups_path: r.groupsPath,
    mapping: JSON.parse(r.mapping) as TenantRule[],
    default_role: r.defaultRole,
    allowed_domains: JSON.parse(r.allowedDomains) as string[],
    jit: r.jit,
    enforce_sso: r.enforceSso,
    enabled: r.enabled,
    login_path: loginPath(r),
    protocol: r.protocol,
    saml: r.protocol === 'saml' ? samlView(r) : null,
    created_at: r.createdAt,
    updated_at: r.updatedAt,
  };
}

interface Transaction {
  readonly idpRef: string;
  readonly issuer: string;
  readonly state: string;
  readonly nonce: string;
  readonly verifier: string;
  readonly redirectUri: string;
  readonly returnTo: string;
  /** Linking: the signed-in account holder who asked to link this IdP identity to their account. */
  readonly linkUserId?: string;
  /** Accepting an invitation (of the IdP's tenant) through the IdP. */
  readonly invitationId?: string;
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

function claimNames(obj: Record<string, unknown>, prefix = '', depth = 0, out: string[] = []): string[] {
  for (const [k, v] of Object.entries(obj)) {
    if (out.length >= 100) break;
    const name = prefix ? `${prefix}.${k}` : k;
    out.push(name);
    if (v && typeof v === 'object' && !Array.isArray(v) && depth < 3) claimNames(v as Record<string, unknown>, name, depth + 1, out);
  }
  return out;
}

export class SsoService {
  readonly repo: SsoRepo;
  readonly clients: OidcClients;
  private platformSecret: string | undefined;

  private get redis(): Redis {
    if (!this.d.redis) throw new AppError(503, 'redis_unavailable', 'SSO logins need Redis.');
    return this.d.redis;
  }

  constructor(private readonly d: SsoDeps) {
    if (d.config.oidcIssuer) {
      const problem = issuerProblem(d.config.oidcIssuer, d.config.oidcAllowLoopbackHttp);
      if (problem) throw new AppError(500, 'invalid_oidc_issuer', `ENCLAVE_OIDC_ISSUER: ${problem} (got ${d.config.oidcIssuer})`);
    }
    this.repo = new SsoRepo(d.store, d.tenantStore);
    this.clients = new OidcClients({ allowLoopbackHttp: d.config.oidcAllowLoopbackHttp, now: () => d.clock.now() });
    // Enforce SSO applies to the enforcing tenant's membership only (issue 16): a session
    // acts there only if it came through one of that tenant's IdPs. Password login to other
    // tenants is unaffected, and platform administrators keep the local break-glass login
    // (SessionService never asks for them).
    d.identity.sessions.tenantGuard = async (_user, tenantId, sessionId) => {
      if (!(await this.repo.enforcingTenants()).has(tenantId)) return undefined;
      const link = sessionId ? await this.repo.session(sessionId) : undefined;
      if (link && link.idpRef !== PLATFORM_REF && (await this.repo.idpTenant(link.idpRef))?.id === tenantId) return undefined;
      return 'sso_required';
    };
  }

  private async audit(ctx: RequestContext | undefined, input: Parameters<Identity['audit']['record']>[1]): Promise<void> {
    await this.d.identity.audit.record(ctx, input);
  }

  private sys(name = 'sso', ctx?: RequestContext): RequestContext {
    const c = systemContext(this.d.log, this.d.clock, name, ctx?.requestId);
    if (ctx?.client) c.client = ctx.client;
    return c;
  }

  // ---------------------------------------------------------------- IdP resolution

  /** The platform IdP's mapping settings (defaults from bootstrap settings). */
  async platformSettings(): Promise<PlatformSettings> {
    const c = this.d.config;
    const stored = await this.d.settings.get<PlatformSettings>(PLATFORM_SETTINGS_KEY);
    const parsed = stored ? platformSettingsSchema.safeParse(stored) : undefined;
    if (parsed?.success) return parsed.data;
    return {
      claim_source: 'id_token',
      roles_path: c.oidcRolesClaim,
      groups_path: c.oidcGroupsClaim,
      rules: [{ claim: 'roles', value: c.oidcAdminRole, platform_admin: true }],
      allowed_domains: [],
      jit: true,
    };
  }

  platformConfigured(): boolean {
    return Boolean(this.d.config.oidcIssuer && this.d.config.oidcClientSecretFile);
  }

  private async platformIdp(): Promise<ResolvedIdp | undefined> {
    const c = this.d.config;
    if (!c.oidcIssuer || !c.oidcClientSecretFile) return undefined;
    if (this.platformSecret === undefined) {
      try {
        this.platformSecret = readFileSync(c.oidcClientSecretFile, 'utf8').trim();
      } catch {
        throw new AppError(503, 'sso_platform_secret_unreadable', 'The platform IdP client secret file (ENCLAVE_OIDC_CLIENT_SECRET_FILE) cannot be read.');
      }
    }
    const s = await this.platformSettings();
    return {
      ref: PLATFORM_REF,
      kind: 'platform',
      tenant: null,
      name: 'Single sign-on',
      endpoint: { ref: PLATFORM_REF, issuer: c.oidcIssuer, clientId: c.oidcClientId, clientSecret: this.platformSecret, internalOrigin: c.oidcInternalUrl },
      scopes: 'openid email profile',
      claimSource: s.claim_source,
      rolesPath: s.roles_path,
      groupsPath: s.groups_path,
      tenantRules: [],
      platformRules: s.rules,
      defaultRole: null,
      allowedDomains: s.allowed_domains,
      jit: s.jit,
      enabled: true,
      protocol: 'oidc',
      saml: null,
    };
  }

  private fromRow(row: SsoIdpRow, tenant: ResolvedIdp['tenant']): ResolvedIdp {
    return {
      ref: row.id,
      kind: 'tenant',
      tenant,
      name: row.name,
      endpoint: { ref: row.id, issuer: row.issuer, clientId: row.clientId, clientSecret: this.d.secrets.decrypt(row.clientSecret, secretAad('sso_idps', 'client_secret', row.id)) },
      scopes: row.scopes,
      claimSource: row.claimSource,
      rolesPath: row.rolesPath,
      groupsPath: row.groupsPath,
      tenantRules: JSON.parse(row.mapping) as TenantRule[],
      platformRules: [],
      defaultRole: row.defaultRole,
      allowedDomains: JSON.parse(row.allowedDomains) as string[],
      jit: row.jit,
      enabled: row.enabled,
      protocol: row.protocol,
      saml: row.protocol === 'saml' ? parseSettings(row.saml) : null,
    };
  }

  /**
   * Whether the tenant's SCIM directory (server/scim) holds the user: `active`, `inactive`
   * (deprovisioned: deactivated or deleted there), or undefined (not provisioned by it).
   * A deprovisioned user is never given the tenant's membership back by a login.
   */
  private async scimState(tenant: { id: string; slug: string }, userId: string): Promise<'active' | 'inactive' | undefined> {
    const row = await new ScimRepo(this.d.store, this.d.tenantStore).user(this.tenantCtx(tenant), userId, { includeDeleted: true });
    return row ? (row.active && row.deletedAt === null ? 'active' : 'inactive') : undefined;
  }

  private tenantCtx(tenant: { id: string; slug: string }, name = 'sso', ctx?: RequestContext): RequestContext {
    const c = this.sys(name, ctx);
    c.tenant = { id: tenant.id, slug: tenant.slug };
    return c;
  }

  /** By ref (`platform` or an IdP id); undefined when there is none. */
  async resolve(ref: string): Promise<ResolvedIdp | undefined> {
    if (ref === PLATFORM_REF) return this.platformIdp();
    if (!/^idp_[0-9a-z]{26}$/.test(ref)) return undefined;
    const tenant = await this.repo.idpTenant(ref);
    if (!tenant) return undefined;
    const row = await this.repo.idp(this.tenantCtx(tenant), ref);
    return row ? this.fromRow(row, tenant) : undefined;
  }

  /**
   * Sign-in buttons: the platform IdP, plus the enabled IdPs of the tenant a platform admin
   * verified the hint address's domain for (home-realm discovery). A tenant slug alone shows
   * nothing more, so the answer for an unknown tenant and for a known one is the same
   * (issue 16: no tenant enumeration); with both, the domain must be the tenant's.
   */
  async providers(hint: { tenant?: string; email?: string } = {}): Promise<{ id: string; name: string; tenant: string | null; login_path: string }[]> {
    const out: { id: string; name: string; tenant: string | null; login_path: string }[] = [];
    if (this.platformConfigured()) out.push({ id: PLATFORM_REF, name: 'Single sign-on', tenant: null, login_path: `/auth/oidc/${PLATFORM_REF}/login` });
    const email = hint.email?.trim().toLowerCase();
    const at = email ? email.lastIndexOf('@') : -1;
    if (!email || at < 1) return out;
    const owner = await this.d.identity.domains.ownerOf(email);
    const t = owner ? await this.d.identity.tenants.byId(owner) : undefined;
    if (!t || t.status !== 'active' || (hint.tenant && hint.tenant !== t.slug)) return out;
    for (const r of await this.repo.idps(this.tenantCtx(t))) {
      if (r.enabled) out.push({ id: r.id, name: r.name, tenant: t.slug, login_path: loginPath(r) });
    }
    return out;
  }

  // ---------------------------------------------------------------- failures

  /** Audits a refused login (`sso.login` denied with the reason) and returns the error to throw. */
  async fail(ctx: RequestContext, idp: ResolvedIdp | undefined, reason: string, status = 400, details: Record<string, unknown> = {}): Promise<AppError> {
    await this.audit(ctx, {
      action: 'sso.login',
      outcome: 'denied',
      reason,
      tenantId: idp?.tenant?.id ?? null,
      target: { type: 'sso_idp', id: idp?.ref ?? null },
      details,
    });
    this.d.metrics.authLogins.labels(idp?.protocol ?? 'oidc', reasonLabel(reason)).inc();
    ctx.log.info({ reason, idp: idp?.ref ?? null }, 'sso login refused');
    return new AppError(status, `sso_${reason}`, MESSAGES[reason] ?? 'Single sign-on failed.', { details: { reason } });
  }

  // ---------------------------------------------------------------- login

  /** Starts a login: returns the authorization URL and the transaction id for the cookie. */
  async startLogin(
    ctx: RequestContext,
    ref: string,
    input: { returnTo: string; origin: string; linkUserId?: string; invitationToken?: string },
  ): Promise<{ url: string; txId: string }> {
    const idp = await this.resolve(ref);
    if (!idp || idp.protocol !== 'oidc') throw await this.fail(ctx, idp, 'idp_not_found', 404, { idp: ref.slice(0, 40) });
    if (!idp.enabled) throw await this.fail(ctx, idp, 'idp_disabled', 404);
    if (idp.tenant?.status === 'suspended') throw await this.fail(ctx, idp, 'tenant_suspended', 403);
    let invitationId: string | undefined;
    if (input.invitationToken !== undefined) {
      const inv = await this.d.identity.invitations.forSso(input.invitationToken);
      // Only an IdP of the inviting tenant can carry its invitation.
      if (idp.kind !== 'tenant' || inv.tenant.id !== idp.tenant!.id) throw await this.fail(ctx, idp, 'idp_not_found', 404);
      invitationId = inv.invitation.id;
    }
    let config: client.Configuration;
    try {
      config = await this.clients.config(idp.endpoint);
    } catch (e) {
      throw await this.fail(ctx, idp, classifyOidcError(e), 502);
    }
    const verifier = client.randomPKCECodeVerifier();
    const tx: Transaction = {
      idpRef: idp.ref,
      issuer: idp.endpoint.issuer,
      state: client.randomState(),
      nonce: client.randomNonce(),
      verifier,
      redirectUri: (this.d.config.publicUrl?.replace(/\/+$/, '') ?? input.origin) + OIDC_PATHS.callback,
      returnTo: input.returnTo,
      ...(input.linkUserId ? { linkUserId: input.linkUserId } : {}),
      ...(invitationId ? { invitationId } : {}),
    };
    const txId = randomBytes(32).toString('base64url');
    await this.redis.set(`sso:tx:${sha256(txId)}`, JSON.stringify(tx), 'EX', TX_TTL_S);
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: tx.redirectUri,
      scope: idp.scopes,
      state: tx.state,
      nonce: tx.nonce,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    });
    return { url: url.href, txId };
  }

  /**
   * The callback: one-time transaction, state, mix-up and full token validation, then the
   * identity by (iss, sub), provisioning, role mapping and a session.
   */
  async callback(ctx: RequestContext, txId: string | undefined, query: URLSearchParams): Promise<{ token: string; returnTo: string; userId: string }> {
    const raw = txId ? await this.redis.getdel(`sso:tx:${sha256(txId)}`) : null;
    if (!raw) throw await this.fail(ctx, undefined, 'transaction_missing');
    const tx = JSON.parse(raw) as Transaction;
    const idp = await this.resolve(tx.idpRef);
    if (!idp || !idp.enabled || idp.endpoint.issuer !== tx.issuer) throw await this.fail(ctx, idp, 'idp_changed');
    if (query.get('state') !== tx.state) throw await this.fail(ctx, idp, 'state_mismatch');
    // Mix-up defence (RFC 9207): a response naming another issuer is refused before any token call.
    const iss = query.get('iss');
    if (iss !== null && iss !== tx.issuer) throw await this.fail(ctx, idp, 'issuer_mismatch');
    if (query.has('error')) {
      const code = (query.get('error') ?? '').replace(/[^a-z_]/g, '').slice(0, 40);
      throw await this.fail(ctx, idp, 'idp_error', 400, { idp_error: code });
    }

    let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
    let config: client.Configuration;
    try {
      config = await this.clients.config(idp.endpoint);
      const current = new URL(tx.redirectUri);
      current.search = query.toString();
      tokens = await client.authorizationCodeGrant(config, current, {
        pkceCodeVerifier: tx.verifier,
        expectedNonce: tx.nonce,
        expectedState: tx.state,
        idTokenExpected: true,
      });
    } catch (e) {
      throw await this.fail(ctx, idp, classifyOidcError(e));
    }
    const idClaims = tokens.claims();
    if (!idClaims || typeof idClaims.sub !== 'string' || !idClaims.sub) throw await this.fail(ctx, idp, 'sub_missing');
    if (idClaims.iss !== tx.issuer) throw await this.fail(ctx, idp, 'iss_mismatch');
    // The library checks exp/nbf; an iat in the future (beyond the tolerance) is refused here.
    if (typeof idClaims.iat !== 'number' || idClaims.iat > this.d.clock.now() / 1000 + CLOCK_TOLERANCE_S) throw await this.fail(ctx, idp, 'iat_invalid');
    const sub = idClaims.sub;

    let source: Record<string, unknown> = idClaims as Record<string, unknown>;
    try {
      if (idp.claimSource === 'userinfo') {
        source = (await client.fetchUserInfo(config, tokens.access_token, sub)) as Record<string, unknown>;
      } else if (idp.claimSource === 'access_token') {
        source = await this.accessTokenClaims(idp, tokens.access_token);
      }
    } catch (e) {
      throw await this.fail(ctx, idp, e instanceof SsoError ? e.reason : 'claims_unavailable');
    }
    const values = mappedValues(source, idp.rolesPath, idp.groupsPath);
    const email = typeof idClaims.email === 'string' ? idClaims.email : typeof source.email === 'string' ? source.email : undefined;
    const emailVerified = (idClaims.email_verified ?? source.email_verified) === true;
    return this.completeLogin(ctx, idp, {
      iss: tx.issuer,
      sub,
      email,
      emailVerified,
      emailVerifiedKnown: typeof (idClaims.email_verified ?? source.email_verified) === 'boolean',
      name: typeof idClaims.name === 'string' ? idClaims.name : undefined,
      values,
      claimNames: claimNames(source),
      sid: typeof idClaims.sid === 'string' ? idClaims.sid : null,
      idToken: tokens.id_token ?? null,
    }, tx);
  }

  /**
   * Shared by OIDC and SAML once the IdP's message is verified: the identity-authority rules
   * (userFor), the role mapping, the session and the audit. Every refusal goes through fail().
   */
  async completeLogin(
    ctx: RequestContext,
    idp: ResolvedIdp,
    c: {
      iss: string;
      sub: string;
      email: string | undefined;
      emailVerified: boolean;
      emailVerifiedKnown: boolean;
      name: string | undefined;
      values: MappedValues;
      claimNames: string[];
      sid: string | null;
      idToken: string | null;
    },
    tx: Pick<Transaction, 'returnTo' | 'linkUserId' | 'invitationId'>,
  ): Promise<{ token: string; returnTo: string; userId: string }> {
    const { values, email, emailVerified, sub } = c;
    await this.saveLastClaims(idp, {
      at: this.d.clock.now(),
      source: idp.claimSource,
      roles_path: idp.rolesPath,
      groups_path: idp.groupsPath,
      roles: values.roles,
      groups: values.groups,
      claim_names: c.claimNames,
      email_verified: c.emailVerifiedKnown ? emailVerified : null,
    });

    if (!domainAllowed(email, emailVerified, idp.allowedDomains)) throw await this.fail(ctx, idp, 'email_domain_not_allowed', 403);

    const user = await this.userFor(ctx, idp, { iss: c.iss, sub, email, emailVerified, name: c.name }, tx);
    if (tx.invitationId && (user.email !== email?.toLowerCase() || !emailVerified)) throw await this.fail(ctx, idp, 'invitation_email_mismatch', 403);
    // The mapping may add a membership only for accounts this IdP owns (it provisioned them,
    // or linked them under the verified-domain rule); for others it changes or removes an
    // existing role but never re-adds one an admin removed (issue 16).
    const origin = (await this.repo.identity(c.iss, sub))?.origin;
    const owns = idp.kind === 'platform' || origin === 'provisioned' || origin === 'linked_by_email' || origin === 'legacy';
    const activeTenant = await this.applyMapping(ctx, idp, user, values, { invited: tx.invitationId !== undefined, mayAdd: owns });
    if (tx.invitationId) {
      const uctx: RequestContext = { ...ctx, principal: { kind: 'user', id: user.id, userId: user.id, platformAdmin: user.platformAdmin } };
      try {
        await this.d.identity.invitations.acceptForSso(uctx, tx.invitationId, user);
      } catch (e) {
        if (e instanceof AppError) throw await this.fail(ctx, idp, 'invitation_invalid', 404);
        throw e;
      }
    }
    const fresh = (await this.d.identity.users.byId(user.id))!;
    if (fresh.status !== 'active') throw await this.fail(ctx, idp, 'user_deactivated', 403);

    const sctx: RequestContext = { ...ctx, principal: { kind: 'user', id: fresh.id, userId: fresh.id, platformAdmin: fresh.platformAdmin } };
    const { token, session } = await this.d.identity.sessions.createSession(sctx, fresh, activeTenant, { method: idp.protocol, idp: idp.ref });
    await this.repo.insertSession({
      sessionId: session.id,
      idpRef: idp.ref,
      issuer: c.iss,
      subject: sub,
      sid: c.sid,
      idToken: c.idToken ? this.d.secrets.encrypt(c.idToken, secretAad('sso_sessions', 'id_token', session.id)) : null,
      createdAt: this.d.clock.now(),
    });
    await this.audit(sctx, {
      action: 'sso.login',
      tenantId: idp.tenant?.id ?? activeTenant,
      target: { type: 'sso_idp', id: idp.ref },
      details: { session: session.id, active_tenant: activeTenant },
    });
    this.d.metrics.authLogins.labels(idp.protocol, 'success').inc();
    return { token, returnTo: tx.returnTo, userId: fresh.id };
  }

  /** Claims of a JWT access token, verified against the IdP's JWKS (issuer, signature, expiry, our client). */
  private async accessTokenClaims(idp: ResolvedIdp, accessToken: string): Promise<Record<string, unknown>> {
    const jwks = await this.clients.jwks(idp.endpoint);
    try {
      const { payload } = await jose.jwtVerify(accessToken, jwks, {
        issuer: idp.endpoint.issuer,
        algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
        clockTolerance: CLOCK_TOLERANCE_S,
        currentDate: new Date(this.d.clock.now()),
      });
      const aud = Array.isArray(payload.aud) ? payload.aud : payload.aud ? [payload.aud] : [];
      if (payload.azp !== idp.endpoint.clientId && !aud.includes(idp.endpoint.clientId)) throw new SsoError('access_token_audience', 'The access token is not for Enclave.');
      return payload as Record<string, unknown>;
    } catch (e) {
      if (e instanceof SsoError) throw e;
      throw new SsoError('access_token_invalid', 'The access token is not a valid JWT of the IdP.');
    }
  }

  private async saveLastClaims(idp: ResolvedIdp, claims: LastClaims): Promise<void> {
    if (idp.kind === 'platform') await this.d.settings.set(PLATFORM_CLAIMS_KEY, claims);
    else await this.repo.updateIdp(this.tenantCtx(idp.tenant!), idp.ref, { lastClaims: JSON.stringify(claims), lastClaimsAt: claims.at });
  }

  /**
   * The user of (iss, sub), by the identity-authority rules (issue 16; server/sso/authority.ts):
   * a tenant IdP signs in only accounts it provisioned, accounts whose holder linked this
   * (iss, sub) while signed in, or (by e-mail) accounts of a domain a platform admin
   * verified for its tenant that belong to no other tenant and are no platform admin.
   */
  private async userFor(
    ctx: RequestContext,
    idp: ResolvedIdp,
    c: { iss: string; sub: string; email: string | undefined; emailVerified: boolean; name: string | undefined },
    tx: Pick<Transaction, 'linkUserId' | 'invitationId'>,
  ): Promise<UserRow> {
    const now = this.d.clock.now();
    const linked = await this.repo.identity(c.iss, c.sub);
    if (tx.linkUserId) return await this.linkForHolder(ctx, idp, c, linked, tx.linkUserId);
    if (linked) {
      const u = (await this.d.identity.users.byId(linked.userId))!;
      if (idp.kind === 'tenant') {
        const why = assertionRefusal({ idpRef: idp.ref, tenantId: idp.tenant!.id, user: u, identity: linked, memberships: await this.memberTenants(u.id) });
        if (why) throw await this.fail(ctx, idp, why, 403);
      }
      await this.repo.updateIdentity(linked.id, { lastLoginAt: now });
      return u;
    }
    if (!c.email) throw await this.fail(ctx, idp, 'email_missing', 403);
    const existing = await this.d.identity.users.byEmail(c.email);
    const verifiedFor = await this.d.identity.domains.ownerOf(c.email);
    if (existing) {
      // The tenant's own SCIM directory vouched for this address (in a domain verified for the
      // tenant, server/scim): its IdP links it even without email_verified, which Entra ID never sends.
      const vouched = idp.kind === 'tenant' && await this.scimState(idp.tenant!, existing.id) === 'active';
      const ok =
        (c.emailVerified || vouched) &&
        (idp.kind === 'platform' ||
          emailLinkAllowed({ tenantId: idp.tenant!.id, verifiedFor, user: existing, memberships: await this.memberTenants(existing.id) }));
      if (!ok) throw await this.fail(ctx, idp, 'account_link_refused', 403);
      await this.repo.insertIdentity({ id: newId('sid', now), issuer: c.iss, subject: c.sub, userId: existing.id, idpRef: idp.ref, origin: 'linked_by_email', createdAt: now, lastLoginAt: now });
      await this.audit(ctx, { action: 'sso.link', tenantId: idp.tenant?.id ?? null, actor: { type: 'user', id: existing.id }, target: { type: 'user', id: existing.id }, details: { idp: idp.ref, by: 'verified_domain' } });
      return existing;
    }
    // A new account: JIT for the tenant's verified domains only, or the invited address
    // accepting an invitation of this IdP's tenant through it.
    const invited = tx.invitationId !== undefined && idp.kind === 'tenant';
    if (!invited && !idp.jit) throw await this.fail(ctx, idp, 'not_provisioned', 403);
    if (idp.kind === 'tenant' && !invited && (verifiedFor !== idp.tenant!.id || !c.emailVerified)) throw await this.fail(ctx, idp, 'email_domain_not_verified', 403);
    if (invited && (!c.emailVerified || (verifiedFor !== undefined && verifiedFor !== idp.tenant!.id))) throw await this.fail(ctx, idp, 'invitation_email_mismatch', 403);
    let u: UserRow;
    try {
      u = await this.d.identity.users.create(this.sys('sso', ctx), { email: c.email, ...(c.name ? { name: c.name.slice(0, 200) } : {}), password: null });
    } catch (e) {
      if (e instanceof AppError) throw await this.fail(ctx, idp, e.code === 'seat_limit' || e.code === 'license_lapsed' ? 'seat_limit' : 'provisioning_failed', 403);
      throw e;
    }
    await this.repo.insertIdentity({ id: newId('sid', now), issuer: c.iss, subject: c.sub, userId: u.id, idpRef: idp.ref, origin: 'provisioned', createdAt: now, lastLoginAt: now });
    await this.audit(ctx, { action: 'sso.provision', tenantId: idp.tenant?.id ?? null, actor: { type: 'system', id: 'sso' }, target: { type: 'user', id: u.id }, details: { idp: idp.ref, via: invited ? 'invitation' : 'jit' } });
    return u;
  }

  /** The account holder, signed in, links this (iss, sub) to their own account. */
  private async linkForHolder(ctx: RequestContext, idp: ResolvedIdp, c: { iss: string; sub: string }, linked: Awaited<ReturnType<SsoRepo['identity']>>, userId: string): Promise<UserRow> {
    const u = await this.d.identity.users.byId(userId);
    if (!u || u.status !== 'active') throw await this.fail(ctx, idp, 'user_deactivated', 403);
    if (idp.kind === 'tenant' && u.platformAdmin) throw await this.fail(ctx, idp, 'platform_admin_requires_platform_idp', 403);
    if (linked && linked.userId !== u.id) throw await this.fail(ctx, idp, 'identity_in_use', 409);
    // Linking is for members of the IdP's tenant: it never makes anyone a member.
    if (idp.kind === 'tenant' && !(await this.memberTenants(u.id)).includes(idp.tenant!.id)) throw await this.fail(ctx, idp, 'not_a_member', 403);
    const now = this.d.clock.now();
    if (linked) await this.repo.updateIdentity(linked.id, { lastLoginAt: now, origin: 'linked_by_user', idpRef: idp.ref });
    else await this.repo.insertIdentity({ id: newId('sid', now), issuer: c.iss, subject: c.sub, userId: u.id, idpRef: idp.ref, origin: 'linked_by_user', createdAt: now, lastLoginAt: now });
    await this.audit(ctx, { action: 'sso.link', tenantId: idp.tenant?.id ?? null, actor: { type: 'user', id: u.id }, target: { type: 'user', id: u.id }, details: { idp: idp.ref, by: 'account_holder' } });
    return u;
  }

  private async memberTenants(userId: string): Promise<string[]> {
    return (await this.d.identity.sessions.memberships(userId)).map((m) => m.tenantId);
  }

  /**
   * Recomputes roles from the mapped claims (every login; a removed group demotes). Tenant
   * IdPs: only their own tenant, never platform admin. Platform IdP: platform admin and the
   * tenants its rules name. Returns the session's active tenant.
   */
  private async applyMapping(ctx: RequestContext, idp: ResolvedIdp, user: UserRow, values: MappedValues, opts: { invited?: boolean; mayAdd?: boolean } = {}): Promise<string | null> {
    if (idp.kind === 'tenant') {
      const tenant = idp.tenant!;
      const role = tenantRole(values, idp.tenantRules, idp.defaultRole);
      // An invitation accepted through the IdP grants its own role when the mapping gives none.
      if (!role && opts.invited) return tenant.id;
      const member = (await this.d.identity.sessions.memberships(user.id)).some((m) => m.tenantId === tenant.id);
      if (await this.scimState(tenant, user.id) === 'inactive') throw await this.fail(ctx, idp, 'user_deactivated', 403);
      if (!member && !opts.mayAdd) {
        if (opts.invited) return tenant.id;
        throw await this.fail(ctx, idp, 'not_a_member', 403);
      }
      await this.setRole(ctx, idp, user, tenant, role);
      if (!role) throw await this.fail(ctx, idp, 'no_mapped_role', 403);
      // The IdP's groups → team memberships (server/teams), recomputed at every login like the role.
      await this.d.identity.teamDirectory?.(tenant.id, user.id, values.groups, 'idp');
      return tenant.id;
    }
    const grants = platformGrants(values, idp.platformRules);
    const identity = await this.repo.identity(idp.endpoint.issuer, (await this.repo.identitiesOfUser(user.id)).find((i) => i.idpRef === PLATFORM_REF)?.subject ?? '');
    const now = this.d.clock.now();
    if (grants.platformAdmin && !user.platformAdmin) {
      await this.repo.setPlatformAdmin(user.id, true, now);
      if (identity) await this.repo.updateIdentity(identity.id, { platformAdminManaged: true });
      await this.d.identity.revision.bump();
      await this.audit(ctx, { action: 'sso.role_change', tenantId: null, actor: { type: 'system', id: 'sso' }, target: { type: 'user', id: user.id }, details: { idp: idp.ref, platform_admin: true } });
    } else if (!grants.platformAdmin && user.platformAdmin && identity?.platformAdminManaged) {
      await this.repo.setPlatformAdmin(user.id, false, now);
      await this.repo.updateIdentity(identity.id, { platformAdminManaged: false });
      await this.d.identity.revision.bump();
      await this.audit(ctx, { action: 'sso.role_change', tenantId: null, actor: { type: 'system', id: 'sso' }, target: { type: 'user', id: user.id }, details: { idp: idp.ref, platform_admin: false } });
    }
    for (const [slug, role] of grants.tenants) {
      const t = await this.d.identity.tenants.resolve(slug);
      if (t) await this.setRole(ctx, idp, user, { id: t.id, slug: t.slug }, role);
    }
    const after = (await this.d.identity.users.byId(user.id))!;
    const memberships = await this.d.identity.sessions.memberships(user.id);
    if (!after.platformAdmin && memberships.length === 0) throw await this.fail(ctx, idp, 'no_mapped_role', 403);
    // Where the user last worked, or their only tenant, or none (the client asks).
    return await this.d.identity.sessions.landing(after);
  }

  private async setRole(ctx: RequestContext, idp: ResolvedIdp, user: UserRow, tenant: { id: string; slug: string }, role: Role | null): Promise<void> {
    const tctx = this.tenantCtx(tenant, 'sso', ctx);
    const current = (await this.d.identity.sessions.memberships(user.id)).find((m) => m.tenantId === tenant.id)?.role ?? null;
    if (current === role) return;
    if (role && !current && await this.scimState(tenant, user.id) === 'inactive') {
      await this.audit(this.tenantCtx(tenant, 'sso', ctx), { action: 'sso.role_change', outcome: 'denied', reason: 'scim_deprovisioned', target: { type: 'user', id: user.id }, details: { idp: idp.ref, role } });
      return;
    }
    try {
      if (role) await this.d.identity.users.grant(tctx, user.id, role);
      else await this.d.identity.users.removeMember(tctx, user.id);
    } catch (e) {
      // The last owner keeps the role (a tenant always has one); everything else is a bug.
      if (e instanceof AppError && e.code === 'last_owner') {
        await this.audit(tctx, { action: 'sso.role_change', outcome: 'denied', reason: 'last_owner', target: { type: 'user', id: user.id }, details: { idp: idp.ref, role, previous_role: current } });
        return;
      }
      throw e;
    }
    await this.audit(tctx, { action: 'sso.role_change', actor: { type: 'system', id: 'sso' }, target: { type: 'user', id: user.id }, details: { idp: idp.ref, role, previous_role: current } });
  }

  // ---------------------------------------------------------------- logout

  /** RP-initiated logout: ends our session first, then returns the IdP's end-session URL (or null). */
  async logout(ctx: RequestContext, sessionId: string, origin: string): Promise<string | null> {
    const link = await this.repo.session(sessionId);
    await this.d.identity.sessions.logout(ctx, sessionId);
    if (!link) return null;
    const idp = await this.resolve(link.idpRef);
    await this.audit(ctx, { action: 'sso.logout', tenantId: idp?.tenant?.id ?? null, target: { type: 'session', id: sessionId }, details: { idp: link.idpRef, kind: 'rp_initiated' } });
    if (!idp || idp.protocol !== 'oidc') return null;
    try {
      const config = await this.clients.config(idp.endpoint);
      if (!config.serverMetadata().end_session_endpoint) return null;
      const params: Record<string, string> = { post_logout_redirect_uri: (this.d.config.publicUrl?.replace(/\/+$/, '') ?? origin) + OIDC_PATHS.postLogout, client_id: idp.endpoint.clientId };
      if (link.idToken) params.id_token_hint = this.d.secrets.decrypt(link.idToken, secretAad('sso_sessions', 'id_token', sessionId));
      return client.buildEndSessionUrl(config, params).href;
    } catch {
      return null;
    }
  }

  /**
   * Back-channel logout (OIDC Back-Channel Logout 1.0 §2.6): verifies the logout token of a
   * configured IdP (signature, iss, aud, iat window, typ, events, no nonce, sid or sub, jti
   * once) and ends the matching sessions. Returns how many ended.
   */
  async backchannelLogout(ctx: RequestContext, logoutToken: unknown): Promise<number> {
    const refuse = async (reason: string, idp?: ResolvedIdp): Promise<AppError> => {
      await this.audit(ctx, { action: 'sso.backchannel_logout', outcome: 'denied', reason, tenantId: idp?.tenant?.id ?? null, target: { type: 'sso_idp', id: idp?.ref ?? null } });
      ctx.log.info({ reason }, 'back-channel logout refused');
      return new AppError(400, 'invalid_request', 'Invalid logout token.', { details: { reason } });
    };
    if (typeof logoutToken !== 'string' || logoutToken.length > 16_384) throw await refuse('logout_token_missing');
    let unverified: jose.JWTPayload;
    try {
      unverified = jose.decodeJwt(logoutToken);
    } catch {
      throw await refuse('logout_token_malformed');
    }
    if (typeof unverified.iss !== 'string') throw await refuse('iss_missing');
    const candidates: ResolvedIdp[] = [];
    const platform = this.platformConfigured() ? await this.platformIdp() : undefined;
    if (platform && platform.endpoint.issuer === unverified.iss) candidates.push(platform);
    for (const r of await this.repo.idpsByIssuer(unverified.iss)) {
      const idp = await this.resolve(r.id);
      if (idp?.enabled && idp.protocol === 'oidc') candidates.push(idp);
    }
    const aud = Array.isArray(unverified.aud) ? unverified.aud : unverified.aud ? [unverified.aud] : [];
    const idp = candidates.find((c) => aud.includes(c.endpoint.clientId));
    if (!idp) throw await refuse('unknown_issuer_or_audience');

    let payload: jose.JWTPayload;
    try {
      const jwks = await this.clients.jwks(idp.endpoint);
      const r = await jose.jwtVerify(logoutToken, jwks, {
        issuer: idp.endpoint.issuer,
        audience: idp.endpoint.clientId,
        algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
        maxTokenAge: '120s',
        clockTolerance: CLOCK_TOLERANCE_S,
        currentDate: new Date(this.d.clock.now()),
        requiredClaims: ['iat', 'jti'],
      });
      payload = r.payload;
      const typ = r.protectedHeader.typ;
      if (typ !== undefined && typ.toLowerCase() !== 'logout+jwt' && typ.toLowerCase() !== 'jwt') throw await refuse('typ_invalid', idp);
    } catch (e) {
      if (e instanceof AppError) throw e;
      const code = (e as { code?: string }).code ?? '';
      throw await refuse(code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' || code === 'ERR_JWKS_NO_MATCHING_KEY' ? 'signature_invalid' : code === 'ERR_JOSE_ALG_NOT_ALLOWED' ? 'alg_not_allowed' : 'logout_token_invalid', idp);
    }
    const events = payload.events as Record<string, unknown> | undefined;
    if (!events || typeof events !== 'object' || !events[BCL_EVENT] || typeof events[BCL_EVENT] !== 'object') throw await refuse('events_invalid', idp);
    if ('nonce' in payload) throw await refuse('nonce_present', idp);
    const sid = typeof payload.sid === 'string' ? payload.sid : undefined;
    const sub = typeof payload.sub === 'string' ? payload.sub : undefined;
    if (!sid && !sub) throw await refuse('sid_and_sub_missing', idp);
    const fresh = await this.redis.set(`sso:bcl:${sha256(`${idp.endpoint.issuer}\n${payload.jti}`)}`, '1', 'EX', 600, 'NX');
    if (fresh !== 'OK') throw await refuse('jti_replayed', idp);

    const ids = await this.repo.liveSessions(idp.endpoint.issuer, sid ? { sid } : { sub: sub! });
    const lctx = this.sys('sso', ctx);
    for (const id of ids) await this.d.identity.sessions.logout(lctx, id);
    await this.audit(lctx, { action: 'sso.logout', tenantId: idp.tenant?.id ?? null, target: { type: 'sso_idp', id: idp.ref }, details: { kind: 'back_channel', sessions_ended: ids.length, by: sid ? 'sid' : 'sub' } });
    return ids.length;
  }

  // ---------------------------------------------------------------- admin

  private async requireRead(ctx: RequestContext): Promise<void> {
    await this.d.identity.access.require(ctx, 'settings:read', {}, { type: 'sso_idp' });
  }
  private async requireWrite(ctx: RequestContext, id?: string): Promise<void> {
    await this.d.identity.access.require(ctx, 'settings:write', {}, { type: 'sso_idp', ...(id ? { id } : {}) });
  }

  async listIdps(ctx: RequestContext): Promise<SsoIdpRow[]> {
    await this.requireRead(ctx);
    return await this.repo.idps(ctx);
  }

  async getIdp(ctx: RequestContext, id: string): Promise<SsoIdpRow> {
    await this.requireRead(ctx);
    const row = await this.repo.idp(ctx, id);
    if (!row) throw await this.hidden(ctx, id, 'sso.idp.read');
    return row;
  }

  private async hidden(ctx: RequestContext, id: string, action: string): Promise<AppError> {
    await this.audit(ctx, { action, outcome: 'denied', reason: 'not_found', target: { type: 'sso_idp', id } });
    return new AppError(404, 'not_found', 'IdP not found');
  }

  private validate(input: Partial<IdpInput>): void {
    if (input.issuer !== undefined) {
      const p = issuerProblem(input.issuer, this.d.config.oidcAllowLoopbackHttp);
      if (p) throw new AppError(400, 'invalid_issuer', p, { param: 'issuer' });
    }
    if (input.scopes !== undefined && !input.scopes.split(/\s+/).includes('openid')) {
      throw new AppError(400, 'invalid_scopes', 'scopes must include openid.', { param: 'scopes' });
    }
    if (input.default_role && !isRole(input.default_role)) throw new AppError(400, 'invalid_role', 'default_role must be a tenant role.', { param: 'default_role' });
  }

  async createIdp(ctx: RequestContext, input: IdpInput | SamlIdpInput): Promise<SsoIdpRow> {
    await this.requireWrite(ctx);
    if ('protocol' in input) return await this.createSamlIdp(ctx, input);
    if (!this.d.entitlements().hasFeature('sso.oidc')) {
      await this.audit(ctx, { action: 'sso.idp.create', outcome: 'denied', reason: 'license_feature', target: { type: 'sso_idp' } });
      throw new AppError(403, 'license_feature_missing', 'The licence does not include OpenID Connect SSO (sso.oidc).');
    }
    this.validate(input);
    const now = this.d.clock.now();
    const id = newId('idp', now);
    const row = await this.repo.insertIdp(ctx, {
      id,
      name: input.name,
      issuer: input.issuer,
      clientId: input.client_id,
      clientSecret: this.d.secrets.encrypt(input.client_secret, secretAad('sso_idps', 'client_secret', id)),
      scopes: input.scopes ?? 'openid email profile',
      claimSource: input.claim_source ?? 'id_token',
      rolesPath: input.roles_path ?? null,
      groupsPath: input.groups_path ?? null,
      ...idpPolicyColumns(input, now),
    });
    await this.audit(ctx, { action: 'sso.idp.create', target: { type: 'sso_idp', id }, details: { name: row.name, issuer: row.issuer, enforce_sso: row.enforceSso, jit: row.jit } });
    return row;
  }

  async updateIdp(ctx: RequestContext, id: string, input: Partial<IdpInput> | SamlIdpPatch): Promise<SsoIdpRow> {
    await this.requireWrite(ctx, id);
    const before = await this.repo.idp(ctx, id);
    if (!before) throw await this.hidden(ctx, id, 'sso.idp.update');
    // A SAML row takes only SAML fields (an OIDC-only field is a 400, never silently dropped).
    if (before.protocol === 'saml') return await this.updateSamlIdp(ctx, before, parseInput(samlIdpPatch, input));
    if ('protocol' in input) return await this.updateSamlIdp(ctx, before, input as SamlIdpPatch);
    const patch = input as Partial<IdpInput>;
    this.validate(patch);
    const set: Partial<SsoIdpRow> = { updatedAt: this.d.clock.now() };
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.issuer !== undefined) set.issuer = patch.issuer;
    if (patch.client_id !== undefined) set.clientId = patch.client_id;
    if (patch.client_secret !== undefined) set.clientSecret = this.d.secrets.encrypt(patch.client_secret, secretAad('sso_idps', 'client_secret', id));
    if (patch.scopes !== undefined) set.scopes = patch.scopes;
    if (patch.claim_source !== undefined) set.claimSource = patch.claim_source;
    if (patch.roles_path !== undefined) set.rolesPath = patch.roles_path;
    if (patch.groups_path !== undefined) set.groupsPath = patch.groups_path;
    if (patch.mapping !== undefined) set.mapping = JSON.stringify(patch.mapping);
    if (patch.default_role !== undefined) set.defaultRole = patch.default_role;
    if (patch.allowed_domains !== undefined) set.allowedDomains = JSON.stringify(patch.allowed_domains);
    if (patch.jit !== undefined) set.jit = patch.jit;
    if (patch.enforce_sso !== undefined) set.enforceSso = patch.enforce_sso;
    if (patch.enabled !== undefined) set.enabled = patch.enabled;
    const { id: _i, tenantId: _t, ...clean } = set as SsoIdpRow;
    await this.repo.updateIdp(ctx, id, clean);
    this.clients.forget(id);
    const changed = Object.keys(patch).filter((k) => k !== 'client_secret');
    await this.audit(ctx, { action: 'sso.idp.update', target: { type: 'sso_idp', id }, details: { changed, client_secret_changed: patch.client_secret !== undefined } });
    return (await this.repo.idp(ctx, id))!;
  }

  /** A SAML IdP (issue 24): entity id, SSO URL and certificates by hand or from metadata XML. */
  private async createSamlIdp(ctx: RequestContext, input: SamlIdpInput): Promise<SsoIdpRow> {
    if (!this.d.entitlements().hasFeature('sso.saml')) {
      await this.audit(ctx, { action: 'sso.idp.create', outcome: 'denied', reason: 'license_feature', target: { type: 'sso_idp' } });
      throw new AppError(403, 'license_feature_missing', 'The licence does not include SAML SSO (sso.saml).');
    }
    this.validate(input);
    const parts = idpParts(input);
    if (!parts.entityId || !parts.ssoUrl || !parts.certificates) {
      throw new AppError(400, 'invalid_request', 'A SAML IdP needs metadata_xml, or idp_entity_id, sso_url and certificates.', { param: 'metadata_xml' });
    }
    const settings: SamlSettings = {
      sso_url: parts.ssoUrl,
      certificates: parts.certificates,
      email_attribute: input.email_attribute ?? null,
      name_attribute: input.name_attribute ?? null,
      groups_attribute: input.groups_attribute ?? null,
      roles_attribute: input.roles_attribute ?? null,
      allow_idp_initiated: input.allow_idp_initiated ?? false,
    };
    const now = this.d.clock.now();
    const id = newId('idp', now);
    const row = await this.repo.insertIdp(ctx, {
      id,
      name: input.name,
      issuer: parts.entityId,
      clientId: '',
      clientSecret: this.d.secrets.encrypt('', secretAad('sso_idps', 'client_secret', id)),
      protocol: 'saml',
      saml: JSON.stringify(settings),
      ...idpPolicyColumns(input, now),
    });
    await this.audit(ctx, { action: 'sso.idp.create', target: { type: 'sso_idp', id }, details: { name: row.name, issuer: row.issuer, protocol: 'saml', enforce_sso: row.enforceSso, jit: row.jit, allow_idp_initiated: settings.allow_idp_initiated } });
    return row;
  }

  private async updateSamlIdp(ctx: RequestContext, before: SsoIdpRow, patch: SamlIdpPatch): Promise<SsoIdpRow> {
    if (before.protocol !== 'saml' || patch.protocol !== undefined && patch.protocol !== 'saml') {
      throw new AppError(400, 'invalid_request', 'The protocol of an IdP cannot change; create a new one.', { param: 'protocol' });
    }
    this.validate(patch);
    const parts = idpParts(patch);
    const cur = parseSettings(before.saml);
    const settings: SamlSettings = {
      sso_url: parts.ssoUrl ?? cur.sso_url,
      certificates: parts.certificates ?? cur.certificates,
      email_attribute: patch.email_attribute !== undefined ? patch.email_attribute : cur.email_attribute,
      name_attribute: patch.name_attribute !== undefined ? patch.name_attribute : cur.name_attribute,
      groups_attribute: patch.groups_attribute !== undefined ? patch.groups_attribute : cur.groups_attribute,
      roles_attribute: patch.roles_attribute !== undefined ? patch.roles_attribute : cur.roles_attribute,
      allow_idp_initiated: patch.allow_idp_initiated ?? cur.allow_idp_initiated,
    };
    const set: Partial<SsoIdpRow> = { updatedAt: this.d.clock.now(), saml: JSON.stringify(settings) };
    if (parts.entityId !== undefined) set.issuer = parts.entityId;
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.mapping !== undefined) set.mapping = JSON.stringify(patch.mapping);
    if (patch.default_role !== undefined) set.defaultRole = patch.default_role;
    if (patch.allowed_domains !== undefined) set.allowedDomains = JSON.stringify(patch.allowed_domains);
    if (patch.jit !== undefined) set.jit = patch.jit;
    if (patch.enforce_sso !== undefined) set.enforceSso = patch.enforce_sso;
    if (patch.enabled !== undefined) set.enabled = patch.enabled;
    await this.repo.updateIdp(ctx, before.id, set);
    await this.audit(ctx, { action: 'sso.idp.update', target: { type: 'sso_idp', id: before.id }, details: { changed: Object.keys(patch).filter((k) => k !== 'metadata_xml'), metadata_imported: patch.metadata_xml !== undefined } });
    return (await this.repo.idp(ctx, before.id))!;
  }

  async deleteIdp(ctx: RequestContext, id: string): Promise<void> {
    await this.requireWrite(ctx, id);
    if (!await this.repo.deleteIdp(ctx, id)) throw await this.hidden(ctx, id, 'sso.idp.delete');
    this.clients.forget(id);
    await this.audit(ctx, { action: 'sso.idp.delete', target: { type: 'sso_idp', id } });
  }

  async lastClaims(ctx: RequestContext, ref: string): Promise<LastClaims | null> {
    if (ref === PLATFORM_REF) {
      await this.d.identity.access.require(ctx, 'platform:users:read', {}, { type: 'sso_idp', id: ref });
      return (await this.d.settings.get<LastClaims>(PLATFORM_CLAIMS_KEY)) ?? null;
    }
    const row = await this.getIdp(ctx, ref);
    return row.lastClaims ? (JSON.parse(row.lastClaims) as LastClaims) : null;
  }

  /** Platform IdP view (platform admins). */
  async platformView(ctx: RequestContext) {
    await this.d.identity.access.require(ctx, 'platform:users:read', {}, { type: 'sso_idp', id: PLATFORM_REF });
    const c = this.d.config;
    return {
      object: 'sso_platform_idp' as const,
      configured: this.platformConfigured(),
      issuer: c.oidcIssuer ?? null,
      client_id: c.oidcClientId,
      internal_url: c.oidcInternalUrl ?? null,
      redirect_uri: c.publicUrl ? c.publicUrl.replace(/\/+$/, '') + OIDC_PATHS.callback : null,
      backchannel_logout_path: OIDC_PATHS.backchannelLogout,
      settings: await this.platformSettings(),
    };
  }

  /** Only platform admins set the platform IdP's mapping (the one mapping that may grant platform admin). */
  /** Takes the raw body: who asks is decided before the input is looked at (a tenant admin's
   * malformed body gets 403, never a 400 that describes the platform schema). */
  async setPlatformSettings(ctx: RequestContext, s: unknown): Promise<PlatformSettings> {
    if (!isPlatform(ctx)) {
      await this.audit(ctx, { action: 'sso.platform.update', outcome: 'denied', reason: 'platform_only', tenantId: null });
      throw new AppError(403, 'permission_denied', 'Only platform administrators change the platform IdP mapping.');
    }
    await this.d.identity.access.require(ctx, 'platform:users:write', {}, { type: 'sso_idp', id: PLATFORM_REF });
    const parsed = parseInput(platformSettingsSchema, s);
    await this.d.settings.set(PLATFORM_SETTINGS_KEY, parsed);
    await this.audit(ctx, { action: 'sso.platform.update', tenantId: null, target: { type: 'sso_idp', id: PLATFORM_REF }, details: { rules: parsed.rules.length, claim_source: parsed.claim_source } });
    return parsed;
  }

  /** Discovery check for `enclave sso test` and the admin API: no login, no tokens. */
  async test(ctx: RequestContext, ref: string): Promise<{ ok: boolean; reason: string | null; issuer: string; pkce_s256: boolean; end_session: boolean; last_claims: LastClaims | null }> {
    let idp: ResolvedIdp | undefined;
    if (ref === PLATFORM_REF) {
      await this.d.identity.access.require(ctx, 'platform:users:read', {}, { type: 'sso_idp', id: ref });
      idp = await this.platformIdp();
      if (!idp) throw new AppError(404, 'not_found', 'The platform IdP is not configured (ENCLAVE_OIDC_ISSUER, ENCLAVE_OIDC_CLIENT_SECRET_FILE).');
    } else {
      const row = await this.getIdp(ctx, ref);
      idp = this.fromRow(row, { id: row.tenantId, slug: ctx.tenant!.slug, status: 'active' });
      // SAML: nothing to discover; the settings were checked when saved.
      if (idp.protocol === 'saml') return { ok: true, reason: null, issuer: idp.endpoint.issuer, pkce_s256: false, end_session: false, last_claims: await this.lastClaims(ctx, ref) };
    }
    this.clients.forget(idp.ref);
    const last = await this.lastClaims(ctx, ref);
    try {
      const config = await this.clients.config(idp.endpoint);
      await this.clients.jwks(idp.endpoint);
      const m = config.serverMetadata();
      return { ok: true, reason: null, issuer: m.issuer, pkce_s256: true, end_session: Boolean(m.end_session_endpoint), last_claims: last };
    } catch (e) {
      return { ok: false, reason: classifyOidcError(e), issuer: idp.endpoint.issuer, pkce_s256: false, end_session: false, last_claims: last };
    }
  }
}

/** Bounded metric label for a login outcome. */
export const LOGIN_OUTCOMES = [
  'success',
  'transaction_missing',
  'state_mismatch',
  'issuer_mismatch',
  'idp_error',
  'token_invalid',
  'token_exchange_failed',
  'discovery_failed',
  'not_permitted',
  'other',
] as const;
function reasonLabel(reason: string): (typeof LOGIN_OUTCOMES)[number] {
  if ((LOGIN_OUTCOMES as readonly string[]).includes(reason)) return reason as (typeof LOGIN_OUTCOMES)[number];
  if (['iss_mismatch', 'aud_mismatch', 'alg_not_allowed', 'signature_invalid', 'nonce_mismatch', 'token_expired', 'iat_invalid', 'sub_missing', 'invalid_response'].includes(reason)) return 'token_invalid';
  if (['discovery_issuer_mismatch', 'idp_no_pkce', 'insecure_issuer', 'idp_unreachable'].includes(reason)) return 'discovery_failed';
  if (['email_domain_not_allowed', 'account_link_refused', 'not_provisioned', 'no_mapped_role', 'user_deactivated', 'platform_admin_requires_platform_idp', 'seat_limit', 'tenant_suspended', 'email_missing', 'email_domain_not_verified', 'identity_in_use', 'invitation_email_mismatch', 'invitation_invalid', 'not_a_member'].includes(reason)) return 'not_permitted';
  return 'other';
}

const MESSAGES: Record<string, string> = {
  idp_not_found: 'No such sign-in provider.',
  idp_disabled: 'This sign-in provider is disabled.',
  tenant_suspended: 'The organisation of this sign-in provider is suspended.',
  transaction_missing: 'The sign-in attempt expired or was already used; start again.',
  idp_changed: 'The sign-in provider changed during sign-in; start again.',
  state_mismatch: 'The sign-in response does not belong to this browser (state mismatch).',
  issuer_mismatch: 'The sign-in response comes from another identity provider (issuer mismatch).',
  idp_error: 'The identity provider refused the sign-in.',
  token_exchange_failed: 'The identity provider refused the authorization code (PKCE or client authentication).',
  iss_mismatch: 'The ID token was issued by another issuer.',
  aud_mismatch: 'The ID token is not meant for Enclave (audience).',
  alg_not_allowed: 'The ID token uses a signing algorithm Enclave does not accept.',
  signature_invalid: 'The ID token signature is not valid.',
  nonce_mismatch: 'The ID token nonce does not match the sign-in attempt.',
  token_expired: 'The ID token has expired.',
  iat_invalid: 'The ID token issue time is not acceptable.',
  sub_missing: 'The ID token has no subject.',
  invalid_response: 'The identity provider answered with an invalid response.',
  discovery_failed: 'The identity provider configuration could not be loaded.',
  discovery_issuer_mismatch: 'The identity provider advertises a different issuer than configured.',
  idp_no_pkce: 'The identity provider does not support PKCE S256.',
  idp_unreachable: 'The identity provider is unreachable.',
  email_domain_not_allowed: 'Your e-mail domain is not allowed for this sign-in provider.',
  email_missing: 'The identity provider sent no e-mail address.',
  account_link_refused: 'An account with this e-mail exists and cannot be linked automatically; ask an administrator.',
  not_provisioned: 'You have no Enclave account; ask an administrator.',
  no_mapped_role: 'Your identity provider groups give you no role in Enclave.',
  user_deactivated: 'Your Enclave account is deactivated.',
  platform_admin_requires_platform_idp: 'Platform administrators sign in through the platform sign-in provider.',
  seat_limit: 'The licence has no free seat for a new user.',
  email_domain_not_verified: "This sign-in provider may create accounts only for e-mail domains a platform administrator verified for its organisation; ask to be invited instead.",
  identity_in_use: 'This identity-provider account is already linked to another Enclave account.',
  invitation_email_mismatch: 'The identity provider signed you in with an address other than the invited one (or did not verify it).',
  not_a_member: 'You are not a member of this organisation; ask its administrator for an invitation.',
  invitation_invalid: 'This invitation does not exist, has expired, or was already used or withdrawn; ask for a new one.',
};

/** The sign-in policy columns every IdP row has, whatever its protocol (OIDC and SAML create alike). */
function idpPolicyColumns(input: Pick<IdpInput, 'mapping' | 'default_role' | 'allowed_domains' | 'jit' | 'enforce_sso' | 'enabled'>, now: number) {
  return {
    mapping: JSON.stringify(input.mapping ?? []),
    defaultRole: input.default_role ?? null,
    allowedDomains: JSON.stringify(input.allowed_domains ?? []),
    jit: input.jit ?? false,
    enforceSso: input.enforce_sso ?? false,
    enabled: input.enabled ?? true,
    createdAt: now,
    updatedAt: now,
  };
}
