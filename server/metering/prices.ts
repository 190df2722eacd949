import { z } from 'zod';
import type { AuditLog } from '../audit/log.js';
import type { Clock } from '../clock.js';
import type { RequestContext } from '../context.js';
import type { MeteringRepo, PriceRow } from '../db/repos/metering.js';
import type { Revision } from '../identity/revision.js';

/**
 * Prices per model (optionally per deployment), in integer micro-units per million tokens,
 * versioned (a change inserts a new version; usage records keep the version they were
 * costed with). Bundled defaults are written once into an empty table; nothing is ever
 * fetched from the internet.
 */
export const BUNDLED_PRICES: readonly { model: string; input: number; output: number }[] = [
  // USD micro-units per 1M tokens (list prices at release time; admins override them).
  { model: 'gpt-4o', input: 2_500_000, output: 10_000_000 },
  { model: 'gpt-4o-mini', input: 150_000, output: 600_000 },
  { model: 'gpt-4.1', input: 2_000_000, output: 8_000_000 },
  { model: 'gpt-4.1-mini', input: 400_000, output: 1_600_000 },
  { model: 'o3-mini', input: 1_100_000, output: 4_400_000 },
  { model: 'text-embedding-3-small', input: 20_000, output: 0 },
  { model: 'text-embedding-3-large', input: 130_000, output: 0 },
  { model: 'claude-3-5-sonnet', input: 3_000_000, output: 15_000_000 },
  { model: 'mistral-large', input: 2_000_000, output: 6_000_000 },
  // Anthropic (issue 19), by alias and by dated model id (the name the usage record carries is the upstream model the deployment sends).
  ...perMTok(['claude-opus-4-5', 'claude-opus-4-5-20251101'], 5, 25),
  ...perMTok(['claude-sonnet-4-5', 'claude-sonnet-4-5-20250929', 'claude-sonnet-4-0', 'claude-sonnet-4-20250514', 'claude-3-7-sonnet-latest', 'claude-3-7-sonnet-20250219'], 3, 15),
  ...perMTok(['claude-haiku-4-5', 'claude-haiku-4-5-20251001'], 1, 5),
  ...perMTok(['claude-opus-4-1', 'claude-opus-4-1-20250805', 'claude-opus-4-0', 'claude-opus-4-20250514'], 15, 75),
  ...perMTok(['claude-3-5-haiku-latest', 'claude-3-5-haiku-20241022'], 0.8, 4),
  ...perMTok(['claude-3-haiku-20240307'], 0.25, 1.25),
  // OpenAI models as Azure OpenAI (Global) and OpenAI list them; an Azure deployment named after its model is priced by these.
  ...perMTok(['gpt-4.1-nano'], 0.1, 0.4),
  ...perMTok(['o3'], 2, 8),
  ...perMTok(['o4-mini'], 1.1, 4.4),
  ...perMTok(['gpt-5'], 1.25, 10),
  ...perMTok(['gpt-5-mini'], 0.25, 2),
  ...perMTok(['gpt-5-nano'], 0.05, 0.4),
  ...perMTok(['text-embedding-ada-002'], 0.1, 0),
  // AWS Bedrock on-demand (us-east-1 list prices; issue 19), by Bedrock model id and, where the model is only served through
  // cross-region inference profiles, by the us./eu. profile ids too (the deployment's model name is what is priced).
  ...perMTok(bedrockIds(['anthropic.claude-sonnet-4-5-20250929-v1:0', 'anthropic.claude-sonnet-4-20250514-v1:0', 'anthropic.claude-3-7-sonnet-20250219-v1:0']), 3, 15),
  ...perMTok(['anthropic.claude-3-5-sonnet-20241022-v2:0', 'anthropic.claude-3-5-sonnet-20240620-v1:0'], 3, 15),
  ...perMTok(bedrockIds(['anthropic.claude-opus-4-1-20250805-v1:0', 'anthropic.claude-opus-4-20250514-v1:0']), 15, 75),
  ...perMTok(bedrockIds(['anthropic.claude-haiku-4-5-20251001-v1:0']), 1, 5),
  ...perMTok(['anthropic.claude-3-5-haiku-20241022-v1:0'], 0.8, 4),
  ...perMTok(['anthropic.claude-3-haiku-20240307-v1:0'], 0.25, 1.25),
  ...perMTok(bedrockIds(['amazon.nova-premier-v1:0']), 2.5, 12.5),
  ...perMTok(bedrockIds(['amazon.nova-pro-v1:0']), 0.8, 3.2),
  ...perMTok(bedrockIds(['amazon.nova-lite-v1:0']), 0.06, 0.24),
  ...perMTok(bedrockIds(['amazon.nova-micro-v1:0']), 0.035, 0.14),
  ...perMTok(bedrockIds(['meta.llama3-3-70b-instruct-v1:0']), 0.72, 0.72),
  ...perMTok(['meta.llama3-1-70b-instruct-v1:0'], 0.72, 0.72),
  ...perMTok(['meta.llama3-1-8b-instruct-v1:0'], 0.22, 0.22),
  ...perMTok(['mistral.mistral-large-2407-v1:0'], 2, 6),
  ...perMTok(['cohere.command-r-plus-v1:0'], 3, 15),
  ...perMTok(['cohere.command-r-v1:0'], 0.5, 1.5),
  // Gemini (Gemini API and Vertex AI standard tier, prompts up to 200k tokens; issue 19). Vertex lists gemini-2.0-flash(-lite)
  // at 0.15/0.60 (0.075/0.30): a Vertex deployment of those gets a per-deployment price if it matters.
  ...perMTok(['gemini-2.5-pro'], 1.25, 10),
  ...perMTok(['gemini-2.5-flash'], 0.3, 2.5),
  ...perMTok(['gemini-2.5-flash-lite'], 0.1, 0.4),
  ...perMTok(['gemini-2.0-flash', 'gemini-2.0-flash-001'], 0.1, 0.4),
  ...perMTok(['gemini-2.0-flash-lite', 'gemini-2.0-flash-lite-001'], 0.075, 0.3),
  // Embeddings: Titan text v2 on Bedrock, gemini-embedding-001 (Gemini API and Vertex list the same price).
  ...perMTok(['amazon.titan-embed-text-v2:0'], 0.02, 0),
  ...perMTok(['gemini-embedding-001'], 0.15, 0),
];

/** Prices in USD per 1M tokens for several model names, as BUNDLED_PRICES rows (micro-units). */
function perMTok(models: readonly string[], input: number, output: number): { model: string; input: number; output: number }[] {
  return models.map((model) => ({ model, input: Math.round(input * 1_000_000), output: Math.round(output * 1_000_000) }));
}

/** A Bedrock model id with its US and EU cross-region inference profile ids (`us.<id>`, `eu.<id>`). */
function bedrockIds(ids: readonly string[]): string[] {
  return ids.flatMap((id) => [id, `us.${id}`, `eu.${id}`]);
}

export const priceInputSchema = z
  .object({
    model: z.string().min(1).max(200),
    deployment_id: z.string().max(100).optional(),
    input_micros_per_mtok: z.number().int().min(0),
    output_micros_per_mtok: z.number().int().min(0),
    request_micros: z.number().int().min(0).optional(),
    currency: z.string().regex(/^[A-Z]{3}$/).optional(),
  })
  .strict();
export type PriceInput = z.infer<typeof priceInputSchema>;

export interface Cost {
  readonly costMicros: number;
  readonly priceVersion: number | null;
}

/**
 * Prices, cached in memory: `price()` and `cost()` run per AI call and never touch the
 * database. The cache is loaded by `load()` (awaited at start) and reloaded in the background
 * when the `metering` revision changes (the old prices serve until the new ones are read).
 */
export class Pricing {
  private cache = new Map<string, PriceRow>();
  private loading: Promise<void> | undefined;
  private stale = false;

  constructor(
    private readonly repo: MeteringRepo,
    private readonly revision: Revision,
    private readonly clock: Clock,
    private readonly audit: () => AuditLog | undefined,
    private readonly onError: (e: Error) => void = () => {},
  ) {
    revision.onChange(() => void this.load().catch((e: Error) => this.onError(e)));
  }

  /**
   * Writes the bundled defaults into an empty price table (first start). One transaction, so
   * two processes starting together do not both write them.
   */
  async ensureBundled(): Promise<void> {
    try {
      await this.repo.tx(async () => {
        if ((await this.repo.priceCount()) > 0) return;
        const now = this.clock.now();
        for (const p of BUNDLED_PRICES) {
          await this.repo.insertPrice({ model: p.model, deploymentId: '', inputMicrosPerMTok: p.input, outputMicrosPerMTok: p.output, requestMicros: 0, currency: 'USD', source: 'bundled', createdBy: null, createdAt: now });
        }
      });
    } catch (e) {
      // Another process wrote them first (PostgreSQL: its versions collided with ours and our transaction was undone).
      if ((await this.repo.priceCount()) > 0) return;
      throw e;
    }
  }

  /** (Re)loads the current prices. Concurrent calls share one read; a call during a read reads again after it. */
  load(): Promise<void> {
    if (this.loading !== undefined) {
      this.stale = true;
      return this.loading;
    }
    this.loading = (async () => {
      try {
        const m = new Map<string, PriceRow>();
        for (const r of await this.repo.currentPrices()) m.set(`${r.model}\u0000${r.deploymentId}`, r);
        this.cache = m;
      } finally {
        this.loading = undefined;
      }
      if (this.stale) {
        this.stale = false;
        await this.load();
      }
    })();
    return this.loading;
  }

  /** The current price of a model on a deployment (deployment-specific first, then any deployment). */
  price(model: string | null | undefined, deploymentId?: string | null): PriceRow | undefined {
    if (!model) return undefined;
    const m = this.cache;
    return (deploymentId ? m.get(`${model}\u0000${deploymentId}`) : undefined) ?? m.get(`${model}\u0000`);
  }

  cost(model: string | null | undefined, deploymentId: string | null | undefined, promptTokens: number, completionTokens: number, requests = 1): Cost {
    const p = this.price(model, deploymentId);
    if (!p) return { costMicros: 0, priceVersion: null };
    return { costMicros: costOf(p, promptTokens, completionTokens, requests), priceVersion: p.version };
  }

  /** The current prices, as stored now. */
  list(): Promise<PriceRow[]> {
    return this.repo.currentPrices();
  }

  history(model: string): Promise<PriceRow[]> {
    return this.repo.priceHistory(model);
  }

  async set(ctx: RequestContext, input: PriceInput): Promise<PriceRow> {
    const before = this.price(input.model, input.deployment_id ?? null);
    const version = await this.repo.insertPrice({
      model: input.model,
      deploymentId: input.deployment_id ?? '',
      inputMicrosPerMTok: input.input_micros_per_mtok,
      outputMicrosPerMTok: input.output_micros_per_mtok,
      requestMicros: input.request_micros ?? 0,
      currency: input.currency ?? before?.currency ?? 'USD',
      source: 'admin',
      createdBy: ctx.principal?.id ?? null,
      createdAt: this.clock.now(),
    });
    await this.revision.bump();
    await this.load();
    const after = (await this.repo.priceHistory(input.model)).find((r) => r.version === version)!;
    await this.audit()?.record(ctx, { action: 'price.set', tenantId: null, target: { type: 'price', id: input.model }, details: { before: before ? priceJson(before) : null, after: priceJson(after) } });
    return after;
  }
}

export function costOf(p: Pick<PriceRow, 'inputMicrosPerMTok' | 'outputMicrosPerMTok' | 'requestMicros'>, prompt: number, completion: number, requests = 1): number {
  return Math.round((prompt * p.inputMicrosPerMTok + completion * p.outputMicrosPerMTok) / 1_000_000) + p.requestMicros * requests;
}

export function priceJson(p: PriceRow) {
  return {
    model: p.model,
    deployment_id: p.deploymentId || null,
    version: p.version,
    input_micros_per_mtok: p.inputMicrosPerMTok,
    output_micros_per_mtok: p.outputMicrosPerMTok,
    request_micros: p.requestMicros,
    currency: p.currency,
    source: p.source,
    created_at: new Date(p.createdAt).toISOString(),
  };
}
