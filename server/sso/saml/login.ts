import type { CacheProvider } from '@node-saml/node-saml';
import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Config } from '../../config/settings.js';
import type { RequestContext } from '../../context.js';
import { AppError } from '../../errors.js';
import type { ResolvedIdp, SsoService } from '../service.js';
import { TX_TTL_S } from '../service.js';
import { classifySamlError, SKEW_MS, samlClient, verifyResponse, type SamlEndpoint, type VerifiedAssertion } from './verify.js';

/**
 * SAML 2.0 SP-initiated login for tenant IdPs (issue 24): AuthnRequest over HTTP-Redirect,
 * the response over HTTP-POST to the IdP's ACS. The request id is kept server-side in Redis
 * (TTL, single use: the POST from the IdP is cross-site, so no SameSite=Lax cookie comes
 * with it), assertion ids go to a replay cache until their NotOnOrAfter. After verification
 * the same identity-authority rules and mapping as OIDC apply (SsoService.completeLogin).
 */
export const SAML_PATHS = {
  login: (id: string) => `/auth/saml/${id}/login`,
  acs: (id: string) => `/auth/saml/${id}/acs`,
  metadata: (id: string) => `/auth/saml/${id}/metadata`,
};

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
const MAX_REPLAY_TTL_MS = 24 * 3600_000;

interface SamlTx {
  readonly returnTo: string;
  readonly at: number;
}

export class SamlLogin {
  constructor(
    private readonly sso: SsoService,
    private readonly d: { config: Config; redis: Redis | undefined },
  ) {}

  private get redis(): Redis {
    if (!this.d.redis) throw new AppError(503, 'redis_unavailable', 'SSO logins need Redis.');
    return this.d.redis;
  }

  private base(origin: string): string {
    return this.d.config.publicUrl?.replace(/\/+$/, '') ?? origin;
  }

  /** Our SP entity id for this IdP is its metadata URL (unique per IdP, stable). */
  endpoint(idp: ResolvedIdp, origin: string): SamlEndpoint {
    const b = this.base(origin);
    return { entityId: idp.endpoint.issuer, spEntityId: b + SAML_PATHS.metadata(idp.ref), acsUrl: b + SAML_PATHS.acs(idp.ref), settings: idp.saml! };
  }

  /** node-saml's request-id cache, in Redis per IdP: what it stores proves we issued the request. */
  private requests(idpRef: string): CacheProvider {
    const key = (id: string) => `sso:saml:req:${sha256(`${idpRef}\n${id}`)}`;
    return {
      saveAsync: async (id, value) => {
        await this.redis.set(key(id), value, 'EX', TX_TTL_S);
        return { value, createdAt: Date.now() };
      },
      getAsync: async (id) => this.redis.get(key(id)),
      removeAsync: async (id) => {
        if (id) await this.redis.del(key(id));
        return id;
      },
    };
  }

  private async idp(ctx: RequestContext, ref: string): Promise<ResolvedIdp> {
    const idp = await this.sso.resolve(ref);
    if (!idp || idp.protocol !== 'saml') throw await this.sso.fail(ctx, idp, 'idp_not_found', 404, { idp: ref.slice(0, 40) });
    if (!idp.enabled) throw await this.sso.fail(ctx, idp, 'idp_disabled', 404);
    if (idp.tenant?.status === 'suspended') throw await this.sso.fail(ctx, idp, 'tenant_suspended', 403);
    return idp;
  }

  /** The AuthnRequest redirect URL (HTTP-Redirect binding, deflated). */
  async startLogin(ctx: RequestContext, ref: string, input: { returnTo: string; origin: string }): Promise<string> {
    const idp = await this.idp(ctx, ref);
    const requestId = `_${randomBytes(20).toString('hex')}`;
    const ep = this.endpoint(idp, input.origin);
    const tx: SamlTx = { returnTo: input.returnTo, at: Date.now() };
    await this.redis.set(`sso:saml:tx:${sha256(`${idp.ref}\n${requestId}`)}`, JSON.stringify(tx), 'EX', TX_TTL_S);
    const url = await samlClient(ep, this.requests(idp.ref), requestId).getAuthorizeUrlAsync('', undefined, {});
    return url;
  }

  /** The ACS: verify, bind to our request (or an opted-in unsolicited login), replay cache, then the shared login. */
  async acs(ctx: RequestContext, ref: string, body: Record<string, unknown> | undefined, origin: string): Promise<{ token: string; returnTo: string; userId: string }> {
    const idp = await this.idp(ctx, ref);
    const response = body?.SAMLResponse;
    if (typeof response !== 'string' || !response) throw await this.sso.fail(ctx, idp, 'response_missing');
    let a: VerifiedAssertion;
    try {
      a = await verifyResponse(this.endpoint(idp, origin), this.requests(idp.ref), response);
    } catch (e) {
      throw await this.sso.fail(ctx, idp, classifySamlError(e));
    }
    let returnTo = '/';
    if (a.inResponseTo) {
      const raw = await this.redis.getdel(`sso:saml:tx:${sha256(`${idp.ref}\n${a.inResponseTo}`)}`);
      if (!raw) throw await this.sso.fail(ctx, idp, 'in_response_to_invalid');
      returnTo = (JSON.parse(raw) as SamlTx).returnTo;
    } else if (!idp.saml!.allow_idp_initiated) {
      throw await this.sso.fail(ctx, idp, 'unsolicited_response');
    }
    // Replay cache: an assertion id is accepted once until its NotOnOrAfter (plus the skew).
    const ttl = Math.min(MAX_REPLAY_TTL_MS, Math.max(1000, (a.notOnOrAfter ?? Date.now() + 600_000) - Date.now() + SKEW_MS));
    const fresh = await this.redis.set(`sso:saml:aid:${sha256(`${a.issuer}\n${a.assertionId}`)}`, '1', 'PX', ttl, 'NX');
    if (fresh !== 'OK') throw await this.sso.fail(ctx, idp, 'assertion_replayed');

    const s = idp.saml!;
    const first = (name: string | null) => (name ? a.attributes[name]?.[0] : undefined);
    const email = first(s.email_attribute) ?? (a.nameId.includes('@') ? a.nameId : undefined);
    return this.sso.completeLogin(
      ctx,
      idp,
      {
        iss: a.issuer,
        sub: a.nameId,
        email,
        // The tenant's IdP is its directory: an address it asserts counts as verified; what it
        // may do with it is still bounded by the verified-domain rules (server/sso/authority.ts).
        emailVerified: email !== undefined,
        emailVerifiedKnown: false,
        name: first(s.name_attribute),
        values: { roles: s.roles_attribute ? (a.attributes[s.roles_attribute] ?? []) : [], groups: s.groups_attribute ? (a.attributes[s.groups_attribute] ?? []) : [] },
        claimNames: Object.keys(a.attributes).slice(0, 100),
        sid: a.sessionIndex,
        idToken: null,
      },
      { returnTo },
    );
  }

  /** SP metadata for the IdP's administrator (entity id, ACS, wants signed assertions). */
  async metadata(ctx: RequestContext, ref: string, origin: string): Promise<string> {
    const idp = await this.sso.resolve(ref);
    if (!idp || idp.protocol !== 'saml') throw new AppError(404, 'not_found', 'IdP not found');
    void ctx;
    const ep = this.endpoint(idp, origin);
    // Advertises WantAssertionsSigned="true" (what IdPs should do); a signed response alone is
    // still accepted (verify.ts), as the issue allows either signature.
    return samlClient(ep, this.requests(idp.ref), undefined, { advertise: true }).generateServiceProviderMetadata(null, null);
  }
}
