import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { request, type Dispatcher } from 'undici';
import { z } from 'zod';
import type { Clock } from '../clock.js';
import type { SecretBox } from '../config/secret-box.js';
import type { MeteringRepo, NotificationRow } from '../db/repos/metering.js';
import { secretAad } from '../db/secret-columns.js';
import { AppError } from '../errors.js';
import { egressPolicy, refusedBaseUrl, type EgressPolicy } from '../providers/egress.js';
import { guardedAgent } from '../providers/guarded-agent.js';

/**
 * Soft-limit webhooks: each notification (server/metering/index.ts alert()) is POSTed to the
 * tenant's `webhook_url` by a job on the `maintenance` lane (server/jobs/webhooks.ts) — never
 * by the API process while it answers a request. The body is signed with the tenant's
 * secret (HMAC-SHA256, Stripe-style):
 *
 *   X-Enclave-Signature: t=<unix seconds>,v1=<hex hmac_sha256(secret, "<t>.<raw body>")>
 *
 * The secret (`whsec_…`) is issued when a URL is first set (or rotated), shown once, and
 * stored as a SecretBox ciphertext (metering_settings.webhook_secret).
 *
 * Where it may go: the URL is the tenant administrator's choice and the worker POSTs from
 * inside the perimeter, so it follows the outbound rule of tenant-private providers
 * (server/providers/egress.ts, ENCLAVE_TENANT_PROVIDER_NETWORKS): no loopback, link-local
 * (cloud metadata), unspecified or multicast addresses by default, only the listed networks
 * when that is set. Checked when the URL is saved (IP literals and localhost: a clear 400)
 * and on every connection after name resolution (a name that resolves — or re-resolves —
 * to a refused address is refused). Redirects are never followed; each attempt is bounded
 * (connect, headers, whole attempt) and at most WEBHOOK_MAX_RESPONSE_BYTES of the answer are read.
 */
export const SIGNATURE_HEADER = 'x-enclave-signature';
export const WEBHOOK_EVENT = 'quota.alert';
/** Per attempt; the job retries (exponential backoff) on timeouts, network errors and non-2xx. */
export const WEBHOOK_TIMEOUT_MS = 10_000;
/** Read (and thrown away) from a receiver's answer at most; the connection is closed past it. */
export const WEBHOOK_MAX_RESPONSE_BYTES = 64 * 1024;

/** Why the egress rule refuses this webhook URL when it is saved (IP literals and localhost), or null. */
export function refusedWebhookUrl(policy: EgressPolicy, url: string): string | null {
  return refusedBaseUrl(policy, url);
}

const DEFAULT_EGRESS = egressPolicy(undefined);
const agents = new WeakMap<EgressPolicy, Dispatcher>();
function agentFor(policy: EgressPolicy): Dispatcher {
  let a = agents.get(policy);
  if (!a) {
    a = guardedAgent(policy, { connectTimeoutMs: 5_000, headersTimeoutMs: WEBHOOK_TIMEOUT_MS, bodyTimeoutMs: WEBHOOK_TIMEOUT_MS });
    agents.set(policy, a);
  }
  return a;
}

/** http(s) only, no credentials in the URL. */
export const webhookUrlSchema = z
  .string()
  .max(2000)
  .url()
  .refine((u) => {
    try {
      const x = new URL(u);
      return (x.protocol === 'http:' || x.protocol === 'https:') && !x.username && !x.password;
    } catch {
      return false;
    }
  }, 'an http:// or https:// URL without credentials');

export function signPayload(secret: string, body: string, t: number): string {
  const ts = Math.floor(t);
  return `t=${ts},v1=${createHmac('sha256', secret).update(`${ts}.${body}`).digest('hex')}`;
}

/** For receivers (and tests): checks the signature and that t is within `toleranceS` of now. */
export function verifySignature(secret: string, body: string, header: string | undefined, nowS: number, toleranceS = 300): boolean {
  if (!header) return false;
  const parts = Object.fromEntries(header.split(',').map((p) => p.split('=', 2) as [string, string]));
  const t = Number(parts.t);
  if (!Number.isInteger(t) || !parts.v1 || Math.abs(nowS - t) > toleranceS) return false;
  const want = Buffer.from(createHmac('sha256', secret).update(`${t}.${body}`).digest('hex'));
  const got = Buffer.from(parts.v1);
  return got.length === want.length && timingSafeEqual(got, want);
}

export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}

const aad = (tenantId: string): string => secretAad('metering_settings', 'webhook_secret', tenantId);

/** Issues, reads and clears a tenant's webhook secret (encrypted at rest). */
export class WebhookSecrets {
  constructor(
    private readonly repo: MeteringRepo,
    private readonly box: SecretBox | undefined,
  ) {}

  /** A new secret (replacing any), returned in clear once. The metering_settings row must exist. */
  async issue(tenantId: string): Promise<string> {
    if (!this.box) throw new AppError(503, 'secrets_unavailable', 'Webhook secrets need the master key (SecretBox) in this process.');
    const s = newWebhookSecret();
    await this.repo.setWebhookSecret(tenantId, this.box.encrypt(s, aad(tenantId)));
    return s;
  }

  async has(tenantId: string): Promise<boolean> {
    return (await this.repo.webhookSecret(tenantId)) !== null;
  }

  async get(tenantId: string): Promise<string | undefined> {
    const c = await this.repo.webhookSecret(tenantId);
    if (!c || !this.box) return undefined;
    return this.box.decrypt(c, aad(tenantId));
  }

  async clear(tenantId: string): Promise<void> {
    await this.repo.setWebhookSecret(tenantId, null);
  }
}

export function webhookBody(n: NotificationRow, tenant: { id: string; slug: string }): string {
  return JSON.stringify({
    id: n.id,
    type: WEBHOOK_EVENT,
    created_at: new Date(n.createdAt).toISOString(),
    tenant: { id: tenant.id, slug: tenant.slug },
    data: { window: n.window, limit: n.limitName, threshold: n.threshold, used: n.used, limit_value: n.limitValue },
  });
}

export interface DeliverDeps {
  readonly repo: MeteringRepo;
  readonly secrets: WebhookSecrets;
  readonly clock: Clock;
  readonly log: Logger;
  /** Where deliveries may connect (ENCLAVE_TENANT_PROVIDER_NETWORKS); absent = the default rule. */
  readonly egress?: EgressPolicy;
}

export type DeliveryResult =
  | { readonly status: 'delivered'; readonly http_status: number }
  | { readonly status: 'skipped'; readonly reason: 'already_delivered' | 'not_found' | 'no_webhook' | 'no_secret' };

/**
 * One delivery attempt (the job's processor). Throws on anything but a 2xx answer so the job
 * is retried with backoff (a refused address too: the URL is read again at each attempt, so
 * a corrected one is honoured); marks the notification delivered on 2xx. Redirects are not
 * followed (a 3xx is a failure).
 */
export async function deliverNotification(d: DeliverDeps, tenantId: string, notificationId: string, signal?: AbortSignal): Promise<DeliveryResult> {
  const n = await d.repo.notification(tenantId, notificationId);
  if (!n) return { status: 'skipped', reason: 'not_found' };
  if (n.webhookDeliveredAt !== null) return { status: 'skipped', reason: 'already_delivered' };
  const t = await d.repo.tenant(tenantId);
  if (!t?.webhookUrl) return { status: 'skipped', reason: 'no_webhook' };
  const secret = await d.secrets.get(tenantId);
  if (!secret) return { status: 'skipped', reason: 'no_secret' };
  const body = webhookBody(n, t);
  const timeout = AbortSignal.timeout(WEBHOOK_TIMEOUT_MS);
  let status: number;
  try {
    const res = await request(t.webhookUrl, {
      method: 'POST',
      dispatcher: agentFor(d.egress ?? DEFAULT_EGRESS),
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      headers: {
        'content-type': 'application/json',
        'user-agent': 'Enclave-Webhooks/1',
        'x-enclave-event': WEBHOOK_EVENT,
        'x-enclave-delivery': n.id,
        [SIGNATURE_HEADER]: signPayload(secret, body, d.clock.now() / 1000),
      },
      body,
    });
    status = res.statusCode;
    // undici's request never follows redirects: a 3xx is a failed attempt like any non-2xx.
    await res.body.dump({ limit: WEBHOOK_MAX_RESPONSE_BYTES }).catch(() => {});
  } catch (e) {
    throw new Error(`webhook_unreachable: ${(e as Error).message}`);
  }
  if (status < 200 || status >= 300) throw new Error(`webhook_rejected: the receiver answered HTTP ${status}`);
  await d.repo.markWebhookDelivered(tenantId, n.id, d.clock.now());
  d.log.info({ tenantId, notificationId: n.id, status }, 'quota webhook delivered');
  return { status: 'delivered', http_status: status };
}
