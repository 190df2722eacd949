import { eq, or } from 'drizzle-orm';
import { z } from 'zod';
import type { Entitlements } from '../access/entitlements.js';
import type { Clock } from '../clock.js';
import type { SecretBox } from '../config/secret-box.js';
import type { RequestContext } from '../context.js';
import type { Db } from '../db/connection.js';
import { modelAliases, providerDeployments } from '../db/schema.js';
import { secretAad } from '../db/secret-columns.js';
import { AppError, notFound } from '../errors.js';
import { parseInput } from '../http/parse-input.js';
import { newId } from '../ids.js';
import type { Revision } from '../identity/revision.js';
import { createAdapter } from '../providers/index.js';
import { aliasTargetSchema, deploymentOptionsSchema, modelEntrySchema } from './catalogue.js';
import { BOUNDARIES } from './policy.js';

/**
 * Provider deployments and model aliases: create, list, update, remove, test. Used by the
 * admin API and the CLI (same code path). Every change bumps the `gateway` revision so
 * every process reloads its catalogue. API keys are encrypted at rest and never returned.
 */
const modelsInput = z.union([
  z.array(z.union([z.string().min(1), modelEntrySchema])),
  z.string().transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean)),
]);

export const deploymentInputSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'lower-case letters, digits, dot, dash, underscore (max 63)'),
    kind: z.enum(['ollama', 'openai']),
    base_url: z.string().url().refine((u) => /^https?:\/\//.test(u), 'must be http(s)'),
    api_key: z.string().min(1).max(4096).nullable().optional(),
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
export const deploymentPatchSchema = deploymentInputSchema.omit({ name: true, kind: true }).partial().strict();

export const aliasInputSchema = z
  .object({
    name: z.string().min(1).max(200),
    targets: z.array(aliasTargetSchema).min(1).max(32),
    tenant_id: z.string().min(1).nullable().optional(),
  })
  .strict();

type Row = typeof providerDeployments.$inferSelect;

/** The one serializer for deployments: never the credential. */
export function serializeDeployment(r: Row) {
  return {
    object: 'provider_deployment' as const,
    id: r.id,
    name: r.name,
    kind: r.kind,
    base_url: r.baseUrl,
    has_api_key: r.apiKey !== null,
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

export class DeploymentService {
  constructor(
    private readonly d: { db: Db; secrets: SecretBox; clock: Clock; revision: Revision; entitlements: () => Entitlements },
  ) {}

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

  list(): ReturnType<typeof serializeDeployment>[] {
    return this.d.db.select().from(providerDeployments).all().map(serializeDeployment);
  }

  row(idOrName: string): Row {
    const r = this.d.db
      .select()
      .from(providerDeployments)
      .where(or(eq(providerDeployments.id, idOrName), eq(providerDeployments.name, idOrName)))
      .get();
    if (!r) throw notFound('Provider deployment', 'id');
    return r;
  }

  get(idOrName: string) {
    return serializeDeployment(this.row(idOrName));
  }

  create(_ctx: RequestContext, raw: unknown) {
    const input = parseInput(deploymentInputSchema, raw);
    this.checkBoundary(input.boundary);
    const now = this.d.clock.now();
    const id = newId('prv', now);
    if (this.d.db.select().from(providerDeployments).where(eq(providerDeployments.name, input.name)).get()) {
      throw new AppError(409, 'provider_exists', `A provider deployment named ${input.name} exists.`, { param: 'name' });
    }
    const row = this.d.db
      .insert(providerDeployments)
      .values({
        id,
        name: input.name,
        kind: input.kind,
        baseUrl: input.base_url,
        apiKey: input.api_key ? this.d.secrets.encrypt(input.api_key, secretAad('provider_deployments', 'api_key', id)) : null,
        boundary: input.boundary,
        region: input.region ?? null,
        approved: input.approved ?? true,
        enabled: input.enabled ?? true,
        models: normModels(input.models),
        priority: input.priority ?? 100,
        weight: input.weight ?? 1,
        maxConcurrency: input.max_concurrency ?? 64,
        options: JSON.stringify(input.options ?? {}),
        tenantRef: input.tenant_id ?? null,
        createdAt: now,
        updatedAt: now,
      })
      .returning()
      .get();
    this.d.revision.bump();
    return serializeDeployment(row);
  }

  update(_ctx: RequestContext, idOrName: string, raw: unknown) {
    const before = this.row(idOrName);
    const p = parseInput(deploymentPatchSchema, raw);
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
    if (p.tenant_id !== undefined) set.tenantRef = p.tenant_id;
    const row = this.d.db.update(providerDeployments).set(set).where(eq(providerDeployments.id, before.id)).returning().get();
    this.d.revision.bump();
    return serializeDeployment(row!);
  }

  remove(_ctx: RequestContext, idOrName: string): void {
    const r = this.row(idOrName);
    this.d.db.delete(providerDeployments).where(eq(providerDeployments.id, r.id)).run();
    this.d.revision.bump();
  }

  /** Calls the upstream's model list with the stored configuration (a fresh adapter; not the hot path). */
  async test(idOrName: string, timeoutMs = 5000): Promise<{ ok: boolean; models?: string[]; error?: string; latency_ms: number }> {
    const r = this.row(idOrName);
    const apiKey = r.apiKey ? this.d.secrets.decrypt(r.apiKey, secretAad('provider_deployments', 'api_key', r.id)) : undefined;
    const adapter = createAdapter(r.kind, { baseUrl: r.baseUrl, apiKey });
    const t0 = Date.now();
    try {
      const models = await adapter.listModels({ signal: AbortSignal.timeout(timeoutMs) });
      return { ok: true, models, latency_ms: Date.now() - t0 };
    } catch (e) {
      return { ok: false, error: (e as Error).message, latency_ms: Date.now() - t0 };
    }
  }

  listAliases() {
    return this.d.db
      .select()
      .from(modelAliases)
      .all()
      .map((a) => ({ object: 'model_alias' as const, name: a.name, targets: JSON.parse(a.targets) as unknown[], tenant_id: a.tenantRef, updated_at: a.updatedAt }));
  }

  setAlias(_ctx: RequestContext, raw: unknown) {
    const a = parseInput(aliasInputSchema, raw);
    const now = this.d.clock.now();
    this.d.db
      .insert(modelAliases)
      .values({ name: a.name, targets: JSON.stringify(a.targets), tenantRef: a.tenant_id ?? null, createdAt: now, updatedAt: now })
      .onConflictDoUpdate({ target: modelAliases.name, set: { targets: JSON.stringify(a.targets), tenantRef: a.tenant_id ?? null, updatedAt: now } })
      .run();
    this.d.revision.bump();
    return { object: 'model_alias' as const, name: a.name, targets: a.targets, tenant_id: a.tenant_id ?? null };
  }

  removeAlias(_ctx: RequestContext, name: string): void {
    const n = this.d.db.delete(modelAliases).where(eq(modelAliases.name, name)).run().changes;
    if (!n) throw notFound('Model alias', 'name');
    this.d.revision.bump();
  }
}

