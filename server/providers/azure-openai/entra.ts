import type { EgressPolicy } from '../egress.js';
import { UpstreamError } from '../types.js';
import { parseOrigin, readAll, send, toUpstreamError, type Origin } from '../upstream-http.js';

/**
 * Microsoft Entra ID access tokens by the OAuth 2.0 client-credentials grant (an app
 * registration's client id and secret), for Azure OpenAI's `Authorization: Bearer`. One token
 * is cached per deployment configuration and refreshed before it expires (when less than a
 * quarter of its lifetime, at most 5 minutes, is left), by one request however many calls
 * need it at that moment. A failed refresh is not cached: the next call tries again.
 *
 * Errors: the endpoint refusing the credentials (400/401 `invalid_client`, `unauthorized_client`
 * …) is `provider_auth_failed` naming Entra's error code (its description can quote ids but
 * never the secret; only the code is kept); 5xx and connection failures are retryable.
 */
export const COGNITIVE_SCOPE = 'https://cognitiveservices.azure.com/.default';
const FETCH_TIMEOUT_MS = 15_000;
const MAX_MARGIN_MS = 5 * 60_000;

export interface EntraConfig {
  readonly tokenUrl: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly scope?: string;
  readonly egress?: EgressPolicy | undefined;
}

export class EntraTokenSource {
  private readonly origin: Origin;
  private readonly path: string;
  private token: { value: string; refreshAt: number; expiresAt: number } | undefined;
  private pending: Promise<string> | undefined;
  /** Token requests made (tests and metrics of the cache). */
  fetches = 0;

  constructor(
    private readonly cfg: EntraConfig,
    private readonly now: () => number = Date.now,
  ) {
    const u = new URL(cfg.tokenUrl);
    this.origin = parseOrigin(u.origin, cfg.egress);
    this.path = u.pathname + u.search;
  }

  /** A valid token; waits for a refresh only when the cached one is due (or gone). */
  async get(signal: AbortSignal): Promise<string> {
    const t = this.token;
    const now = this.now();
    if (t && now < t.refreshAt) return t.value;
    this.pending ??= this.fetch().finally(() => {
      this.pending = undefined;
    });
    // Another caller's abort must not cancel a refresh this one waits for: each waits on its own signal.
    return abortable(this.pending, signal);
  }

  private async fetch(): Promise<string> {
    this.fetches++;
    const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: this.cfg.clientId, client_secret: this.cfg.clientSecret, scope: this.cfg.scope ?? COGNITIVE_SCOPE });
    let status: number;
    let text: string;
    try {
      const res = await send(this.origin, 'POST', this.path, { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }, form.toString(), AbortSignal.timeout(FETCH_TIMEOUT_MS));
      status = res.status;
      text = (await readAll(res, 256 * 1024)).toString('utf8');
    } catch (e) {
      const u = toUpstreamError(e);
      if (u instanceof UpstreamError) throw new UpstreamError(u.code, `Entra ID token endpoint: ${u.message}`);
      throw new UpstreamError('provider_timeout', 'Entra ID token endpoint did not answer in time.');
    }
    let body: { access_token?: unknown; expires_in?: unknown; error?: unknown } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      // below: no token in it
    }
    if (status >= 500) throw new UpstreamError('provider_server_error', `Entra ID token endpoint answered ${status}.`, status);
    if (status === 429) throw new UpstreamError('provider_rate_limited', 'Entra ID token endpoint is rate-limiting.', status);
    if (status >= 400) {
      const code = typeof body.error === 'string' ? body.error.replace(/[^a-z_]/gi, '').slice(0, 60) : `HTTP ${status}`;
      throw new UpstreamError('provider_auth_failed', `Entra ID refused the client credentials (${code}).`, 401);
    }
    const expiresIn = Number(body.expires_in);
    if (typeof body.access_token !== 'string' || !body.access_token || !Number.isFinite(expiresIn) || expiresIn <= 0) {
      throw new UpstreamError('provider_bad_response', 'Entra ID token endpoint answered without an access token.');
    }
    const now = this.now();
    const life = expiresIn * 1000;
    this.token = { value: body.access_token, expiresAt: now + life, refreshAt: now + life - Math.min(MAX_MARGIN_MS, life / 4) };
    return body.access_token;
  }
}

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(Object.assign(new Error('This operation was aborted'), { name: 'AbortError' }));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(Object.assign(new Error('This operation was aborted'), { name: 'AbortError' }));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
