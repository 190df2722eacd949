import { z } from 'zod';

/**
 * The response cache's per-tenant setting (tenant setting `gateway.cache`, JSON), off by
 * default. `keys` turns it on or off for single API keys (a key's entry wins over `enabled`),
 * so a tenant can try it on one application first. Read on the call path from the tenant's
 * cached policy entry (server/gateway/policy-cache.ts), parsed once per policy reload.
 */
export const CACHE_SETTING = 'gateway.cache';

export const DEFAULT_TTL_SECONDS = 3600;
export const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;
/** One answer larger than this is never stored (a cap of its own, whatever the tenant's size). */
export const MAX_ENTRY_BYTES = 1024 * 1024;

const ttl = z.number().int().min(1).max(30 * 86_400);
const maxBytes = z.number().int().min(1024).max(1024 * 1024 * 1024);
const keyId = z.string().min(1).max(100);

const storedSchema = z.object({
  enabled: z.boolean(),
  ttl_seconds: ttl,
  max_bytes: maxBytes,
  allow_tools: z.boolean(),
  keys: z.record(keyId, z.boolean()),
  partition: z.enum(['tenant', 'caller']).optional(),
  hit_cost_fraction: z.number().min(0).max(1).optional(),
});

/** PUT body: every field optional (it keeps its value); `keys` entries set to null are removed. */
export const cacheSettingsInput = z
  .object({
    enabled: z.boolean().optional(),
    ttl_seconds: ttl.optional(),
    max_bytes: maxBytes.optional(),
    allow_tools: z.boolean().optional(),
    keys: z.record(keyId, z.boolean().nullable()).optional(),
    partition: z.enum(['tenant', 'caller']).optional(),
    hit_cost_fraction: z.number().min(0).max(1).optional(),
  })
  .strict();
export type CacheSettingsInput = z.infer<typeof cacheSettingsInput>;

export interface CacheSettings {
  readonly enabled: boolean;
  readonly ttlSeconds: number;
  readonly maxBytes: number;
  /** Requests that offer tools are cached too (off: a tool's side effects are not replayed blindly). */
  readonly allowTools: boolean;
  /** Per API key id: on or off regardless of `enabled`. */
  readonly keys: Readonly<Record<string, boolean>>;
  /**
   * Who shares entries: `tenant` (every caller of the tenant at the same classification: the
   * best hit ratio) or `caller` (each API key, or each user of the web chat, has its own: no
   * member can tell from a hit that another asked the same).
   */
  readonly partition: 'tenant' | 'caller';
  /** What a hit costs, as a fraction of the original call's cost (0 = free, the default; chargeback of a shared cache). */
  readonly hitCostFraction: number;
}

export const CACHE_OFF: CacheSettings = { enabled: false, ttlSeconds: DEFAULT_TTL_SECONDS, maxBytes: DEFAULT_MAX_BYTES, allowTools: false, keys: {}, partition: 'tenant', hitCostFraction: 0 };

export function parseCacheSettings(json: string | undefined): CacheSettings {
  if (!json) return CACHE_OFF;
  try {
    const v = storedSchema.parse(JSON.parse(json));
    return { enabled: v.enabled, ttlSeconds: v.ttl_seconds, maxBytes: v.max_bytes, allowTools: v.allow_tools, keys: v.keys, partition: v.partition ?? 'tenant', hitCostFraction: v.hit_cost_fraction ?? 0 };
  } catch {
    // A setting that does not parse caches nothing: off is the safe reading for customer data.
    return CACHE_OFF;
  }
}

export function cacheSettingsJson(c: CacheSettings) {
  return { enabled: c.enabled, ttl_seconds: c.ttlSeconds, max_bytes: c.maxBytes, allow_tools: c.allowTools, keys: { ...c.keys }, partition: c.partition, hit_cost_fraction: c.hitCostFraction };
}

export function mergeCacheSettings(before: CacheSettings, input: CacheSettingsInput): CacheSettings {
  const keys: Record<string, boolean> = { ...before.keys };
  for (const [k, v] of Object.entries(input.keys ?? {})) {
    if (v === null) delete keys[k];
    else keys[k] = v;
  }
  return {
    enabled: input.enabled ?? before.enabled,
    ttlSeconds: input.ttl_seconds ?? before.ttlSeconds,
    maxBytes: input.max_bytes ?? before.maxBytes,
    allowTools: input.allow_tools ?? before.allowTools,
    keys,
    partition: input.partition ?? before.partition,
    hitCostFraction: input.hit_cost_fraction ?? before.hitCostFraction,
  };
}

/** Whether the cache is on for this caller (the key's own switch first). */
export function cacheOn(c: CacheSettings, keyId: string | undefined): boolean {
  if (keyId !== undefined) {
    const k = c.keys[keyId];
    if (k !== undefined) return k;
  }
  return c.enabled;
}
