import { importPKCS8, SignJWT, type CryptoKey } from 'jose';
import type { EgressPolicy } from '../egress.js';
import { parseOrigin, readAll, send, toUpstreamError, type Origin } from '../upstream-http.js';
import { UpstreamError } from '../types.js';

/**
 * OAuth access tokens for a Google service account (the JSON key an administrator
 * downloads): a JWT signed RS256 with the key's private key (iss = the account's e-mail,
 * aud = the key's token_uri, scope cloud-platform, one hour), exchanged at the token_uri
 * for an access token (RFC 7523 jwt-bearer grant). The token is cached and fetched again
 * five minutes before it expires, one fetch at a time for every caller. The token endpoint
 * is reached through the deployment's egress policy like the API itself.
 */
export interface ServiceAccountKey {
  readonly client_email: string;
  readonly private_key: string;
  readonly private_key_id?: string;
  readonly token_uri: string;
  readonly project_id?: string;
}

const SCOPE = 'https://www.googleapis.com/auth/cloud-platform';
const REFRESH_BEFORE_MS = 5 * 60_000;
const TOKEN_TIMEOUT_MS = 15_000;

/** The key JSON, checked: what is wrong with it is said without echoing any of it. */
export function parseServiceAccount(json: string | undefined): ServiceAccountKey {
  if (!json) throw new UpstreamError('provider_auth_failed', 'Vertex: the deployment has no service-account key.');
  let k: Record<string, unknown>;
  try {
    k = JSON.parse(json) as Record<string, unknown>;
  } catch {
    throw new UpstreamError('provider_auth_failed', 'Vertex: the service-account key is not valid JSON.');
  }
  if (k.type !== undefined && k.type !== 'service_account') throw new UpstreamError('provider_auth_failed', `Vertex: the key is of type ${String(k.type).slice(0, 40)}, not service_account.`);
  for (const f of ['client_email', 'private_key'] as const) {
    if (typeof k[f] !== 'string' || !k[f]) throw new UpstreamError('provider_auth_failed', `Vertex: the service-account key has no ${f}.`);
  }
  const tokenUri = typeof k.token_uri === 'string' && k.token_uri ? k.token_uri : 'https://oauth2.googleapis.com/token';
  if (!/^https?:\/\//.test(tokenUri)) throw new UpstreamError('provider_auth_failed', 'Vertex: the service-account key’s token_uri is not an http(s) URL.');
  return {
    client_email: k.client_email as string,
    private_key: k.private_key as string,
    private_key_id: typeof k.private_key_id === 'string' ? k.private_key_id : undefined,
    token_uri: tokenUri,
    project_id: typeof k.project_id === 'string' ? k.project_id : undefined,
  };
}

export class ServiceAccountTokens {
  private token: { value: string; expiresAt: number } | undefined;
  private inflight: Promise<string> | undefined;
  private key: Promise<CryptoKey> | undefined;
  private readonly origin: Origin;
  private readonly path: string;

  constructor(
    private readonly sa: ServiceAccountKey,
    egress: EgressPolicy | undefined,
    private readonly now: () => number = Date.now,
  ) {
    const u = new URL(sa.token_uri);
    this.origin = parseOrigin(u.origin, egress);
    this.path = u.pathname + u.search;
  }

  /** A valid access token (cached). A caller's abort leaves the shared fetch running for the others. */
  get(signal: AbortSignal): Promise<string> {
    const t = this.token;
    if (t && t.expiresAt - REFRESH_BEFORE_MS > this.now()) return Promise.resolve(t.value);
    if (signal.aborted) return Promise.reject(Object.assign(new Error('This operation was aborted'), { name: 'AbortError' }));
    this.inflight ??= this.fetch().finally(() => {
      this.inflight = undefined;
    });
    return new Promise<string>((resolve, reject) => {
      const onAbort = (): void => reject(Object.assign(new Error('This operation was aborted'), { name: 'AbortError' }));
      signal.addEventListener('abort', onAbort, { once: true });
      this.inflight!.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /** Forget the cached token (the API refused it: revoked or rotated). */
  invalidate(): void {
    this.token = undefined;
  }

  private async assertion(): Promise<string> {
    this.key ??= importPKCS8(this.sa.private_key, 'RS256').catch(() => {
      this.key = undefined;
      throw new UpstreamError('provider_auth_failed', 'Vertex: the service-account key’s private_key is not a PKCS#8 RSA key.');
    });
    const now = Math.floor(this.now() / 1000);
    return new SignJWT({ scope: SCOPE })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', ...(this.sa.private_key_id ? { kid: this.sa.private_key_id } : {}) })
      .setIssuer(this.sa.client_email)
      .setSubject(this.sa.client_email)
      .setAudience(this.sa.token_uri)
      .setIssuedAt(now)
      .setExpirationTime(now + 3600)
      .sign(await this.key);
  }

  private async fetch(): Promise<string> {
    const body = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: await this.assertion() }).toString();
    let res: Awaited<ReturnType<typeof send>>;
    try {
      res = await send(this.origin, 'POST', this.path, { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }, body, AbortSignal.timeout(TOKEN_TIMEOUT_MS));
    } catch (e) {
      const u = toUpstreamError(e);
      throw u instanceof UpstreamError ? new UpstreamError(u.code, `Vertex: the token endpoint: ${u.message}`) : new UpstreamError('provider_timeout', 'Vertex: the token endpoint did not answer in time.');
    }
    let text = '';
    try {
      text = (await readAll(res, 256 * 1024)).toString('utf8');
    } catch {
      // handled by the status below
    }
    let j: { access_token?: unknown; expires_in?: unknown; error?: unknown; error_description?: unknown } = {};
    try {
      j = JSON.parse(text) as typeof j;
    } catch {
      // not JSON: the status says enough
    }
    if (res.status !== 200 || typeof j.access_token !== 'string') {
      // OAuth errors (invalid_grant: a deleted key, a wrong account, a clock off) are safe to show: they carry no secret.
      const why = typeof j.error === 'string' ? `${j.error}${typeof j.error_description === 'string' ? `: ${j.error_description.slice(0, 200)}` : ''}` : `HTTP ${res.status}`;
      const code = res.status >= 500 ? 'provider_server_error' : res.status === 429 ? 'provider_rate_limited' : 'provider_auth_failed';
      throw new UpstreamError(code, `Vertex: the token endpoint refused the service account (${why}).`, res.status);
    }
    const ttl = typeof j.expires_in === 'number' ? j.expires_in : 3600;
    this.token = { value: j.access_token, expiresAt: this.now() + ttl * 1000 };
    return j.access_token;
  }
}
