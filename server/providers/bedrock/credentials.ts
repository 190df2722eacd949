import { Agent, request } from 'undici';
import { UpstreamError } from '../types.js';
import type { AwsCredentials } from './sigv4.js';

/**
 * Where a Bedrock deployment's AWS credentials come from, in the standard order:
 *  1. the deployment's own access key / secret (/ session token), stored encrypted;
 *  2. the standard environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 *     AWS_SESSION_TOKEN) — only when the admin enabled `use_instance_role`;
 *  3. the instance/container role through IMDSv2 (a session token by PUT, then the role's
 *     temporary credentials) — likewise only when enabled. The endpoint is the standard
 *     AWS_EC2_METADATA_SERVICE_ENDPOINT (default http://169.254.169.254), which is how the
 *     tests point it at a fake on 127.0.0.1. Temporary credentials are cached and fetched
 *     again five minutes before they expire (one fetch at a time).
 *
 * The environment and the role are the appliance's own: a tenant-private deployment (one
 * under an egress policy) never gets them — it must bring its own keys.
 */
export interface CredentialSource {
  get(signal: AbortSignal): Promise<AwsCredentials>;
}

export class StaticCredentials implements CredentialSource {
  constructor(private readonly c: AwsCredentials) {}
  get(): Promise<AwsCredentials> {
    return Promise.resolve(this.c);
  }
}

const REFRESH_BEFORE_MS = 5 * 60_000;
const IMDS_TIMEOUT_MS = 2_000;
// Its own small pool: IMDS is a link-local host, never one of the provider pools.
const imdsAgent = new Agent({ connect: { timeout: IMDS_TIMEOUT_MS }, keepAliveTimeout: 1_000 });

export class ImdsCredentials implements CredentialSource {
  private cached: AwsCredentials | undefined;
  private inflight: Promise<AwsCredentials> | undefined;

  constructor(
    private readonly endpoint: string,
    private readonly now: () => number = Date.now,
  ) {}

  get(signal: AbortSignal): Promise<AwsCredentials> {
    const c = this.cached;
    if (c && (c.expiresAt === undefined || c.expiresAt - REFRESH_BEFORE_MS > this.now())) return Promise.resolve(c);
    if (signal.aborted) return Promise.reject(Object.assign(new Error('This operation was aborted'), { name: 'AbortError' }));
    // One fetch for every caller waiting; a caller's abort does not cancel the others' fetch.
    this.inflight ??= this.fetch().finally(() => {
      this.inflight = undefined;
    });
    return abortable(this.inflight, signal);
  }

  private async fetch(): Promise<AwsCredentials> {
    const base = this.endpoint.replace(/\/+$/, '');
    const signal = AbortSignal.timeout(IMDS_TIMEOUT_MS * 2);
    const call = async (method: 'PUT' | 'GET', path: string, headers: Record<string, string>): Promise<string> => {
      let r: Awaited<ReturnType<typeof request>>;
      try {
        r = await request(`${base}${path}`, { method, headers, signal, dispatcher: imdsAgent });
      } catch (e) {
        throw new UpstreamError('provider_auth_failed', `Could not reach the instance metadata service for the container's role (${(e as Error).message.slice(0, 120)}).`);
      }
      const text = await r.body.text();
      if (r.statusCode !== 200) throw new UpstreamError('provider_auth_failed', `The instance metadata service answered ${r.statusCode} for ${path.split('/').slice(0, 5).join('/')}: no role credentials.`);
      return text;
    };
    const token = await call('PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '21600' });
    const h = { 'x-aws-ec2-metadata-token': token };
    const role = (await call('GET', '/latest/meta-data/iam/security-credentials/', h)).split('\n')[0]?.trim();
    if (!role) throw new UpstreamError('provider_auth_failed', 'The instance has no IAM role attached.');
    const doc = JSON.parse(await call('GET', `/latest/meta-data/iam/security-credentials/${encodeURIComponent(role)}`, h)) as {
      AccessKeyId?: string;
      SecretAccessKey?: string;
      Token?: string;
      Expiration?: string;
    };
    if (!doc.AccessKeyId || !doc.SecretAccessKey) throw new UpstreamError('provider_auth_failed', 'The instance metadata service returned no role credentials.');
    const exp = doc.Expiration ? Date.parse(doc.Expiration) : Number.NaN;
    this.cached = { accessKeyId: doc.AccessKeyId, secretAccessKey: doc.SecretAccessKey, sessionToken: doc.Token, expiresAt: Number.isFinite(exp) ? exp : undefined };
    return this.cached;
  }
}

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(Object.assign(new Error('This operation was aborted'), { name: 'AbortError' }));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(Object.assign(new Error('This operation was aborted'), { name: 'AbortError' }));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

export interface CredentialConfig {
  readonly credentials?: Readonly<Record<string, string>> | undefined;
  readonly useInstanceRole: boolean;
  /** Tenant-private deployment: the appliance's environment and role are off limits. */
  readonly tenantPrivate: boolean;
  readonly env?: NodeJS.ProcessEnv;
}

/** The credential source of a deployment, or an error that says what is missing (no secrets in it). */
export function credentialSource(c: CredentialConfig): CredentialSource {
  const id = c.credentials?.aws_access_key_id;
  const secret = c.credentials?.aws_secret_access_key;
  if (id && secret) return new StaticCredentials({ accessKeyId: id.trim(), secretAccessKey: secret.trim(), sessionToken: c.credentials?.aws_session_token?.trim() || undefined });
  if (c.useInstanceRole && !c.tenantPrivate) {
    const env = c.env ?? process.env;
    if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
      return new StaticCredentials({ accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, sessionToken: env.AWS_SESSION_TOKEN || undefined });
    }
    return new ImdsCredentials(env.AWS_EC2_METADATA_SERVICE_ENDPOINT || 'http://169.254.169.254');
  }
  const why = c.useInstanceRole
    ? 'a tenant-private Bedrock deployment cannot use the appliance’s own AWS role; give it an access key and secret'
    : 'no AWS credentials: give an access key and secret, or enable use_instance_role';
  return { get: () => Promise.reject(new UpstreamError('provider_auth_failed', `Bedrock: ${why}.`)) };
}
