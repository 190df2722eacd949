import { createHash } from 'node:crypto';
import * as client from 'openid-client';
import * as jose from 'jose';

/**
 * openid-client configurations per IdP, with Enclave's relying-party profile on top of the
 * library defaults (docs/sso.md, checklist in the SSO issue):
 *  - discovery from the pinned issuer URL (metadata `issuer` must equal it);
 *  - ID token signatures verified (enableNonRepudiationChecks), alg pinned to RS256;
 *  - clock tolerance 30 s;
 *  - PKCE S256 required from the IdP's metadata;
 *  - optional origin rewrite (customFetch) so one canonical public issuer is reached over an
 *    internal address (compose: https://<public>/auth → http://keycloak:8080/auth);
 *  - plain http only for loopback issuers and only when explicitly allowed (tests).
 */
export const ID_TOKEN_ALG = 'RS256';
export const CLOCK_TOLERANCE_S = 30;
const TTL_MS = 5 * 60_000;

export interface IdpEndpoint {
  readonly ref: string;
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** Origin to use instead of the issuer's origin for server-to-server calls. */
  readonly internalOrigin?: string | undefined;
}

export class SsoError extends Error {
  override readonly name = 'SsoError';
  constructor(
    readonly reason: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

/** A fetch that sends requests for `publicOrigin` to `internalOrigin` instead. */
export function originRewrite(publicOrigin: string, internalOrigin: string): client.CustomFetch {
  const from = new URL(publicOrigin).origin;
  const to = new URL(internalOrigin).origin;
  return (url, options) => {
    const target = url.startsWith(from + '/') || url === from ? to + url.slice(from.length) : url;
    return fetch(target, options as RequestInit);
  };
}

interface Cached {
  readonly key: string;
  readonly at: number;
  readonly config: client.Configuration;
  jwks?: ReturnType<typeof jose.createRemoteJWKSet>;
}

export class OidcClients {
  private readonly cache = new Map<string, Cached>();

  constructor(private readonly opts: { allowLoopbackHttp: boolean; now: () => number }) {}

  private fetchFor(idp: IdpEndpoint): client.CustomFetch | undefined {
    return idp.internalOrigin ? originRewrite(idp.issuer, idp.internalOrigin) : undefined;
  }

  private insecureAllowed(issuer: string): boolean {
    const u = new URL(issuer);
    return this.opts.allowLoopbackHttp && u.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);
  }

  /** The discovered configuration (cached 5 min per IdP settings). */
  async config(idp: IdpEndpoint): Promise<client.Configuration> {
    const key = createHash('sha256').update(JSON.stringify([idp.issuer, idp.clientId, idp.clientSecret, idp.internalOrigin ?? ''])).digest('hex');
    const hit = this.cache.get(idp.ref);
    if (hit && hit.key === key && Date.now() - hit.at < TTL_MS) return hit.config;
    const execute = [client.enableNonRepudiationChecks];
    if (this.insecureAllowed(idp.issuer)) execute.push(client.allowInsecureRequests);
    const customFetch = this.fetchFor(idp);
    let config: client.Configuration;
    try {
      config = await client.discovery(
        new URL(idp.issuer),
        idp.clientId,
        {
          client_secret: idp.clientSecret,
          id_token_signed_response_alg: ID_TOKEN_ALG,
          [client.clockTolerance]: CLOCK_TOLERANCE_S,
          [client.clockSkew]: Math.round((this.opts.now() - Date.now()) / 1000),
        },
        client.ClientSecretBasic(idp.clientSecret),
        { execute, timeout: 10, ...(customFetch ? { [client.customFetch]: customFetch } : {}) },
      );
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED') {
        throw new SsoError('discovery_issuer_mismatch', 'The IdP advertises an issuer different from the configured one.', 502);
      }
      if (code === 'OAUTH_HTTP_REQUEST_FORBIDDEN' || code === 'ERR_INVALID_ARG_VALUE') {
        throw new SsoError('insecure_issuer', 'The IdP issuer must use https.', 502);
      }
      throw new SsoError('discovery_failed', 'The IdP discovery document could not be fetched or is invalid.', 502);
    }
    const methods = config.serverMetadata().code_challenge_methods_supported;
    if (!methods?.includes('S256')) {
      throw new SsoError('idp_no_pkce', 'The IdP does not advertise PKCE S256 (code_challenge_methods_supported); Enclave requires it.', 502);
    }
    this.cache.set(idp.ref, { key, at: Date.now(), config });
    return config;
  }

  /** Remote JWKS of the IdP (for logout tokens and access-token claims), through the same fetch. */
  async jwks(idp: IdpEndpoint): Promise<ReturnType<typeof jose.createRemoteJWKSet>> {
    const config = await this.config(idp);
    const cached = this.cache.get(idp.ref)!;
    if (cached.jwks) return cached.jwks;
    const uri = config.serverMetadata().jwks_uri;
    if (!uri) throw new SsoError('discovery_failed', 'The IdP advertises no jwks_uri.', 502);
    const customFetch = this.fetchFor(idp);
    cached.jwks = jose.createRemoteJWKSet(new URL(uri), customFetch ? { [jose.customFetch]: customFetch as never } : {});
    return cached.jwks;
  }

  forget(ref: string): void {
    this.cache.delete(ref);
  }
}

/** A stable reason code for a failed code exchange or ID token validation (never token content). */
export function classifyOidcError(e: unknown): string {
  if (e instanceof SsoError) return e.reason;
  if (e instanceof client.AuthorizationResponseError) return 'idp_error';
  if (e instanceof client.ResponseBodyError) return 'token_exchange_failed';
  // openid-client wraps oauth4webapi's errors (ClientError → OperationProcessingError → {claim}).
  const err = e as { code?: string; message?: string; cause?: unknown };
  let msg = err.message ?? '';
  let claim: string | undefined;
  let cur: unknown = err.cause;
  for (let i = 0; i < 4 && cur && typeof cur === 'object'; i++) {
    const c = cur as { message?: unknown; claim?: unknown; cause?: unknown };
    if (typeof c.message === 'string') msg += ` | ${c.message}`;
    if (typeof c.claim === 'string') claim ??= c.claim;
    cur = c.cause;
  }
  if (/"alg"/.test(msg)) return 'alg_not_allowed';
  if (err.code === 'OAUTH_KEY_SELECTION_FAILED' || /signature|key/i.test(msg)) return 'signature_invalid';
  if (claim === 'iss' || /"iss"/.test(msg)) return 'iss_mismatch';
  if (claim === 'aud' || claim === 'azp' || /"aud"|"azp"/.test(msg)) return 'aud_mismatch';
  if (claim === 'nonce' || /nonce/i.test(msg)) return 'nonce_mismatch';
  if (claim === 'exp' || /"exp"/.test(msg)) return 'token_expired';
  if (claim === 'iat' || /"iat"/.test(msg)) return 'iat_invalid';
  if (claim === 'sub' || /"sub"/.test(msg)) return 'sub_missing';
  if (/state/i.test(msg)) return 'state_mismatch';
  if (/fetch failed|ECONNREFUSED|timeout/i.test(msg)) return 'idp_unreachable';
  return 'invalid_response';
}
