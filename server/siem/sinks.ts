import { and, asc, eq, sql } from 'drizzle-orm';
import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import type { AuditLog } from '../audit/log.js';
import type { Clock } from '../clock.js';
import type { SecretBox } from '../config/secret-box.js';
import type { RequestContext } from '../context.js';
import type { siemSinks } from '../db/schema.js';
import type { Store } from '../db/store.js';
import { secretAad } from '../db/secret-columns.js';
import { AppError } from '../errors.js';
import { newId } from '../ids.js';
import { newWebhookSecret, webhookUrlSchema } from '../metering/webhooks.js';
import { refusedBaseUrl, refusedIpHost, type EgressPolicy } from '../providers/egress.js';

/**
 * SIEM sinks (platform-wide configuration, issue 25): where the audit log is streamed. A
 * platform administrator adds them with `enclave siem sinks add` (audited); the forwarder
 * (./forwarder.ts) delivers. `config` holds no secret: certificate and key files are named by
 * path (read at each delivery, so a rotated file is picked up); the webhook's HMAC key is a
 * SecretBox ciphertext in `secret`, shown once when the sink is added.
 *
 * Where a sink may connect follows the outbound rule of everything else an administrator
 * points the appliance at (server/providers/egress.ts, ENCLAVE_TENANT_PROVIDER_NETWORKS): no
 * loopback, link-local (cloud metadata), unspecified or multicast address unless that setting
 * lists it. Checked when the sink is added (IP literals and localhost: a clear error) and on
 * every connection after name resolution.
 */
export type SinkRow = typeof siemSinks.$inferSelect;
export const SINK_KINDS = ['syslog', 'webhook', 'otlp'] as const;
export type SinkKind = (typeof SINK_KINDS)[number];

const file = z.string().min(1).max(4096);
export const syslogConfigSchema = z
  .object({
    host: z.string().min(1).max(253),
    port: z.number().int().min(1).max(65535).default(6514),
    /** PEM of the CA that signed the receiver's certificate; unset: the system CAs. */
    ca_file: file.optional(),
    /** Client certificate and key (mutual TLS), both or neither. */
    cert_file: file.optional(),
    key_file: file.optional(),
    /** The name the receiver's certificate must carry, when it is not `host`. */
    server_name: z.string().min(1).max(253).optional(),
    /** HOSTNAME field of each message; default: this host's name. */
    hostname: z.string().min(1).max(255).optional(),
  })
  .strict()
  .refine((c) => !c.cert_file === !c.key_file, 'cert_file and key_file go together (mutual TLS)');
export type SyslogConfig = z.infer<typeof syslogConfigSchema>;

export const webhookConfigSchema = z
  .object({
    /** https:// (a private CA: NODE_EXTRA_CA_CERTS, docs/siem.md); http:// only where the egress rule allows it. */
    url: webhookUrlSchema,
  })
  .strict();
export type WebhookConfig = z.infer<typeof webhookConfigSchema>;

export const otlpConfigSchema = z
  .object({
    /** The collector's OTLP/HTTP logs endpoint, e.g. https://otel-collector:4318/v1/logs (JSON encoding). */
    url: webhookUrlSchema,
  })
  .strict();
export type OtlpConfig = z.infer<typeof otlpConfigSchema>;

export const sinkNameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'a sink name is 1-63 characters: lower-case letters, digits, "-", "_", "." (it is a metrics label)');

export interface AddSinkInput {
  readonly name: string;
  readonly kind: SinkKind;
  readonly config: unknown;
  /** Where delivery starts: `start` = the first audit entry (the whole log), `now` = after the newest. */
  readonly from?: 'start' | 'now';
  /** otlp: a bearer token the collector requires (stored encrypted, never shown). */
  readonly token?: string;
}

/** A sink as the CLI and the admin API show it: never the secret. */
export type SinkView = {
  readonly object: 'siem_sink';
  readonly id: string;
  readonly name: string;
  readonly kind: SinkKind;
  readonly config: Record<string, unknown>;
  readonly enabled: boolean;
  readonly cursor_seq: number;
  /** Audit entries not yet delivered (newest seq − cursor). */
  readonly backlog: number;
  readonly failures: number;
  readonly last_error: string | null;
  readonly last_error_at: string | null;
  readonly last_success_at: string | null;
  readonly created_at: string;
};

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());
export const secretAadOf = (id: string): string => secretAad('siem_sinks', 'secret', id);

export function parseSinkConfig(kind: SinkKind, raw: unknown): SyslogConfig | WebhookConfig | OtlpConfig {
  const r = (kind === 'syslog' ? syslogConfigSchema : kind === 'otlp' ? otlpConfigSchema : webhookConfigSchema).safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new AppError(400, 'invalid_request', `${kind} sink: ${i.path.length ? `${i.path.join('.')}: ` : ''}${i.message}`);
  }
  return r.data;
}

/** Why the egress rule refuses this sink's address when it is added (IP literals and localhost), or null. */
export function refusedTarget(policy: EgressPolicy, kind: SinkKind, config: SyslogConfig | WebhookConfig | OtlpConfig): string | null {
  if (kind !== 'syslog') return refusedBaseUrl(policy, (config as WebhookConfig | OtlpConfig).url);
  const host = (config as SyslogConfig).host;
  if (/^localhost\.?$/i.test(host) || /\.localhost\.?$/i.test(host)) return policy.refusal('127.0.0.1');
  return refusedIpHost(policy, host);
}

export class SiemSinks {
  constructor(
    private readonly store: Store,
    private readonly box: SecretBox | undefined,
    private readonly clock: Clock,
    private readonly audit: AuditLog,
    private readonly egress: EgressPolicy,
  ) {}

  rows(): Promise<SinkRow[]> {
    const { q, t } = this.store;
    return this.store.all(q.select().from(t.siemSinks).orderBy(asc(t.siemSinks.name)));
  }

  /** By name or id; 404 otherwise. */
  async get(ref: string): Promise<SinkRow> {
    const row = (await this.rows()).find((r) => r.id === ref || r.name === ref);
    if (!row) throw new AppError(404, 'not_found', `No SIEM sink ${ref}.`);
    return row;
  }

  /** The newest audit seq (0 for an empty log). */
  async headSeq(): Promise<number> {
    const { q, t } = this.store;
    const h = await this.store.one(q.select({ seq: t.auditHead.seq }).from(t.auditHead).where(eq(t.auditHead.id, 1)));
    return h?.seq ?? 0;
  }

  view(r: SinkRow, head: number): SinkView {
    return {
      object: 'siem_sink',
      id: r.id,
      name: r.name,
      kind: r.kind,
      config: JSON.parse(r.config) as Record<string, unknown>,
      enabled: r.enabled,
      cursor_seq: r.cursorSeq,
      backlog: Math.max(0, head - r.cursorSeq),
      failures: r.failures,
      last_error: r.lastError,
      last_error_at: iso(r.lastErrorAt),
      last_success_at: iso(r.lastSuccessAt),
      created_at: new Date(r.createdAt).toISOString(),
    };
  }

  async list(): Promise<SinkView[]> {
    const head = await this.headSeq();
    return (await this.rows()).map((r) => this.view(r, head));
  }

  /** The webhook's HMAC key or the OTLP bearer token in clear (the forwarder), or undefined. */
  secretOf(r: SinkRow): string | undefined {
    if (!r.secret || !this.box) return undefined;
    return this.box.decrypt(r.secret, secretAadOf(r.id));
  }

  /** Adds a sink; for a webhook, returns its signing secret (shown once). Audited. */
  async add(ctx: RequestContext, input: AddSinkInput): Promise<{ sink: SinkView; secret?: string }> {
    requirePlatformAdmin(ctx);
    const name = sinkNameSchema.safeParse(input.name);
    if (!name.success) throw new AppError(400, 'invalid_name', name.error.issues[0]!.message);
    if (!(SINK_KINDS as readonly string[]).includes(input.kind)) throw new AppError(400, 'invalid_request', `kind must be one of ${SINK_KINDS.join(', ')}`);
    const config = parseSinkConfig(input.kind, input.config);
    const refused = refusedTarget(this.egress, input.kind, config);
    if (refused) {
      await this.audit.record(ctx, { action: 'siem.sink.add', outcome: 'denied', reason: 'siem_target_forbidden', tenantId: null, target: { type: 'siem_sink', id: null }, details: { name: name.data, kind: input.kind } });
      throw new AppError(400, 'siem_target_forbidden', `The sink's address is not allowed: ${refused}.`);
    }
    for (const k of ['ca_file', 'cert_file', 'key_file'] as const) {
      const f = (config as Record<string, string | undefined>)[k];
      if (f !== undefined && !existsSync(f)) throw new AppError(400, 'invalid_request', `${k}: no file ${f}`);
      if (f !== undefined) readFileSync(f); // unreadable: a clear error now rather than at the first delivery
    }
    if ((await this.rows()).some((r) => r.name === name.data)) throw new AppError(409, 'siem_sink_exists', `A SIEM sink named ${name.data} exists.`);
    const now = this.clock.now();
    const id = newId('snk', now);
    let secret: string | undefined;
    if (input.kind === 'webhook' || input.token !== undefined) {
      if (!this.box) throw new AppError(503, 'secrets_unavailable', 'Sink secrets need the master key (SecretBox) in this process.');
      if (input.kind !== 'otlp' && input.token !== undefined) throw new AppError(400, 'invalid_request', 'a bearer token is for otlp sinks');
      if (input.token !== undefined && !/^[\x21-\x7e]{1,4096}$/.test(input.token)) throw new AppError(400, 'invalid_request', 'the token must be 1-4096 printable characters without spaces');
      secret = input.kind === 'webhook' ? newWebhookSecret() : input.token;
    }
    const cursor = input.from === 'now' ? await this.headSeq() : 0;
    const { q, t } = this.store;
    await this.store.run(
      q
        .insert(t.siemSinks)
        .values({ id, name: name.data, kind: input.kind, config: JSON.stringify(config), secret: secret ? this.box!.encrypt(secret, secretAadOf(id)) : null, enabled: true, cursorSeq: cursor, createdAt: now, updatedAt: now }),
    );
    await this.audit.record(ctx, { action: 'siem.sink.add', tenantId: null, target: { type: 'siem_sink', id }, details: { name: name.data, kind: input.kind, from: input.from ?? 'start', cursor_seq: cursor } });
    // A webhook's signing secret is shown once; an OTLP token is the administrator's own and never echoed.
    return { sink: this.view(await this.get(id), await this.headSeq()), ...(secret && input.kind === 'webhook' ? { secret } : {}) };
  }

  async remove(ctx: RequestContext, ref: string): Promise<SinkView> {
    requirePlatformAdmin(ctx);
    const r = await this.get(ref);
    const { q, t } = this.store;
    await this.store.run(q.delete(t.siemSinks).where(eq(t.siemSinks.id, r.id)));
    await this.audit.record(ctx, { action: 'siem.sink.remove', tenantId: null, target: { type: 'siem_sink', id: r.id }, details: { name: r.name, cursor_seq: r.cursorSeq } });
    return this.view(r, await this.headSeq());
  }

  async setEnabled(ctx: RequestContext, ref: string, enabled: boolean): Promise<SinkView> {
    requirePlatformAdmin(ctx);
    const r = await this.get(ref);
    const { q, t } = this.store;
    // Enabling clears the backoff: the administrator says the receiver is back.
    await this.store.run(
      q
        .update(t.siemSinks)
        .set({ enabled, updatedAt: this.clock.now(), ...(enabled ? { failures: 0 } : {}) })
        .where(eq(t.siemSinks.id, r.id)),
    );
    await this.audit.record(ctx, { action: enabled ? 'siem.sink.enable' : 'siem.sink.disable', tenantId: null, target: { type: 'siem_sink', id: r.id }, details: { name: r.name } });
    return this.view(await this.get(r.id), await this.headSeq());
  }

  /**
   * Moves the cursor from `from` to `to` after a delivery the sink acknowledged — only if no
   * one moved it meanwhile (a forwarder that lost its lock must not move it back). True when moved.
   */
  async advance(id: string, from: number, to: number): Promise<boolean> {
    const { q, t } = this.store;
    const n = await this.store.run(
      q
        .update(t.siemSinks)
        .set({ cursorSeq: to, failures: 0, lastError: null, lastSuccessAt: this.clock.now() })
        .where(and(eq(t.siemSinks.id, id), eq(t.siemSinks.cursorSeq, from))),
    );
    return n === 1;
  }

  /** Records a failed delivery (the backoff counts `failures`). */
  async failed(id: string, error: string): Promise<void> {
    const { q, t } = this.store;
    await this.store.run(
      q
        .update(t.siemSinks)
        .set({ failures: sql`${t.siemSinks.failures} + 1`, lastError: error.slice(0, 500), lastErrorAt: this.clock.now() })
        .where(eq(t.siemSinks.id, id)),
    );
  }

  /** Audited: the result of `sinks test` (one test message sent outside the cursor). */
  async recordTest(ctx: RequestContext, r: SinkRow, error: string | null): Promise<void> {
    await this.audit.record(ctx, { action: 'siem.sink.test', outcome: 'allowed', tenantId: null, target: { type: 'siem_sink', id: r.id }, details: { name: r.name, ok: error === null, ...(error ? { error: error.slice(0, 300) } : {}) } });
  }
}

function requirePlatformAdmin(ctx: RequestContext): void {
  if (!ctx.principal?.platformAdmin) throw new AppError(403, 'platform_admin_required', 'SIEM sinks are platform configuration: platform administrators only.');
}
