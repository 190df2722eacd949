import { eq, isNull, type SQL } from 'drizzle-orm';
import { z } from 'zod';
import type { Entitlements } from '../access/entitlements.js';
import type { AuditLog } from '../audit/log.js';
import type { Clock } from '../clock.js';
import type { SecretBox } from '../config/secret-box.js';
import type { RequestContext } from '../context.js';
import type { providerDeployments } from '../db/schema.js';
import { isUniqueViolation, type Store } from '../db/store.js';
import { secretAad } from '../db/secret-columns.js';
import { AppError, notFound } from '../errors.js';
import { parseInput } from '../http/parse-input.js';
import { newId } from '../ids.js';
import type { Revision } from '../identity/revision.js';
import { refusedBaseUrl, type EgressPolicy } from '../providers/egress.js';
import { createAdapter, kindAvailable, UpstreamError } from '../providers/index.js';
import { PROVIDER_KIND_NAMES } from '../providers/kinds.js';
import { aliasTargetSchema, deploymentOptionsSchema, modelEntrySchema } from './catalogue.js';
import { adapterConfigOf, credentialsInputSchema, encryptCredentials, resolveKindConfig, secretValues, settingsInputSchema, storedCredentials, storedSettings, type KindConfig } from './kind-config.js';
import { BOUNDARIES } from './policy.js';

/**
 * Provider deployments and model aliases: create, list, update, remove, test. Used by the
 * admin API and the CLI (same code path). Every change bumps the `gateway` revision so
 * every process reloads its catalogue, and is audited (attributed to the deployment's
 * tenant for tenant-private ones). API keys are encrypted at rest and never returned.
 * The caller is checked before (platform routes, the CLI, or TenantDeployments for
 * tenant administrators).
 */
const modelsInput = z.union([
  z.array(z.union([z.string().min(1), modelEntrySchema])),
  z.string().transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean)),
]);

export const deploymentInputSchema = z
  .object({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'lower-case letters, digits, dot, dash, underscore (max 63)')
      // Deployments are addressed by id or name: a name must never look like an id.
      .refine((n) => !n.startsWith('prv_'), 'must not start with prv_ (deployment ids do)'),
    kind: z.enum(PROVIDER_KIND_NAMES),
    /** Optional for kinds that derive it (anthropic, azure-openai from its resource, bedrock/vertex from the region …). */
    base_url: z.string().url().refine((u) => /^https?:\/\//.test(u), 'must be http(s)').optional(),
    api_key: z.string().min(1).max(4096).nullable().optional(),
    /** The kind's own non-secret fields (server/providers/kinds.ts); null removes one. */
    settings: settingsInputSchema.optional(),
    /** The kind's own secret fields; encrypted at rest, never returned; null removes one. */
    credentials: credentialsInputSchema.optional(),
    boundary: z.enum(BOUNDARIES),
    region: z.string().min(1).max(64).nullable().optional(),
    approved: z.boolean().optional(),
    enabled: z.boolean().optional(),
    models: modelsInput.optional(),
    priority: z.number().int().min(0).max(10_000).optional(),
    weight: z.number().int().min(1).max(1000).optional(),
    max_concurrency: z.number().int().min(1).max(10_000).optional(),
    options: deploymentOptionsSchema.optional(),
    tenant_id: z.string().min(1).nullable().optional(),
  })
  .strict();
export type DeploymentInput = z.input<typeof deploymentInputSchema>;
export type DeploymentCreate = z.output<typeof deploymentInputSchema>;
export const deploymentPatchSchema = deploymentInputSchema.omit({ name: true, kind: true }).partial().strict();
export type DeploymentPatch = z.output<typeof deploymentPatchSchema>;

export const aliasInputSchema = z
  .object({
    name: z.string().min(1).max(200),
    targets: z.array(aliasTargetSchema).min(1).max(32),
    tenant_id: z.string().min(1).nullable().optional(),
  })
  .strict();

export type DeploymentRow = typeof providerDeployments.$inferSelect;
type Row = DeploymentRow;

/** The one serializer for deployments: never the credential. */
export function serializeDeployment(r: Row) {
  return {
    object: 'provider_deployment' as const,
    id: r.id,
    name: r.name,
    kind: r.kind,
    base_url: r.baseUrl,
    has_api_key: r.apiKey !== null,
    settings: storedSettings(r.settings),
    has_credentials: r.credentials !== null,
    boundary: r.boundary,
    region: r.region,
    approved: r.approved,
    enabled: r.enabled,
    models: JSON.parse(r.models) as unknown[],
    priority: r.priority,
    weight: r.weight,
    max_concurrency: r.maxConcurrency,
    options: JSON.parse(r.options) as Record<string, unknown>,
    tenant_id: r.tenantRef,
    created_at: r.createdAt,
    updated_at: r.updatedAt,
  };
}

function normModels(m: z.infer<typeof modelsInput> | undefined): string {
  return JSON.stringify((m ?? []).map((x) => (typeof x === 'string' ? { name: x, type: /embed/i.test(x) ? 'embedding' : 'chat' } : modelEntrySchema.parse(x))));
}

/** Names are unique across the platform; the refusal says only that the name is taken. */
const nameTaken = (name: string): AppError =>
  new AppError(409, 'provider_exists', `The provider deployment name ${name} is taken; choose another.`, { param: 'name' });

export interface DeploymentDeps {
  readonly store: Store;
  readonly secrets: SecretBox;
  readonly clock: Clock;
  readonly revision: Revision;
  readonly entitlements: () => Entitlements;
  readonly audit: AuditLog;
  /** Resolves a tenant id or slug (tenant_id of a tenant-private deployment). */
  readonly tenants: { resolve(ref: string): Promise<{ id: string } | undefined> };
  /** Where tenant-private deployments may connect (checked when their base URL is set, and on connect). */
  readonly tenantEgress: EgressPolicy;
}

export class DeploymentService {
  constructor(private readonly d: DeploymentDeps) {}

  private checkBoundary(boundary: 'local' | 'private' | 'public'): void {
    const e = this.d.entitlements();
    // Licence call point: the deployment mode (air-gapped) may forbid a boundary entirely.
    if (e.allowsBoundary && !e.allowsBoundary(boundary)) {
      throw new AppError(403, 'policy_boundary_unlicensed', `The licence's deployment mode does not allow ${boundary} provider deployments.`, {
        type: 'policy_error',
        param: 'boundary',
      });
    }
  }

  /**
   * A tenant-private deployment's base URL (and any other URL its kind connects to, such as a
   * token endpoint) must be one its connections may use (400 otherwise).
   */
  private checkEgress(tenantRef: string | null, baseUrl: string, extraUrls: readonly string[] = []): void {
    if (tenantRef === null) return;
    const why = refusedBaseUrl(this.d.tenantEgress, baseUrl);
    if (why) throw new AppError(400, 'base_url_forbidden', `base_url: ${why}.`, { param: 'base_url' });
    for (const u of extraUrls) {
      const w = refusedBaseUrl(this.d.tenantEgress, u);
      if (w) throw new AppError(400, 'base_url_forbidden', `settings: ${w}.`, { param: 'settings' });
    }
  }

  /** A kind this build has no adapter for cannot be configured (it could not be called). */
  private checkKind(kind: DeploymentCreate['kind']): void {
    if (!kindAvailable(kind)) throw new AppError(400, 'invalid_request', `kind: provider kind ${kind} is not available in this build.`, { param: 'kind' });
  }

  /** A tenant id or slug → the tenant's id (404 when there is no such tenant). */
  async tenantId(ref: string): Promise<string> {
    const t = await this.d.tenants.resolve(ref);
    if (!t) throw notFound('Tenant', 'tenant_id');
    return t.id;
  }

  /** Every deployment, or only the platform's (`tenantId: null`) or one tenant's. */
  async list(filter: { tenantId?: string | null } = {}): Promise<ReturnType<typeof serializeDeployment>[]> {
    const { q, t } = this.d.store;
    const where: SQL | undefined =
      filter.tenantId === undefined ? undefined : filter.tenantId === null ? isNull(t.providerDeployments.tenantRef) : eq(t.providerDeployments.tenantRef, filter.tenantId);
    return (await this.d.store.all(q.select().from(t.providerDeployments).where(where).orderBy(t.providerDeployments.name))).map(serializeDeployment);
  }

  /** By id, else by name (a name never looks like an id); undefined when neither matches. */
  async find(idOrName: string): Promise<Row | undefined> {
    const { q, t } = this.d.store;
    return (
      (await this.d.store.one(q.select().from(t.providerDeployments).where(eq(t.providerDeployments.id, idOrName)))) ??
      (await this.d.store.one(q.select().from(t.providerDeployments).where(eq(t.providerDeployments.name, idOrName))))
    );
  }

  async row(idOrName: string): Promise<Row> {
    const r = await this.find(idOrName);
    if (!r) throw notFound('Provider deployment', 'id');
    return r;
  }

  async get(idOrName: string) {
    return serializeDeployment(await this.row(idOrName));
  }

  async create(ctx: RequestContext, raw: unknown) {
    return this.createParsed(ctx, parseInput(deploymentInputSchema, raw));
  }

  /** create() for input validated by the caller (TenantDeployments checks it first). */
  async createParsed(ctx: RequestContext, input: DeploymentCreate) {
    this.checkKind(input.kind);
    this.checkBoundary(input.boundary);
    const kc: KindConfig = resolveKindConfig({
      kind: input.kind,
      settings: {},
      credentials: {},
      settingsPatch: input.settings,
      credentialsPatch: input.credentials,
      baseUrl: input.base_url,
      hasApiKey: !!input.api_key,
      region: input.region ?? null,
    });
    const tenantRef = input.tenant_id ? await this.tenantId(input.tenant_id) : null;
    this.checkEgress(tenantRef, kc.baseUrl, kc.extraUrls);
    const now = this.d.clock.now();
    const id = newId('prv', now);
    const { q, t } = this.d.store;
    if (await this.d.store.one(q.select({ id: t.providerDeployments.id }).from(t.providerDeployments).where(eq(t.providerDeployments.name, input.name)))) throw nameTaken(input.name);
    let row: Row;
    try {
      const inserted = await this.d.store.one(
        q
        .insert(t.providerDeployments)
        .values({
          id,
          name: input.name,
          kind: input.kind,
          baseUrl: kc.baseUrl,
          apiKey: input.api_key ? this.d.secrets.encrypt(input.api_key, secretAad('provider_deployments', 'api_key', id)) : null,
          settings: JSON.stringify(kc.settings),
          credentials: encryptCredentials(this.d.secrets, id, kc.credentials),
          boundary: input.boundary,
          region: input.region ?? null,
          approved: input.approved ?? true,
          enabled: input.enabled ?? true,
          models: normModels(input.models),
          priority: input.priority ?? 100,
          weight: input.weight ?? 1,
          maxConcurrency: input.max_concurrency ?? 64,
          options: JSON.stringify(input.options ?? {}),
          tenantRef,
          createdAt: now,
          updatedAt: now,
        })
        .returning(),
      );
      row = inserted!;
    } catch (e) {
      // Another process (the CLI, a replica) took the name between the check and the insert.
      if (isUniqueViolation(e)) throw nameTaken(input.name);
      throw e;
    }
    await this.d.revision.bump();
    await this.record(ctx, 'providers.create', row, {
      kind: row.kind,
      boundary: row.boundary,
      region: row.region,
      approved: row.approved,
      has_api_key: row.apiKey !== null,
      // Names of the secrets set, never their values.
      credential_fields: Object.keys(kc.credentials),
    });
    return serializeDeployment(row);
  }

  async update(ctx: RequestContext, idOrName: string, raw: unknown) {
    const before = await this.row(idOrName);
    return this.updateParsed(ctx, before, parseInput(deploymentPatchSchema, raw));
  }

  /** update() of a row the caller looked up, with a validated patch. */
  async updateParsed(ctx: RequestContext, before: Row, p: DeploymentPatch) {
    if (p.boundary) this.checkBoundary(p.boundary);
    const set: Partial<Row> = { updatedAt: this.d.clock.now() };
    if (p.base_url !== undefined) set.baseUrl = p.base_url;
    if (p.api_key !== undefined) set.apiKey = p.api_key === null ? null : this.d.secrets.encrypt(p.api_key, secretAad('provider_deployments', 'api_key', before.id));
    if (p.boundary !== undefined) set.boundary = p.boundary;
    if (p.region !== undefined) set.region = p.region;
    if (p.approved !== undefined) set.approved = p.approved;
    if (p.enabled !== undefined) set.enabled = p.enabled;
    if (p.models !== undefined) set.models = normModels(p.models);
    if (p.priority !== undefined) set.priority = p.priority;
    if (p.weight !== undefined) set.weight = p.weight;
    if (p.max_concurrency !== undefined) set.maxConcurrency = p.max_concurrency;
    if (p.options !== undefined) set.options = JSON.stringify({ ...JSON.parse(before.options), ...p.options });
    if (p.tenant_id !== undefined) set.tenantRef = p.tenant_id === null ? null : await this.tenantId(p.tenant_id);
    // The kind's rules hold for the merged configuration (a patch may remove what another field needs).
    const kc = resolveKindConfig({
      kind: before.kind,
      settings: storedSettings(before.settings),
      credentials: p.credentials !== undefined ? this.credentialsOf(before) : {},
      settingsPatch: p.settings,
      credentialsPatch: p.credentials,
      baseUrl: set.baseUrl ?? before.baseUrl,
      hasApiKey: set.apiKey !== undefined ? set.apiKey !== null : before.apiKey !== null,
      region: set.region !== undefined ? set.region : before.region,
    });
    if (p.settings !== undefined) set.settings = JSON.stringify(kc.settings);
    if (p.credentials !== undefined) set.credentials = encryptCredentials(this.d.secrets, before.id, kc.credentials);
    this.checkEgress(set.tenantRef !== undefined ? set.tenantRef : before.tenantRef, kc.baseUrl, kc.extraUrls);
    const { q, t } = this.d.store;
    const row = (await this.d.store.one(q.update(t.providerDeployments).set(set).where(eq(t.providerDeployments.id, before.id)).returning()))!;
    await this.d.revision.bump();
    // Which fields changed (names only: never the credential), and the ones that decide who may use it.
    const changed = Object.keys(p).filter((k) => p[k as keyof DeploymentPatch] !== undefined);
    await this.record(ctx, 'providers.update', row, {
      changed,
      before: { boundary: before.boundary, approved: before.approved, enabled: before.enabled, tenant_id: before.tenantRef },
      after: { boundary: row.boundary, approved: row.approved, enabled: row.enabled, tenant_id: row.tenantRef },
    });
    // Moved between tenants: the tenant it left sees the change in its audit log too.
    if (before.tenantRef !== row.tenantRef && before.tenantRef !== null) await this.record(ctx, 'providers.update', { ...row, tenantRef: before.tenantRef }, { changed: ['tenant_id'] });
    return serializeDeployment(row);
  }

  async remove(ctx: RequestContext, idOrName: string): Promise<void> {
    const r = await this.row(idOrName);
    const { q, t } = this.d.store;
    await this.d.store.run(q.delete(t.providerDeployments).where(eq(t.providerDeployments.id, r.id)));
    await this.d.revision.bump();
    await this.record(ctx, 'providers.remove', r, { kind: r.kind, boundary: r.boundary });
  }

  /** Audit entry for a change, attributed to the deployment's tenant (null: a platform deployment). */
  private async record(ctx: RequestContext, action: string, r: Pick<Row, 'id' | 'name' | 'tenantRef'>, details: Record<string, unknown>): Promise<void> {
    await this.d.audit.record(ctx, { action, tenantId: r.tenantRef, target: { type: 'provider_deployment', id: r.id }, details: { name: r.name, ...details } });
  }

  /** The stored credentials of a row for a patch to merge into (a 500 when they no longer decrypt). */
  private credentialsOf(r: Row): Record<string, string> {
    try {
      return storedCredentials(this.d.secrets, r);
    } catch (e) {
      throw new AppError(500, 'secrets_unavailable', "The deployment's stored credentials cannot be decrypted; send all of them again.", { cause: e });
    }
  }

  /**
   * Calls the upstream's model list with the stored configuration (a fresh adapter; not the
   * hot path). The error says what is wrong in the administrator's terms (credentials,
   * endpoint/region, model access) and never carries a credential: any secret value the
   * provider echoed is cut out.
   */
  async test(idOrName: string, timeoutMs = 5000): Promise<{ ok: boolean; models?: string[]; error?: string; error_code?: string; latency_ms: number }> {
    const r = await this.row(idOrName);
    const cfg = adapterConfigOf(r, this.d.secrets, this.d.tenantEgress);
    const adapter = createAdapter(r.kind, cfg);
    const t0 = Date.now();
    try {
      const models = await adapter.listModels({ signal: AbortSignal.timeout(timeoutMs) });
      return { ok: true, models, latency_ms: Date.now() - t0 };
    } catch (e) {
      return { ok: false, ...testFailure(e, r.baseUrl, secretValues(cfg)), latency_ms: Date.now() - t0 };
    }
  }

  async listAliases() {
    const { q, t } = this.d.store;
    return (await this.d.store.all(q.select().from(t.modelAliases))).map((a) => ({ object: 'model_alias' as const, name: a.name, targets: JSON.parse(a.targets) as unknown[], tenant_id: a.tenantRef, updated_at: a.updatedAt }));
  }

  /**
   * Creates or replaces an alias. `tenant_id` (id or slug) makes it that tenant's: it then
   * wins over a same-named model for that tenant only. Every target must name an existing
   * deployment the alias's tenants may use (a platform deployment, or for a tenant alias the
   * tenant's own): a typo would otherwise leave an alias that resolves to nothing.
   */
  async setAlias(ctx: RequestContext, raw: unknown) {
    const a = parseInput(aliasInputSchema, raw);
    const tenantRef = a.tenant_id ? await this.tenantId(a.tenant_id) : null;
    for (const [i, t] of a.targets.entries()) {
      const d = await this.find(t.deployment);
      if (!d || (d.tenantRef !== null && d.tenantRef !== tenantRef)) {
        throw new AppError(400, 'alias_target_unknown', `targets[${i}]: there is no provider deployment ${t.deployment}${tenantRef ? ' for this tenant' : ' usable by every tenant'}.`, {
          param: `targets[${i}].deployment`,
        });
      }
    }
    const { q, t: tables } = this.d.store;
    const now = this.d.clock.now();
    const targets = JSON.stringify(a.targets);
    const before = await this.d.store.tx(async () => {
      const prev = await this.d.store.one(q.select().from(tables.modelAliases).where(eq(tables.modelAliases.name, a.name)));
      await this.d.store.run(
        q
          .insert(tables.modelAliases)
          .values({ name: a.name, targets, tenantRef, createdAt: now, updatedAt: now })
          .onConflictDoUpdate({ target: tables.modelAliases.name, set: { targets, tenantRef, updatedAt: now } }),
      );
      return prev;
    });
    await this.d.revision.bump();
    const details = { name: a.name, targets: a.targets.map((t) => `${t.deployment}/${t.model}`), replaced: before !== undefined };
    await this.d.audit.record(ctx, { action: 'providers.alias_set', tenantId: tenantRef, target: { type: 'model_alias', id: a.name }, details });
    // Taken from another tenant (or from the platform): that side sees the change too.
    if (before && before.tenantRef !== tenantRef) {
      await this.d.audit.record(ctx, { action: 'providers.alias_set', tenantId: before.tenantRef, target: { type: 'model_alias', id: a.name }, details: { name: a.name, moved: true } });
    }
    return { object: 'model_alias' as const, name: a.name, targets: a.targets, tenant_id: tenantRef };
  }

  async removeAlias(ctx: RequestContext, name: string): Promise<void> {
    const { q, t } = this.d.store;
    const row = await this.d.store.one(q.delete(t.modelAliases).where(eq(t.modelAliases.name, name)).returning());
    if (!row) throw notFound('Model alias', 'name');
    await this.d.revision.bump();
    await this.d.audit.record(ctx, { action: 'providers.alias_remove', tenantId: row.tenantRef, target: { type: 'model_alias', id: name }, details: { name } });
  }
}


/**
 * How the providers word "this model is not available to you" (it arrives as 403 or 404, which
 * alone read as wrong credentials or a wrong endpoint): Bedrock's AccessDeniedException "You
 * don't have access to the model…", Vertex's "…was not found or your project does not have
 * access to it", OpenAI's "…does not exist or you do not have access to it", Azure's
 * DeploymentNotFound, Gemini's "models/… is not found…", Anthropic's not_found_error "model: …".
 */
const MODEL_ACCESS = /access to the model|have access to it|DeploymentNotFound|deployment for this resource does not exist|\bmodels\/\S+ is not found|(?:^|\s)model: |model .*(?:not enabled|is not available)/i;

/** What `providers test` says for a failure: the cause in an administrator's terms, no secret. */
export function testFailure(e: unknown, baseUrl: string, secrets: readonly string[]): { error: string; error_code: string } {
  let host = baseUrl;
  try {
    host = new URL(baseUrl).host;
  } catch {
    // keep the stored text
  }
  let code = 'provider_error';
  let text = (e as Error)?.message ?? String(e);
  if (e instanceof UpstreamError) {
    code = e.code;
    const hint =
      MODEL_ACCESS.test(`${e.message}\n${e.upstreamText ?? ''}`) && (e.code === 'provider_auth_failed' || e.code === 'provider_model_not_found')
        ? 'the model is not enabled for this account, project or resource (or its name is wrong): enable access to it in the provider’s console, or correct the model or deployment name'
        : e.code === 'provider_auth_failed'
        ? 'the provider refused the credentials (wrong or expired key/secret, or no access to this resource)'
        : e.code === 'provider_model_not_found'
          ? `the endpoint ${host} does not know this resource (wrong endpoint, region, resource name, or the model is not enabled for this account)`
          : e.code === 'provider_connection_error'
            ? `${host} could not be reached (wrong endpoint or region, or the network refuses it)`
            : e.code === 'provider_timeout'
              ? `${host} did not answer in time`
              : undefined;
    if (hint) text = `${hint}: ${e.message}`;
  } else if ((e as { name?: string })?.name === 'TimeoutError' || (e as { name?: string })?.name === 'AbortError') {
    code = 'provider_timeout';
    text = `${host} did not answer in time`;
  }
  for (const s of secrets) text = text.split(s).join('[redacted]');
  return { error: text, error_code: code };
}
