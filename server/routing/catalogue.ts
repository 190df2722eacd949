import { z } from 'zod';
import { workerShare } from '../cluster-env.js';
import type { Clock } from '../clock.js';
import type { SecretBox } from '../config/secret-box.js';
import type { Store } from '../db/store.js';
import type { EgressPolicy } from '../providers/egress.js';
import { createAdapter, type Boundary, type ProviderAdapter, type ProviderKind } from '../providers/index.js';
import { CircuitBreaker, Semaphore, type BreakerState } from './breaker.js';
import { adapterConfigOf } from './kind-config.js';

/**
 * The model catalogue: approved, enabled deployments with their adapters (built once per
 * configuration change, so calls never construct clients), breakers and concurrency
 * limits, and the aliases. Reloaded when the `gateway` revision moves (this process at
 * once, others through the poll), so configuration changes reach every server within 1 s.
 * Breakers and limiters survive reloads as long as the deployment's settings do.
 */
export const deploymentOptionsSchema = z
  .object({
    connectMs: z.number().int().positive().max(600_000).optional(),
    firstTokenMs: z.number().int().positive().max(3_600_000).optional(),
    idleMs: z.number().int().positive().max(3_600_000).optional(),
    totalMs: z.number().int().positive().max(24 * 3_600_000).optional(),
    queueMs: z.number().int().min(0).max(600_000).optional(),
    maxRetries: z.number().int().min(0).max(5).optional(),
    retryBaseMs: z.number().int().min(0).max(60_000).optional(),
    maxRetryAfterMs: z.number().int().min(0).max(600_000).optional(),
    breakerFailures: z.number().int().min(1).max(1000).optional(),
    breakerCooldownMs: z.number().int().min(1).max(3_600_000).optional(),
    /** Completion tokens metering reserves per choice when a call sets no max_tokens (server/metering/estimate.ts): the model's output limit. */
    maxOutputTokens: z.number().int().positive().max(10_000_000).optional(),
  })
  .strict();
export type DeploymentOptions = Required<z.infer<typeof deploymentOptionsSchema>>;

export const DEFAULT_OPTIONS: DeploymentOptions = {
  connectMs: 10_000,
  firstTokenMs: 120_000,
  idleMs: 60_000,
  totalMs: 600_000,
  queueMs: 5_000,
  maxRetries: 2,
  retryBaseMs: 200,
  maxRetryAfterMs: 5_000,
  breakerFailures: 5,
  breakerCooldownMs: 30_000,
  maxOutputTokens: 1024,
};

export const modelEntrySchema = z.object({
  /** The name clients use (unless an alias points here). */
  name: z.string().min(1).max(200),
  /** The upstream model name, when it differs. */
  upstream: z.string().min(1).max(200).optional(),
  type: z.enum(['chat', 'embedding']).default('chat'),
  /** Accepts images (OpenAI `image_url` content parts): the chat sends attached images only to such models. */
  vision: z.boolean().optional(),
});
export type ModelEntry = z.infer<typeof modelEntrySchema>;

export const aliasTargetSchema = z.object({
  deployment: z.string().min(1),
  model: z.string().min(1),
  priority: z.number().int().default(100),
  weight: z.number().int().min(1).default(1),
});
export type AliasTarget = z.infer<typeof aliasTargetSchema>;

export interface Deployment {
  readonly id: string;
  readonly name: string;
  readonly kind: ProviderKind;
  readonly baseUrl: string;
  readonly boundary: Boundary;
  readonly region: string | null;
  readonly approved: boolean;
  readonly enabled: boolean;
  readonly models: readonly ModelEntry[];
  readonly priority: number;
  readonly weight: number;
  readonly maxConcurrency: number;
  readonly options: DeploymentOptions;
  readonly tenantRef: string | null;
  readonly adapter: ProviderAdapter;
  readonly breaker: CircuitBreaker;
  readonly limiter: Semaphore;
}

/** One way to reach a model: a deployment and the upstream model name. */
export interface Candidate {
  readonly deployment: Deployment;
  /** The upstream model name sent to the provider. */
  readonly model: string;
  readonly type: 'chat' | 'embedding';
  readonly priority: number;
  readonly weight: number;
  /** The model entry says it accepts images. */
  readonly vision?: boolean;
}

interface Shared {
  readonly key: string;
  readonly adapter: ProviderAdapter;
  readonly breaker: CircuitBreaker;
  readonly limiter: Semaphore;
}

export class Catalogue {
  private deployments: Deployment[] = [];
  private byName = new Map<string, Deployment>();
  /**
   * model name → candidates: deployments' models (platform and tenant-private alike;
   * visibility is checked per call) and platform aliases.
   */
  private routes = new Map<string, Candidate[]>();
  /**
   * tenant id → that tenant's aliases. A tenant alias wins over a same-named route for its
   * tenant only: every other tenant still resolves the name as before.
   */
  private tenantAliases = new Map<string, Map<string, Candidate[]>>();
  private shared = new Map<string, Shared>();
  private loadedRevision = -1;

  constructor(
    private readonly store: Store,
    private readonly secrets: SecretBox,
    private readonly clock: Clock,
    /** Where tenant-private deployments may connect (their tenant administrators choose the URL). */
    private readonly tenantEgress: EgressPolicy,
    /** Breaker state per deployment name: at creation (closed), on change, and null once the deployment is gone; tenantPrivate: never label metrics with its name. */
    private readonly onBreaker?: (deployment: string, s: BreakerState | null, tenantPrivate: boolean) => void,
  ) {}

  /**
   * Re-reads deployments and aliases when the gateway revision moved (the revision's
   * listener, never the AI-call path: calls read the last loaded snapshot).
   */
  async reload(revision: number): Promise<void> {
    if (revision === this.loadedRevision) return;
    const { q, t } = this.store;
    const [rows, aliases] = await Promise.all([this.store.all(q.select().from(t.providerDeployments)), this.store.all(q.select().from(t.modelAliases))]);
    // A newer reload finished while this one read: keep the newer snapshot.
    if (revision < this.loadedRevision) return;
    const deployments: Deployment[] = [];
    const nextShared = new Map<string, Shared>();
    for (const r of rows) {
      const options: DeploymentOptions = { ...DEFAULT_OPTIONS, ...safeOptions(r.options) };
      const key = JSON.stringify([r.kind, r.baseUrl, r.apiKey, r.settings, r.credentials, r.region, r.maxConcurrency, options.breakerFailures, options.breakerCooldownMs, r.tenantRef !== null]);
      let s = this.shared.get(r.id);
      if (!s || s.key !== key) {
        const name = r.name;
        const tenantPrivate = r.tenantRef !== null;
        s = {
          key,
          adapter: createAdapter(r.kind, adapterConfigOf(r, this.secrets, this.tenantEgress)),
          breaker: new CircuitBreaker(this.clock, options.breakerFailures, options.breakerCooldownMs, (st) => this.onBreaker?.(name, st, tenantPrivate)),
          limiter: new Semaphore(workerShare(r.maxConcurrency)), // per process: split between api workers
        };
        this.onBreaker?.(name, 'closed', tenantPrivate);
      }
      nextShared.set(r.id, s);
      deployments.push({
        id: r.id,
        name: r.name,
        kind: r.kind,
        baseUrl: r.baseUrl,
        boundary: r.boundary,
        region: r.region,
        approved: r.approved,
        enabled: r.enabled,
        models: safeModels(r.models),
        priority: r.priority,
        weight: r.weight,
        maxConcurrency: r.maxConcurrency,
        options,
        tenantRef: r.tenantRef,
        adapter: s.adapter,
        breaker: s.breaker,
        limiter: s.limiter,
      });
    }
    const byName = new Map(deployments.map((d) => [d.name, d]));
    const routes = new Map<string, Candidate[]>();
    const add = (name: string, c: Candidate): void => {
      const list = routes.get(name);
      if (list) list.push(c);
      else routes.set(name, [c]);
    };
    for (const d of deployments) {
      for (const m of d.models) add(m.name, { deployment: d, model: m.upstream ?? m.name, type: m.type, priority: d.priority, weight: d.weight, vision: m.vision === true });
    }
    const tenantAliases = new Map<string, Map<string, Candidate[]>>();
    for (const a of aliases) {
      const targets: Candidate[] = [];
      for (const t of safeTargets(a.targets)) {
        const d = byName.get(t.deployment);
        if (!d) continue;
        const entry = d.models.find((m) => m.name === t.model || m.upstream === t.model);
        targets.push({ deployment: d, model: entry?.upstream ?? t.model, type: entry?.type ?? 'chat', priority: t.priority, weight: t.weight, vision: entry?.vision === true });
      }
      if (a.tenantRef === null) {
        routes.set(a.name, targets); // a platform alias replaces a same-named direct route
        continue;
      }
      let own = tenantAliases.get(a.tenantRef);
      if (!own) tenantAliases.set(a.tenantRef, (own = new Map()));
      own.set(a.name, targets);
    }
    const byPriority = (a: Candidate, b: Candidate): number => a.priority - b.priority;
    for (const list of routes.values()) list.sort(byPriority);
    for (const own of tenantAliases.values()) for (const list of own.values()) list.sort(byPriority);
    for (const d of this.deployments) if (!byName.has(d.name)) this.onBreaker?.(d.name, null, d.tenantRef !== null);
    this.deployments = deployments;
    this.byName = byName;
    this.routes = routes;
    this.tenantAliases = tenantAliases;
    this.shared = nextShared;
    this.loadedRevision = revision;
  }

  all(): readonly Deployment[] {
    return this.deployments;
  }
  deployment(name: string): Deployment | undefined {
    return this.byName.get(name);
  }
  byId(id: string): Deployment | undefined {
    return this.deployments.find((d) => d.id === id);
  }
  /** Model names visible to a tenant (before policy and key filters). */
  names(tenantId: string): string[] {
    const own = this.tenantAliases.get(tenantId);
    const out = new Set<string>();
    for (const [name, list] of this.routes) {
      if (own?.has(name)) continue;
      if (list.some((c) => usable(c.deployment, tenantId))) out.add(name);
    }
    if (own) for (const [name, list] of own) if (list.some((c) => usable(c.deployment, tenantId))) out.add(name);
    return [...out].sort();
  }
  /** Whether every deployment that may serve `name` to the tenant accepts images (any could be chosen, fallback included). */
  acceptsImages(name: string, tenantId: string): boolean {
    const list = this.candidates(name, tenantId);
    return list.length > 0 && list.every((c) => c.vision === true);
  }
  /** Every candidate for `name` usable by the tenant, in priority order (the tenant's own alias first). */
  candidates(name: string, tenantId: string): Candidate[] {
    const list = this.tenantAliases.get(tenantId)?.get(name) ?? this.routes.get(name);
    if (!list) return [];
    return list.filter((c) => usable(c.deployment, tenantId));
  }
}

/** Approved, enabled, and platform-wide or the tenant's own. */
export function usable(d: Deployment, tenantId: string): boolean {
  return d.approved && d.enabled && (d.tenantRef === null || d.tenantRef === tenantId);
}

function safeOptions(json: string): Partial<DeploymentOptions> {
  try {
    return deploymentOptionsSchema.parse(JSON.parse(json));
  } catch {
    return {};
  }
}
function safeModels(json: string): ModelEntry[] {
  try {
    return z.array(modelEntrySchema).parse(JSON.parse(json));
  } catch {
    return [];
  }
}
function safeTargets(json: string): AliasTarget[] {
  try {
    return z.array(aliasTargetSchema).parse(JSON.parse(json));
  } catch {
    return [];
  }
}

/**
 * Orders candidates of equal priority by weighted random choice (higher weight first more
 * often); priority groups stay in order. Open breakers go last (they are skipped unless
 * half-open by the caller).
 */
export function orderCandidates(list: readonly Candidate[], random = Math.random): Candidate[] {
  if (list.length <= 1) return [...list];
  const out: Candidate[] = [];
  let i = 0;
  while (i < list.length) {
    let j = i;
    while (j < list.length && list[j]!.priority === list[i]!.priority) j++;
    const group = list.slice(i, j);
    while (group.length) {
      const total = group.reduce((n, c) => n + c.weight, 0);
      let r = random() * total;
      let k = 0;
      for (; k < group.length - 1; k++) {
        r -= group[k]!.weight;
        if (r < 0) break;
      }
      out.push(group.splice(k, 1)[0]!);
    }
    i = j;
  }
  return out;
}
